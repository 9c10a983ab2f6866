"""Pooled Postgres connections: pinged only after being idle, replaced when the server closed them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from gateway.database import Database
from gateway.settings import Settings

POSTGRES_ONLY = pytest.mark.parametrize("dialect", ["postgresql"])


@pytest.fixture
async def pinged(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Database, list[Any]]]:
    """A database whose connections count as idle after 0.2 s, and a record of the pings the dialect sends."""
    database = Database(settings.model_copy(update={"database_ping_after_idle_seconds": 0.2}))
    pings: list[Any] = []
    dialect = database.read_engine.sync_engine.dialect
    do_ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    yield database, pings
    await database.dispose()


async def _backend_pid(database: Database) -> int:
    async with database.session() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@POSTGRES_ONLY
async def test_a_connection_back_from_use_is_not_pinged_one_idle_is(pinged: tuple[Database, list[Any]]) -> None:
    database, pings = pinged
    first = await _backend_pid(database)
    for _ in range(5):
        assert await _backend_pid(database) == first
    assert pings == []
    await asyncio.sleep(0.3)
    assert await _backend_pid(database) == first
    assert len(pings) == 1


@POSTGRES_ONLY
async def test_a_connection_the_server_closed_is_replaced_without_a_failed_statement(
    pinged: tuple[Database, list[Any]], db: Database
) -> None:
    database, pings = pinged
    first = await _backend_pid(database)
    async with db.session() as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await asyncio.sleep(0.05)  # the server's farewell reaches the driver
    assert await _backend_pid(database) != first
    # Found closed, not by a ping: it was back from use moments ago.
    assert pings == []
