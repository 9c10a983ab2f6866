"""Telling a database that is away from a bug: the first is 503 with Retry-After, the second is ours.

Three database faults are the operator's business rather than a bug of the gateway:

- UNAVAILABLE: the database cannot be reached right now (refused, reset, shutting down, pool exhausted);
- NOT_MIGRATED: its schema is missing or behind this gateway's (`asset-gateway migrate` has not run);
- STATEMENT_TIMEOUT: Postgres cancelled a statement that ran past `statement_timeout` (SQLSTATE 57014).

Every HTTP path answers them with 503 and Retry-After, never 500; only GraphQL codes a statement timeout TIMEOUT
in a 200, like its own request timeout, since the operation (not the service) was too slow.
"""

from __future__ import annotations

import enum
import logging
import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gateway.faults")

RETRY_AFTER_SECONDS = 5
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
# Postgres: connection exceptions, insufficient resources, operator intervention (shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
# Class 57 also holds query_canceled, which is a statement timeout (or a cancel request), not an outage.
QUERY_CANCELED = "57014"
# undefined_table, undefined_column: the schema is not the one this gateway was built for.
_NOT_MIGRATED_SQLSTATES = frozenset({"42P01", "42703"})
_SQLITE_NOT_MIGRATED = ("no such table:", "no such column:")
# SQLite result codes (Python 3.11 names them) that mean the file cannot be used now, not that our SQL is wrong.
_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_NOMEM")


class DatabaseFault(enum.Enum):
    UNAVAILABLE = "unavailable"
    NOT_MIGRATED = "not_migrated"
    STATEMENT_TIMEOUT = "statement_timeout"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    DatabaseFault.UNAVAILABLE: "the database is unavailable; retry later",
    DatabaseFault.NOT_MIGRATED: (
        "the database schema does not match this gateway: run `asset-gateway migrate`, then retry"
    ),
    DatabaseFault.STATEMENT_TIMEOUT: "the database took too long to answer (statement timeout); retry later",
}


def _sqlstate(error: BaseException) -> str | None:
    # asyncpg's exceptions carry `sqlstate`; SQLAlchemy's wrappers carry the driver's exception as `orig`.
    for candidate in (error, getattr(error, "orig", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _fault_of(error: BaseException) -> DatabaseFault | None:
    """The fault one exception (not its causes) stands for."""
    state = _sqlstate(error)
    if state == QUERY_CANCELED:
        return DatabaseFault.STATEMENT_TIMEOUT
    if state in _NOT_MIGRATED_SQLSTATES:
        return DatabaseFault.NOT_MIGRATED
    if state is not None and state[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
        return DatabaseFault.UNAVAILABLE
    if isinstance(error, sqlite3.Error):
        if str(error).startswith(_SQLITE_NOT_MIGRATED):
            return DatabaseFault.NOT_MIGRATED
        if getattr(error, "sqlite_errorname", "").startswith(_SQLITE_UNAVAILABLE):
            return DatabaseFault.UNAVAILABLE
        return None
    # TimeoutError (a connect that timed out) is an OSError too.
    if isinstance(error, (OSError, PoolTimeout, InterfaceError)):
        return DatabaseFault.UNAVAILABLE
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return DatabaseFault.UNAVAILABLE
    return None


def database_fault(error: BaseException) -> DatabaseFault | None:
    """The database fault behind `error` (itself or one of its causes), or None when it is something else."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (fault := _fault_of(current)) is not None:
            return fault
        if isinstance(current, DBAPIError) and current.orig is not None and id(current.orig) not in seen:
            seen.add(id(current.orig))
            if (fault := _fault_of(current.orig)) is not None:
                return fault
        current = current.__cause__ or current.__context__
    return None


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached right now (and a retry later may succeed)."""
    return database_fault(error) is DatabaseFault.UNAVAILABLE


def is_statement_timeout(error: BaseException) -> bool:
    return database_fault(error) is DatabaseFault.STATEMENT_TIMEOUT


def unavailable_response(message: str = DatabaseFault.UNAVAILABLE.message) -> Response:
    # One body for REST and GraphQL clients alike: `error` for the first, `errors[].extensions.code` for the
    # second, because the answer may come before anything knows which endpoint the request was for.
    body = {"error": message, "errors": [{"message": message, "extensions": {"code": SERVICE_UNAVAILABLE}}]}
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def log_fault(fault: DatabaseFault, error: BaseException, where: str) -> None:
    """Outages and timeouts are expected weather: one line. A schema mismatch needs the operator: the detail."""
    if fault is DatabaseFault.NOT_MIGRATED:
        logger.error("%s: %s", where, fault.message, exc_info=error)
    else:
        detail = next(iter(str(error).splitlines()), "")
        logger.warning("%s: %s (%s: %s)", where, fault.message, type(error).__name__, detail)


class DatabaseFaultMiddleware:
    """Answers 503 + Retry-After for a database fault that escapes any HTTP handler, instead of a 500.

    Handlers that know better answer themselves (GraphQL codes its errors); this is the net under all of them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.close", "websocket.http.response.start"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            fault = database_fault(error)
            if fault is None or started:
                raise
            log_fault(fault, error, f"{scope.get('method', 'WEBSOCKET')} {scope['path']}")
            if scope["type"] == "websocket":
                # 1013: try again later.
                await send({"type": "websocket.close", "code": 1013, "reason": "database unavailable"})
                return
            await unavailable_response(fault.message)(scope, receive, send)
