"""A small two-tenant world for the authorization tests, loaded through the public API before any token exists.

Namespaces: `finance.sales`, `finance.hr`, `marketing.web`, and `FINANCE.audit` (which `finance.*` must not
match: grants are case-sensitive). Jobs live in `finance.etl` and `marketing.etl`. Lineage crosses the tenants:

    marketing.web/clicks -> finance.sales/orders -> finance.sales/orders_daily
    finance.sales/raw_orders -> finance.sales/orders -> marketing.web/attribution -> finance.hr/payroll

so that `finance.hr/payroll` is reachable from `finance.sales/orders` only through a marketing asset.
`finance.sales/clicks_feed` is an alias of the marketing asset `marketing.web/clicks`. Both
`marketing.web/clicks` and `finance.sales/orders_daily` are stale under a one-hour freshness policy and have an
open alert. `finance.sales/orders_daily` was last written by a marketing job, which read `finance.sales/orders`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.auth import hash_token, new_token
from gateway.database import Database
from gateway.migrate import migrate
from gateway.orm import Alert, Asset, Base
from gateway.settings import Settings
from gateway.store import tokens

# --- the keys --------------------------------------------------------------------------------------------------

CLICKS = "marketing.web/clicks"
ATTRIBUTION = "marketing.web/attribution"
CLICKS_ALIAS = "finance.sales/clicks_feed"  # an alias in a finance namespace, of a marketing asset
RAW_ORDERS = "finance.sales/raw_orders"
ORDERS = "finance.sales/orders"
ORDERS_DAILY = "finance.sales/orders_daily"
PAYROLL = "finance.hr/payroll"
LEDGER = "FINANCE.audit/ledger"

FINANCE_ASSETS = sorted([RAW_ORDERS, ORDERS, ORDERS_DAILY, PAYROLL])
ALL_ASSETS = sorted([*FINANCE_ASSETS, CLICKS, ATTRIBUTION, LEDGER])

# Runs (recordExecution run ids, and the OpenLineage one).
R_LOAD_CLICKS = "r-mkt-load-clicks"
R_BUILD_ORDERS = str(uuid.uuid5(uuid.NAMESPACE_URL, "asset-gateway-tests/auth/build_orders"))
R_BUILD_DAILY = "r-fin-build-daily"
R_DAG = "r-mkt-dag"
R_ATTRIBUTE = "r-mkt-attribute"
R_PAYROLL = "r-fin-payroll"
R_PUBLISH = "r-mkt-publish"

FINANCE_RUNS = sorted([R_BUILD_ORDERS, R_BUILD_DAILY, R_PAYROLL])
ALL_RUNS = sorted([*FINANCE_RUNS, R_LOAD_CLICKS, R_DAG, R_ATTRIBUTE, R_PUBLISH])

FINANCE_JOBS = sorted(["finance.etl/build_daily", "finance.etl/build_orders", "finance.etl/payroll"])
ALL_JOBS = sorted(
    [
        *FINANCE_JOBS,
        "marketing.etl/attribute",
        "marketing.etl/dag",
        "marketing.etl/load_clicks",
        "marketing.etl/publish",
    ]
)

PRODUCER = "https://github.com/example/asset-gateway-tests/auth"

# --- the tokens ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpec:
    scope: str
    grants: tuple[str, ...]
    revoked: bool = False
    expired: bool = False


TOKEN_SPECS: dict[str, TokenSpec] = {
    "fin_read": TokenSpec("read", ("finance.*",)),
    "fin_write": TokenSpec("write", ("finance.*",)),
    "fin_admin": TokenSpec("admin", ("finance.*",)),
    "all_admin": TokenSpec("admin", ("*",)),
    "all_read": TokenSpec("read", ("*",)),
    # Exact grants (no wildcard) on two of the namespaces of the Marquez `apples` corpus events.
    "kitchen_write": TokenSpec("write", ("grandmas.kitchen", "laurents-orchard")),
    "revoked": TokenSpec("admin", ("*",), revoked=True),
    "expired": TokenSpec("admin", ("*",), expired=True),
}
FINANCE_TOKENS = ("fin_read", "fin_write", "fin_admin")
EVERYTHING_TOKENS = ("all_admin", "all_read")
READER_TOKENS = (*FINANCE_TOKENS, *EVERYTHING_TOKENS)


async def issue_tokens(db: Database) -> dict[str, str]:
    """Creates every token of TOKEN_SPECS; name -> the bearer secret."""
    now = datetime.now(UTC)
    secrets: dict[str, str] = {}
    async with db.transaction() as session:
        for name, spec in TOKEN_SPECS.items():
            secret = new_token()
            row = await tokens.create_token(
                session,
                name=name,
                token_hash=hash_token(secret),
                display_prefix=secret[:10],
                scope=spec.scope,
                namespaces=spec.grants,
                now=now - timedelta(days=2),
                expires_at=now - timedelta(hours=1) if spec.expired else None,
            )
            if spec.revoked:
                row.revoked_at = now - timedelta(minutes=1)
            secrets[name] = secret
    return secrets


# --- talking to the gateway ------------------------------------------------------------------------------------


def bearer(secret: str | None) -> dict[str, str]:
    return {} if secret is None else {"Authorization": f"Bearer {secret}"}


async def ask(
    client: httpx.AsyncClient, secret: str | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A GraphQL operation with the given token; the whole body (data and errors)."""
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=bearer(secret)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ask_data(
    client: httpx.AsyncClient, secret: str | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = await ask(client, secret, query, variables)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


# --- the world -------------------------------------------------------------------------------------------------


@dataclass
class World:
    app: Starlette
    client: httpx.AsyncClient
    db: Database
    settings: Settings
    secrets: dict[str, str] = field(default_factory=dict)
    alert_ids: dict[str, str] = field(default_factory=dict)

    def token(self, name: str | None) -> str | None:
        return None if name is None else self.secrets[name]


def world_settings(data_dir: Path, database_url: str | None, shipper_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auto_migrate=False,
        # Token changes (creation, revocation) apply to the very next request.
        auth_cache_seconds=0,
        scheduler_enabled=False,
        shippers=[
            {"name": "everything", "kind": "file", "config": {"path": str(shipper_dir / "everything.ndjson")}},
            {
                "name": "finance",
                "kind": "file",
                "filters": {"namespace_prefix": "finance."},
                "config": {"path": str(shipper_dir / "finance.ndjson")},
            },
        ],
    )


UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key namespace } }"
RECORD = "mutation($input: RecordExecutionInput!) { recordExecution(input: $input) { runId } }"
SET_POLICY = "mutation($input: FreshnessPolicyInput!) { setFreshnessPolicy(input: $input) { name } }"
RUN_MONITOR = "mutation { runMonitor { alertsOpened error } }"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ol_event(
    run_id: str,
    job: tuple[str, str],
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    event_time: datetime | None = None,
    run_facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenLineage COMPLETE RunEvent."""
    return {
        "eventType": "COMPLETE",
        "eventTime": iso(event_time or datetime.now(UTC)),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": run_facets or {}},
        "job": {"namespace": job[0], "name": job[1]},
        "inputs": inputs or [],
        "outputs": outputs or [],
    }


def dataset(key: str, **facets: Any) -> dict[str, Any]:
    namespace, name = key.split("/", 1)
    return {"namespace": namespace, "name": name, "facets": facets}


def column_lineage(fields: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    """The columnLineage facet: output field -> [(upstream key, upstream field)]."""
    return {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
        "fields": {
            name: {
                "inputFields": [
                    {"namespace": key.split("/", 1)[0], "name": key.split("/", 1)[1], "field": upstream}
                    for key, upstream in sources
                ]
            }
            for name, sources in fields.items()
        },
    }


async def _record(
    client: httpx.AsyncClient,
    run_id: str,
    job: tuple[str, str],
    at: datetime,
    inputs: list[str],
    outputs: list[str],
    parent: tuple[str, str, str] | None = None,
) -> None:
    payload: dict[str, Any] = {
        "job": {"namespace": job[0], "name": job[1]},
        "runId": run_id,
        "state": "COMPLETE",
        "eventTime": iso(at),
        "startedAt": iso(at - timedelta(minutes=5)),
        "endedAt": iso(at),
        "inputs": [{"key": key} for key in inputs],
        "outputs": [{"key": key} for key in outputs],
    }
    if parent is not None:
        payload["parent"] = {"runId": parent[0], "job": {"namespace": parent[1], "name": parent[2]}}
    await ask_data(client, None, RECORD, {"input": payload})


async def load_world(client: httpx.AsyncClient) -> None:
    """Everything through the public API (GraphQL and POST /api/v1/lineage), with no token: auth is off."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    await ask_data(client, None, UPSERT, {"input": {"key": LEDGER, "type": "table"}})
    await ask_data(client, None, UPSERT, {"input": {"key": CLICKS, "type": "table", "aliases": [CLICKS_ALIAS]}})
    await _record(client, R_LOAD_CLICKS, ("marketing.etl", "load_clicks"), t0, [], [CLICKS])
    build_orders = ol_event(
        R_BUILD_ORDERS,
        ("finance.etl", "build_orders"),
        inputs=[dataset(CLICKS), dataset(RAW_ORDERS)],
        outputs=[
            dataset(
                ORDERS,
                columnLineage=column_lineage({"order_id": [(RAW_ORDERS, "id")], "campaign": [(CLICKS, "campaign_id")]}),
            )
        ],
        event_time=t0 + timedelta(hours=1),
    )
    posted = await client.post("/api/v1/lineage", json=build_orders)
    assert posted.status_code == 201, posted.text
    await _record(
        client,
        R_BUILD_DAILY,
        ("finance.etl", "build_daily"),
        t0 + timedelta(hours=2),
        [ORDERS],
        [ORDERS_DAILY],
        parent=(R_DAG, "marketing.etl", "dag"),
    )
    await _record(client, R_ATTRIBUTE, ("marketing.etl", "attribute"), t0 + timedelta(hours=3), [ORDERS], [ATTRIBUTION])
    await _record(client, R_PAYROLL, ("finance.etl", "payroll"), t0 + timedelta(hours=4), [ATTRIBUTION], [PAYROLL])
    # A marketing job along a finance-to-finance edge: finance sees the edge, not that job.
    await _record(client, R_PUBLISH, ("marketing.etl", "publish"), t0 + timedelta(hours=5), [ORDERS], [ORDERS_DAILY])
    for name, key in (("clicks-hourly", CLICKS), ("daily-hourly", ORDERS_DAILY)):
        await ask_data(client, None, SET_POLICY, {"input": {"name": name, "assetKey": key, "maxAge": "1h"}})
    run = (await ask_data(client, None, RUN_MONITOR))["runMonitor"]
    assert run == {"alertsOpened": 2, "error": None}, run


async def alert_ids(db: Database) -> dict[str, str]:
    """asset key -> id of its (open) alert."""
    async with db.session() as session:
        rows = await session.execute(select(Asset.key, Alert.id).join(Asset, Asset.id == Alert.asset_id))
        return {key: str(alert_id) for key, alert_id in rows.all()}


@asynccontextmanager
async def open_world(settings: Settings) -> AsyncIterator[World]:
    """The app on `settings` (a migrated, empty database), the world loaded, then the tokens issued."""
    app = create_app(settings)
    db: Database = app.state.db
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            await load_world(client)
            world = World(app=app, client=client, db=db, settings=settings)
            world.secrets = await issue_tokens(db)
            world.alert_ids = await alert_ids(db)
            yield world
    finally:
        await app.state.monitor.aclose()
        for runner in app.state.shippers.values():
            await runner.aclose()
        await db.dispose()


# --- database state --------------------------------------------------------------------------------------------

Snapshot = dict[str, list[str]]


async def snapshot(db: Database) -> Snapshot:
    """Every row of every table but the tokens' (whose last use changes on reads), as sorted text."""
    state: Snapshot = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == "api_tokens":
                continue
            rows = (await session.execute(select(table))).all()
            state[table.name] = sorted(repr(tuple(row)) for row in rows)
    return state


def difference(before: Snapshot, after: Snapshot) -> str:
    lines = []
    for name in sorted(set(before) | set(after)):
        gone = [row for row in before.get(name, []) if row not in after.get(name, [])]
        added = [row for row in after.get(name, []) if row not in before.get(name, [])]
        if gone or added:
            lines.append(f"{name}:")
            lines.extend(f"  - {row}" for row in gone)
            lines.extend(f"  + {row}" for row in added)
    return "\n".join(lines) or "no difference"


# --- putting the world back as it was loaded --------------------------------------------------------------------

SAVED_SCHEMA = "saved_world"


def _sqlite_path(settings: Settings) -> Path:
    return Path(settings.resolved_database_url.removeprefix("sqlite+aiosqlite:///"))


async def save_state(world: World) -> None:
    """Keeps a copy of every table (a file beside SQLite's, a schema beside Postgres' tables)."""
    if world.settings.is_sqlite:
        await world.db.engine.dispose()
        path = _sqlite_path(world.settings)
        shutil.copyfile(path, path.with_suffix(".saved"))
        return
    async with world.db.transaction() as session:
        await session.execute(text(f'DROP SCHEMA IF EXISTS "{SAVED_SCHEMA}" CASCADE'))
        await session.execute(text(f'CREATE SCHEMA "{SAVED_SCHEMA}"'))
        for table in Base.metadata.sorted_tables:
            await session.execute(text(f'CREATE TABLE "{SAVED_SCHEMA}"."{table.name}" AS TABLE "{table.name}"'))


async def restore_state(world: World) -> None:
    """Puts back every row save_state kept, without firing the change-feed triggers."""
    if world.settings.is_sqlite:
        await world.db.engine.dispose()
        path = _sqlite_path(world.settings)
        for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(path.with_suffix(".saved"), path)
        return
    tables = Base.metadata.sorted_tables
    async with world.db.transaction() as session:
        # Triggers (the change feed, and the foreign keys' own) stay quiet: the rows are put back as they were.
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        for table in tables:
            # DELETE rather than TRUNCATE: far cheaper on tables this small.
            await session.execute(text(f'DELETE FROM "{table.name}"'))
        for table in tables:
            await session.execute(text(f'INSERT INTO "{table.name}" SELECT * FROM "{SAVED_SCHEMA}"."{table.name}"'))


# --- a Postgres database of one's own ---------------------------------------------------------------------------


@asynccontextmanager
async def own_postgres_database(server_url: str, name: str) -> AsyncIterator[str]:
    """A migrated database `name` beside `server_url`'s; dropped at the end."""
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        engine = create_async_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
