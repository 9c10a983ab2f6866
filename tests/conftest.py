"""Every database test runs twice: on SQLite and on a real Postgres (`dialect` fixture).

Postgres comes from GATEWAY_TEST_POSTGRES_URL (default: the local server, database `test`); the tests
create their own database beside it. Under CI=true a Postgres that cannot be reached fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.database import Database
from gateway.migrate import migrate
from gateway.orm import Base
from gateway.settings import Settings

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"Postgres tests cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Postgres unavailable: {reason}")


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A freshly created, migrated database for this test session."""
    admin = make_url(POSTGRES_URL)
    name = f"asset_gateway_test_{os.getpid()}"
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as error:
        await engine.dispose()
        _unavailable(f"{type(error).__name__}: {error}")
    except Exception as error:  # asyncpg's own errors (auth, missing database) land here
        await engine.dispose()
        _unavailable(f"{type(error).__name__}: {error}")
    url = admin.set(database=name).render_as_string(hide_password=False)
    test_engine = create_async_engine(url)
    await migrate(test_engine)
    await test_engine.dispose()
    yield url
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy, which is far cheaper than migrating again."""
    path = tmp_path_factory.mktemp("template") / "gateway.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def clean_postgres(postgres_url: str) -> str:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as connection:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()
    return postgres_url


@pytest.fixture
def settings(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    # A sync fixture, so that it may pull the async database fixtures of the chosen dialect only.
    if dialect == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "gateway.db")
        return Settings(data_dir=tmp_path, auto_migrate=False)
    url: str = request.getfixturevalue("clean_postgres")
    return Settings(data_dir=tmp_path, database_url=url, auto_migrate=False)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    yield application
    await application.state.db.dispose()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


@pytest.fixture
def now() -> datetime:
    return NOW
