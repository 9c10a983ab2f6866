"""Engines and sessions for the two supported dialects: aiosqlite (embedded) and asyncpg (production)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import LRUCache

from gateway.connection_check import AliveCheck
from gateway.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
PREPARED_STATEMENTS_PER_CONNECTION = 300
# Past this, a statement is not kept prepared: the multi-row inserts of single-event groups (up to ~30 kB) are, a
# batch's (hundreds of kB) are not.
MAX_CACHED_STATEMENT_CHARS = 64 * 1024
# Deadlock and serialization failure: the transaction did nothing and may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
T = TypeVar("T")


def _json_integer(text: str) -> int | float:
    value = int(text)
    if -(2**63) <= value < 2**64:
        return value
    # JSONB keeps numbers as numerics: a float such as 1e30 comes back written out as an integer, which orjson
    # (every answer, every export, the facet merge) cannot write. It reads back as the float it was stored as.
    try:
        return float(value)
    except OverflowError:
        return value


def read_json(text: str) -> Any:
    """A JSON column's value, with integers beyond 64 bits read as floats (as orjson reads them on the way in)."""
    try:
        # orjson reads what it can several times faster, and reads such integers as floats itself.
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # An integer beyond the float range: kept as the integer it is.
        return json.loads(text, parse_int=_json_integer)


def write_json(value: Any) -> str:
    """A value for a Postgres JSON column, written by orjson (several times faster), or by the standard library
    where orjson refuses (integers beyond 64 bits, keys that are not strings), as before."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run beside the writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


WRITE_OPTION = "gateway_write"


def _begin(connection: Any) -> None:
    # A writer takes the lock at BEGIN, so two writers queue on busy_timeout instead of
    # failing with "database is locked" when a reader upgrades to a writer.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(settings: Settings, serving: bool = False, isolation_level: str | None = None) -> AsyncEngine:
    """The engine; a `serving` one bounds every Postgres statement by `settings.statement_timeout_seconds`."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=settings.database_echo, json_deserializer=read_json, connect_args={"timeout": 30}
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        # pysqlite's own transaction handling is switched off so that BEGIN is ours.
        event.listen(engine.sync_engine, "connect", _disable_pysqlite_begin)
        event.listen(engine.sync_engine, "begin", _begin)
        return engine
    # Statements are prepared once per connection and kept: single-event ingestion alone has ~150 shapes (one per
    # number of rows of a multi-row insert), past the driver's default of 100. Big ones are not kept (see
    # _keep_small_statements).
    connect_args: dict[str, Any] = {"prepared_statement_cache_size": PREPARED_STATEMENTS_PER_CONNECTION}
    # A prepared statement lives as long as its connection, and after five runs Postgres may keep one generic plan
    # for it, made from the statistics of that moment. Planned while a new database was nearly empty, the insert of
    # a run's edges took 20 s a statement once run_assets held 65k rows. Each run is planned for its own values,
    # except in ingest transactions (store/sql.py allow_generic_plans): there a foreign-key check would be planned
    # again for every row, and their lookups by key plan alike whatever the values.
    # No JIT compilation: a statement whose estimated cost crosses jit_above_cost (correlated subqueries over big
    # tables estimate high) spent ~30 ms compiling to run in 150; the gateway's statements are too short to repay it.
    server_settings = {"plan_cache_mode": "force_custom_plan", "jit": "off"}
    if serving and settings.statement_timeout_seconds > 0:
        # Set at connect, so it holds for every statement on every pooled connection, and costs no round trip.
        timeout_ms = max(1, round(settings.statement_timeout_seconds * 1000))
        server_settings["statement_timeout"] = str(timeout_ms)
    connect_args["server_settings"] = server_settings
    engine = create_async_engine(
        url,
        echo=settings.database_echo,
        json_deserializer=read_json,
        json_serializer=write_json,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # A connection that died with the server (restart, failover) is replaced before use, not handed out: see
        # gateway/connection_check.py, which pings only the connections that were idle for a while.
        pool_pre_ping=False,
        # The connection used last is handed out first: its prepared statements are warm, and the connections a quiet
        # gateway does not need go idle instead of taking turns.
        pool_use_lifo=True,
        connect_args=connect_args,
        **({"isolation_level": isolation_level} if isolation_level else {}),
    )
    event.listen(engine.sync_engine, "connect", _keep_small_statements)
    AliveCheck(engine, settings.database_ping_after_idle_seconds).install()
    return engine


class SmallStatementCache(LRUCache[str, Any]):
    """The driver's per-connection cache of prepared statements, without the big ones. A batch's multi-row inserts
    are up to hundreds of kB of text each, a new one for each number of rows: kept, they filled every pooled
    connection's cache (40 batches of 1,000 events grew one connection's process by 94 MB; with this cache it levels
    off 40 MB above the start). Preparing one again costs a round trip, next to an execution of tens of ms."""

    def __setitem__(self, key: str, value: Any) -> None:
        if len(key) <= MAX_CACHED_STATEMENT_CHARS:
            super().__setitem__(key, value)


def _keep_small_statements(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    if getattr(dbapi_connection, "_prepared_statement_cache", None) is not None:
        dbapi_connection._prepared_statement_cache = SmallStatementCache(PREPARED_STATEMENTS_PER_CONNECTION)


def _disable_pysqlite_begin(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None


class Database:
    """One engine and its session factory; `session()` reads, `transaction()` writes atomically.

    `serving=True` is for the web process: its statements are bounded by the statement timeout. Maintenance work
    (migrations, reindex, bulk ingest from the CLI) uses the default, unbounded engine.
    """

    def __init__(self, settings: Settings, serving: bool = False) -> None:
        self.settings = settings
        self.serving = serving
        self.engine = create_engine(settings, serving)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads on Postgres go through a pool of their own whose connections are in autocommit from the start: no
        # BEGIN and ROLLBACK around every loader and page, and a pre-ping of one round trip instead of three (in a
        # transaction, the driver's ping begins and rolls back one). A read gains nothing from a transaction of
        # its own: each statement sees a consistent snapshot anyway.
        self.read_engine = self.engine
        if self.dialect == "postgresql":
            self.read_engine = create_engine(settings, serving, isolation_level="AUTOCOMMIT")
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)
        # Called after every committed `transaction()` (live updates wake up on SQLite); they must not block.
        self.commit_listeners: list[Callable[[], None]] = []

    @staticmethod
    def describe(settings: Settings) -> str:
        return make_url(settings.resolved_database_url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; writes go through `transaction()`."""
        async with self.read_sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            # Procuring the connection with the write option begins the transaction.
            await session.connection(execution_options={WRITE_OPTION: True})
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()
        for listener in self.commit_listeners:
            listener()

    @property
    def engines(self) -> list[AsyncEngine]:
        """The engine for writes and, when it is another one, the engine for reads."""
        return [self.engine] if self.read_engine is self.engine else [self.engine, self.read_engine]

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def is_retryable(error: DBAPIError) -> bool:
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if state in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(error.orig)


async def run_transaction(db: Database, work: Callable[[AsyncSession], Awaitable[T]], attempts: int = 6) -> T:
    """Run `work` in one transaction, again from the start when the database reports a deadlock."""
    for attempt in range(attempts):
        try:
            async with db.transaction() as session:
                return await work(session)
        except DBAPIError as error:
            if attempt + 1 >= attempts or not is_retryable(error):
                raise
            await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")
