"""Fixtures of the authorization tests: the two-tenant world, loaded once per module and dialect."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.auth.world import World, open_world, own_postgres_database, restore_state, save_state, world_settings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """(dialect, data directory, Postgres server URL or "") for the module's world."""
    # Sync, so that it may pull the session's async database fixtures of the chosen dialect only.
    data_dir = tmp_path_factory.mktemp(f"auth-world-{request.param}")
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, data_dir / "gateway.db")
        return request.param, data_dir, ""
    server: str = request.getfixturevalue("postgres_url")
    return request.param, data_dir, server


@pytest.fixture(scope="module")
async def world(world_database: tuple[str, Path, str]) -> AsyncIterator[World]:
    """The world, for tests that only read. On Postgres it lives in a database of its own, which tests
    truncating the session's database (`clean_postgres`) leave alone."""
    dialect, data_dir, server = world_database
    if dialect == "sqlite":
        async with open_world(world_settings(data_dir, None, data_dir)) as loaded:
            await save_state(loaded)
            yield loaded
        return
    async with (
        own_postgres_database(server, f"asset_gateway_auth_{os.getpid()}") as url,
        open_world(world_settings(data_dir, url, data_dir)) as loaded,
    ):
        await save_state(loaded)
        yield loaded


@pytest.fixture
async def isolated_world(world: World) -> AsyncIterator[World]:
    """The world, for a test that writes (or tries to): put back as it was loaded afterwards, so that a write
    that should have been refused but went through shows in its own test only."""
    try:
        yield world
    finally:
        await restore_state(world)
