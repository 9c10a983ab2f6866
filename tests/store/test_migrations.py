"""The migrations build exactly the schema that gateway.orm declares, on a fresh database of each dialect."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.database import Database
from gateway.migrate import alembic_config, current_revision, head_revision, migrate
from gateway.migrations import HEAD_REVISION
from gateway.orm import Base
from gateway.settings import Settings
from tests.conftest import POSTGRES_URL


@pytest.fixture
def fresh_database(dialect: str, request: pytest.FixtureRequest) -> str:
    """The dialect to migrate. A sync fixture, so that it may pull the async Postgres fixture, which
    decides whether Postgres is reachable (and skips, or fails under CI)."""
    if dialect == "postgresql":
        request.getfixturevalue("postgres_url")
    return dialect


@pytest.fixture
async def fresh_engine(fresh_database: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a new, empty database (configured as the gateway configures its own)."""
    if fresh_database == "sqlite":
        database = Database(Settings(data_dir=tmp_path / "fresh", auto_migrate=False))
        yield database.engine
        await database.dispose()
        return
    name = f"asset_gateway_migrations_{os.getpid()}"
    admin = create_async_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(make_url(POSTGRES_URL).set(database=name))
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _schema_differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_differences)


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync)))


async def test_migrations_build_exactly_the_declared_schema(fresh_engine: AsyncEngine) -> None:
    # One fresh database per dialect for every step: creating and dropping a Postgres database is slow.
    assert await current_revision(fresh_engine) is None
    assert await _schema_differences(fresh_engine) != [], "an empty database differs from the declared schema"

    await migrate(fresh_engine)
    assert await _schema_differences(fresh_engine) == []
    assert head_revision() is not None
    assert await current_revision(fresh_engine) == head_revision()
    assert await _table_names(fresh_engine) == set(Base.metadata.tables) | {"alembic_version"}

    # Migrating again changes nothing.
    await migrate(fresh_engine)
    assert await current_revision(fresh_engine) == head_revision()
    assert await _schema_differences(fresh_engine) == []

    # Down to nothing and up again restores the same schema.
    await _downgrade(fresh_engine, "base")
    assert await current_revision(fresh_engine) is None
    assert await _table_names(fresh_engine) <= {"alembic_version"}
    await migrate(fresh_engine)
    assert await _schema_differences(fresh_engine) == []
    assert await current_revision(fresh_engine) == head_revision()

    # The comparison itself notices drift: a dropped index, and on Postgres a changed column type.
    async with fresh_engine.begin() as connection:
        await connection.execute(text("DROP INDEX ix_runs_event_time"))
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ALTER TABLE jobs ALTER COLUMN type TYPE varchar(32)"))
    differences = await _schema_differences(fresh_engine)
    kinds = {difference[0] if isinstance(difference, tuple) else difference[0][0] for difference in differences}
    expected = {"add_index", "modify_type"} if fresh_engine.dialect.name == "postgresql" else {"add_index"}
    assert kinds == expected


def test_the_head_a_serving_gateway_expects_is_the_newest_migration() -> None:
    # /readyz compares the database with HEAD_REVISION, so that serving needs no Alembic: a new migration moves it.
    assert head_revision() == HEAD_REVISION


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
