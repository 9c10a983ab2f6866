"""A database that is away, not migrated, or too slow is the operator's weather, not a bug: 503 or TIMEOUT, no 500."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from graphql import GraphQLError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.database import Database
from gateway.faults import DatabaseFault, database_fault, is_database_unavailable, is_statement_timeout
from gateway.settings import Settings
from schema.errors import code_errors
from tests.ops.support import Outage, run_event

POSTGRES_ONLY = pytest.mark.parametrize("dialect", ["postgresql"])
CATALOG = "query Catalog { assets { totalCount } }"
EXECUTION = "query($id: String!) { execution(runId: $id) { runId } }"
UPSERT = 'mutation { upsertAsset(input: {key: "pg://db/during-outage"}) { key } }'
# What a client must never read in an answer: the driver's words, hosts, SQL, a traceback.
LEAKS = ("Traceback", "Connect", "Errno", "127.0.0.1", "asyncpg", "sqlite", "SELECT", "no such table", "pg_sleep")


def assert_unavailable(response: httpx.Response, *, migrate: bool = False) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    body: dict[str, Any] = response.json()
    codes = [error["extensions"]["code"] for error in body["errors"]]
    assert codes, body
    assert set(codes) == {"SERVICE_UNAVAILABLE"}, body
    message = body["errors"][0]["message"]
    assert ("asset-gateway migrate" in message) is migrate, message
    text_ = orjson.dumps(body).decode()
    for leak in LEAKS:
        assert leak not in text_, (leak, body)
    return body


async def stored(client: httpx.AsyncClient, run_id: str) -> bool:
    response = await client.post("/graphql", json={"query": EXECUTION, "variables": {"id": run_id}})
    assert response.status_code == 200, response.text
    return response.json()["data"]["execution"] is not None


@pytest.fixture
async def outage(settings: Settings) -> AsyncIterator[Outage]:
    # The auth check caches its answer for an hour: these requests reach the resolvers and the ingest endpoint.
    prepared = await Outage.around(settings.model_copy(update={"auth_cache_seconds": 3600}))
    yield prepared
    await prepared.close()


@pytest.fixture
async def outage_app(outage: Outage) -> AsyncIterator[Starlette]:
    app = create_app(outage.settings)
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def outage_client(outage_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=outage_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def test_graphql_during_an_outage_is_503_then_recovers(
    outage: Outage, outage_app: Starlette, outage_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = outage_client
    before = await client.post("/graphql", json={"query": CATALOG})
    assert before.status_code == 200, before.text

    await outage.begin(outage_app.state.db)
    with caplog.at_level(logging.WARNING, logger="gateway.faults"):
        body = assert_unavailable(await client.post("/graphql", json={"query": CATALOG}))
        assert body["data"] is None
        assert body["errors"][0]["path"] == ["assets"]
        assert_unavailable(await client.post("/graphql", json={"query": UPSERT}))
        # Over GET too.
        assert_unavailable(await client.get("/graphql", params={"query": CATALOG}))
    # The operator reads one line per failed operation, with the driver's own words, and no traceback for it.
    faults = [record for record in caplog.records if record.name == "gateway.faults"]
    assert len(faults) == 3, [record.getMessage() for record in faults]
    assert all(record.levelno == logging.WARNING and record.exc_info is None for record in faults)
    assert "the database is unavailable" in faults[0].getMessage()
    assert (await client.get("/readyz")).status_code == 503

    await outage.end()
    # No restart: the next request finds the database again (dead pooled connections are replaced).
    after = await client.post("/graphql", json={"query": CATALOG})
    assert after.status_code == 200, after.text
    assert after.json() == {"data": {"assets": {"totalCount": 0}}}
    assert (await client.get("/readyz")).status_code == 200


async def test_ingest_during_an_outage_is_503_and_nothing_is_acknowledged(
    outage: Outage, outage_app: Starlette, outage_client: httpx.AsyncClient
) -> None:
    client = outage_client
    first = str(uuid.uuid4())
    assert (await client.post("/api/v1/lineage", json=run_event(first))).status_code == 201

    await outage.begin(outage_app.state.db)
    during = str(uuid.uuid4())
    response = await client.post("/api/v1/lineage", json=run_event(during))
    assert_unavailable(response)
    assert response.json()["error"] == "the database is unavailable; retry later"
    batch = await client.post("/api/v1/lineage", json=[run_event(), run_event()])
    assert_unavailable(batch)

    await outage.end()
    assert await stored(client, first)
    assert not await stored(client, during)
    # The producer retries after Retry-After, and this time the event is stored.
    assert (await client.post("/api/v1/lineage", json=run_event(during))).status_code == 201
    assert await stored(client, during)


async def test_the_auth_check_during_an_outage_is_503(settings: Settings) -> None:
    # Without its cache the auth middleware asks the database on every request, before any endpoint does.
    outage = await Outage.around(settings.model_copy(update={"auth_cache_seconds": 0}))
    app = create_app(outage.settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            assert (await client.post("/graphql", json={"query": CATALOG})).status_code == 200
            await outage.begin(app.state.db)
            assert_unavailable(await client.post("/graphql", json={"query": CATALOG}))
            assert_unavailable(await client.post("/api/v1/lineage", json=run_event()))
            assert_unavailable(await client.get("/metrics"))
            # Probes stay open and say what is wrong.
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            await outage.end()
            assert (await client.post("/api/v1/lineage", json=run_event())).status_code == 201
    finally:
        await outage.close()
        await app.state.db.dispose()


@POSTGRES_ONLY
async def test_a_restarted_database_costs_no_failed_request(
    outage: Outage, outage_app: Starlette, outage_client: httpx.AsyncClient
) -> None:
    client = outage_client
    for _ in range(3):
        assert (await client.post("/api/v1/lineage", json=run_event())).status_code == 201
    # Every pooled connection dies (a server restart or failover) and the server is back before the next request:
    # pool_pre_ping finds the dead connections and replaces them, so that no request fails for them.
    await outage.begin(outage_app.state.db)
    await outage.end()
    assert (await client.post("/api/v1/lineage", json=run_event())).status_code == 201
    assert (await client.post("/graphql", json={"query": CATALOG})).json() == {"data": {"assets": {"totalCount": 2}}}


# --- not migrated ---------------------------------------------------------------------------------------------


@pytest.fixture
async def empty_settings(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Settings]:
    """Settings for a database that exists but was never migrated."""
    if dialect == "sqlite":
        yield Settings(data_dir=tmp_path, auto_migrate=False)
        return
    migrated: str = request.getfixturevalue("postgres_url")
    admin = create_async_engine(make_url(migrated).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"asset_gateway_empty_{os.getpid()}"
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(migrated).set(database=name).render_as_string(hide_password=False)
    yield Settings(data_dir=tmp_path, database_url=url, auto_migrate=False)
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def test_a_database_not_migrated_is_503_saying_to_migrate(
    empty_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(empty_settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            with caplog.at_level(logging.ERROR, logger="gateway.faults"):
                assert_unavailable(await client.post("/graphql", json={"query": CATALOG}), migrate=True)
                assert_unavailable(await client.post("/api/v1/lineage", json=run_event()), migrate=True)
            # The operator gets the detail: which table is missing.
            logged = [record for record in caplog.records if record.name == "gateway.faults"]
            assert logged
            assert logged[0].levelno == logging.ERROR
            assert logged[0].exc_info is not None
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "asset-gateway migrate" in ready.json()["reason"]
    finally:
        await app.state.db.dispose()


# --- statement timeout (Postgres) -----------------------------------------------------------------------------


@POSTGRES_ONLY
async def test_the_serving_engine_bounds_statements_and_maintenance_does_not(settings: Settings) -> None:
    bounded = settings.model_copy(update={"statement_timeout_seconds": 0.2})
    serving = Database(bounded, serving=True)
    maintenance = Database(bounded)
    try:
        async with serving.session() as session:
            assert await session.scalar(text("SHOW statement_timeout")) == "200ms"
        with pytest.raises(DBAPIError) as raised:
            async with serving.session() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        assert database_fault(raised.value) is DatabaseFault.STATEMENT_TIMEOUT
        assert is_statement_timeout(raised.value)
        # query_canceled is SQLSTATE class 57 like a shutdown, but it is not an outage.
        assert not is_database_unavailable(raised.value)
        # In GraphQL it is a TIMEOUT, worded by us.
        [coded] = code_errors([GraphQLError("boom", path=["assets"], original_error=raised.value)])
        assert coded.extensions == {"code": "TIMEOUT"}
        assert "statement timeout" in coded.message
        assert "pg_sleep" not in coded.message
        # The pool hands out a working connection after the cancel.
        async with serving.session() as session:
            assert await session.scalar(text("SELECT 1")) == 1
        # Migrations, reindex and the CLI run unbounded.
        async with maintenance.session() as session:
            assert await session.scalar(text("SHOW statement_timeout")) == "0"
            await session.execute(text("SELECT pg_sleep(0.4)"))
    finally:
        await serving.dispose()
        await maintenance.dispose()


@POSTGRES_ONLY
async def test_a_statement_past_the_timeout_is_timeout_in_graphql_and_503_on_ingest(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"statement_timeout_seconds": 0.3, "auth_cache_seconds": 3600}))
    # Another session holds a lock the gateway's statements wait for: statement_timeout counts the wait.
    locker = create_async_engine(settings.resolved_database_url)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            assert (await client.post("/graphql", json={"query": CATALOG})).status_code == 200
            async with locker.connect() as connection, connection.begin():
                await connection.execute(text("LOCK TABLE assets, lineage_events IN ACCESS EXCLUSIVE MODE"))
                response = await client.post("/graphql", json={"query": CATALOG})
                assert response.status_code == 200, response.text
                [error] = response.json()["errors"]
                assert error["extensions"]["code"] == "TIMEOUT"
                assert error["path"] == ["assets"]
                assert "statement timeout" in error["message"]

                ingest = await client.post("/api/v1/lineage", json=run_event())
                assert ingest.status_code == 503, ingest.text
                assert int(ingest.headers["retry-after"]) > 0
                assert "statement timeout" in ingest.json()["error"]
            # The lock is gone: the same requests work on the same connections.
            assert (await client.post("/api/v1/lineage", json=run_event())).status_code == 201
            assert (await client.post("/graphql", json={"query": CATALOG})).json() == {
                "data": {"assets": {"totalCount": 2}}
            }
    finally:
        await locker.dispose()
        await app.state.db.dispose()


# --- classification ---------------------------------------------------------------------------------------------


async def test_sqlite_mistakes_are_not_outages(tmp_path: Path) -> None:
    # An SQL error of ours (here a syntax error) must stay a masked 500-class bug, not a 503 that hides it.
    db = Database(Settings(data_dir=tmp_path))
    try:
        with pytest.raises(DBAPIError) as raised:
            async with db.session() as session:
                await session.execute(text("SELEC 1"))
        assert database_fault(raised.value) is None
        with pytest.raises(DBAPIError) as missing:
            async with db.session() as session:
                await session.execute(text("SELECT * FROM assets"))
        assert database_fault(missing.value) is DatabaseFault.NOT_MIGRATED
    finally:
        await db.dispose()
    unreachable = Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}"))  # a directory
    try:
        with pytest.raises(DBAPIError) as cannot_open:
            async with unreachable.session() as session:
                await session.execute(text("SELECT 1"))
        assert is_database_unavailable(cannot_open.value)
    finally:
        await unreachable.dispose()
