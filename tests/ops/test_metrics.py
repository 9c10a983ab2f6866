"""/metrics: HTTP, GraphQL, ingestion, monitor and shipper figures, per app, behind the auth middleware."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.auth import hash_token, new_token
from gateway.settings import Settings
from gateway.store import tokens
from tests.ops.support import run_event, sample, scrape
from tests.shippers import settled

RUN_MONITOR = "mutation Sweep { runMonitor { assetsChecked alertsOpened error } }"
RUN_SHIPPER = "mutation Ship($name: String!) { runShipper(name: $name) { shipped parked error } }"


def configured(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "scheduler_enabled": False,
            "freshness_policies": [
                {"name": "marts-hourly", "selector": {"namespace_prefix": "postgres://"}, "max_age": "1h"}
            ],
            "shippers": [
                {"name": "to-file", "kind": "file", "config": {"path": str(tmp_path / "out.ndjson")}},
                # A target that always fails (its path is a folder): parked after one run, or failed.
                {
                    "name": "parked",
                    "kind": "file",
                    "max_attempts": 1,
                    "park_after_runs": 1,
                    "config": {"path": str(tmp_path)},
                },
                {"name": "failing", "kind": "file", "max_attempts": 1, "config": {"path": str(tmp_path)}},
            ],
        }
    )


@pytest.fixture
async def metrics_app(settings: Settings, tmp_path: Path) -> AsyncIterator[Starlette]:
    app = create_app(configured(settings, tmp_path))
    yield app
    for runner in app.state.shippers.values():
        await runner.aclose()
    await app.state.db.dispose()


async def test_the_figures_move(metrics_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=metrics_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        before = await scrape(client)
        for name in ("to-file", "parked", "failing"):
            assert sample(before, "gateway_shipper_shipped_changes_total", shipper=name) == 0
            assert sample(before, "gateway_shipper_last_success_timestamp_seconds", shipper=name) == 0
        assert sample(before, "gateway_monitor_runs_total", monitor="freshness") == 0
        assert sample(before, "gateway_ingested_events_total", outcome="accepted") == 0

        # Ingestion: two stored, one duplicate, one invalid.
        first, second = run_event(job="orders"), run_event(job="customers")
        assert (await client.post("/api/v1/lineage", json=first)).status_code == 201
        assert (await client.post("/api/v1/lineage", json=[second, first])).status_code == 201
        invalid = {**run_event(), "eventTime": "yesterday"}
        assert (await client.post("/api/v1/lineage", json=invalid)).status_code == 400

        # GraphQL: named and anonymous, ok and error, queries and mutations.
        for _ in range(2):
            body = (await client.post("/graphql", json={"query": "query Catalog { assets { totalCount } }"})).json()
            assert body == {"data": {"assets": {"totalCount": 3}}}
        assert "errors" in (await client.post("/graphql", json={"query": "{ nope }"})).json()
        sweep = (await client.post("/graphql", json={"query": RUN_MONITOR})).json()["data"]["runMonitor"]
        assert sweep["error"] is None
        assert sweep["assetsChecked"] >= 3
        assert sweep["alertsOpened"] >= 1  # the events are from January: stale for an hourly policy
        # On Postgres a change is readable once no older transaction runs anywhere on the server.
        await settled(metrics_app.state.db)
        reports: dict[str, dict[str, Any]] = {}
        for name in ("to-file", "parked", "failing"):
            ran = await client.post("/graphql", json={"query": RUN_SHIPPER, "variables": {"name": name}})
            reports[name] = ran.json()["data"]["runShipper"]
        assert reports["to-file"]["shipped"] > 0
        assert reports["parked"]["parked"] == 1
        assert reports["failing"]["error"] is not None
        assert (await client.get("/nowhere")).status_code == 404
        scraped_at = time.time()

        after = await scrape(client)

    assert sample(after, "gateway_ingested_events_total", outcome="accepted") == 2
    assert sample(after, "gateway_ingested_events_total", outcome="duplicate") == 1
    assert sample(after, "gateway_ingested_events_total", outcome="rejected") == 1

    graphql = "gateway_graphql_operations_total"
    assert sample(after, graphql, operation="Catalog", type="query", outcome="ok") == 2
    assert sample(after, graphql, operation="anonymous", type="query", outcome="error") == 1
    assert sample(after, graphql, operation="Sweep", type="mutation", outcome="ok") == 1
    assert sample(after, graphql, operation="Ship", type="mutation", outcome="ok") == 3
    latency = "gateway_graphql_operation_duration_seconds_count"
    assert sample(after, latency, operation="Catalog", type="query") == 2
    assert sample(after, "gateway_graphql_operation_duration_seconds_sum", operation="Catalog", type="query") > 0

    http = "gateway_http_requests_total"
    assert sample(after, http, route="/graphql", method="POST", status="200") == 7
    assert sample(after, http, route="/api/v1/lineage", method="POST", status="201") == 2
    assert sample(after, http, route="/api/v1/lineage", method="POST", status="400") == 1
    assert sample(after, http, route="unmatched", method="GET", status="404") == 1
    # The first scrape counts once it has been answered.
    assert sample(after, http, route="/metrics", method="GET", status="200") == 1
    assert sample(after, "gateway_http_request_duration_seconds_count", route="/graphql", method="POST") == 7
    bucket = "gateway_http_request_duration_seconds_bucket"
    assert sample(after, bucket, route="/graphql", method="POST", le="+Inf") == 7

    assert sample(after, "gateway_monitor_runs_total", monitor="freshness") == 1
    assert sample(after, "gateway_monitor_failures_total", monitor="freshness") == 0
    assert sample(after, "gateway_monitor_assets_checked_total", monitor="freshness") == sweep["assetsChecked"]
    assert sample(after, "gateway_monitor_alerts_opened_total", monitor="freshness") == sweep["alertsOpened"]
    assert sample(after, "gateway_monitor_alerts_resolved_total", monitor="freshness") == 0
    assert 0 < sample(after, "gateway_monitor_last_success_timestamp_seconds", monitor="freshness") <= scraped_at

    shipped = reports["to-file"]["shipped"]
    assert sample(after, "gateway_shipper_shipped_changes_total", shipper="to-file") == shipped
    assert 0 < sample(after, "gateway_shipper_last_success_timestamp_seconds", shipper="to-file") <= scraped_at
    assert sample(after, "gateway_shipper_parked_batches_total", shipper="parked") == 1
    assert sample(after, "gateway_shipper_failed_runs_total", shipper="parked") == 0
    assert sample(after, "gateway_shipper_failed_runs_total", shipper="failing") == 1
    assert sample(after, "gateway_shipper_last_success_timestamp_seconds", shipper="failing") == 0
    # The process figures come along (a registry of our own does not get them by default).
    assert sample(after, "process_cpu_seconds_total") >= 0


async def test_each_app_has_its_own_registry(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://one") as one,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://two") as two,
        ):
            for _ in range(3):
                assert (await one.post("/graphql", json={"query": "query Ping { __typename }"})).status_code == 200
            ops = "gateway_graphql_operations_total"
            assert sample(await scrape(one), ops, operation="Ping", type="query", outcome="ok") == 3
            assert (ops, (("operation", "Ping"), ("outcome", "ok"), ("type", "query"))) not in await scrape(two)
    finally:
        await first.state.db.dispose()
        await second.state.db.dispose()


async def test_metrics_need_a_token_once_auth_is_on(settings: Settings) -> None:
    app = create_app(settings)
    token = new_token()
    try:
        async with app.state.db.transaction() as session:
            await tokens.create_token(
                session,
                name=f"scraper-{uuid.uuid4().hex[:8]}",
                token_hash=hash_token(token),
                display_prefix=token[:8],
                scope="read",
                namespaces=["team.*"],
                now=datetime.now(UTC),
            )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            refused = await client.get("/metrics")
            assert refused.status_code == 401
            assert "gateway_http_requests_total" not in refused.text
            # Any valid token will do, whatever its scope and namespaces.
            samples = await scrape(client, authorization=f"Bearer {token}")
            assert sample(samples, "gateway_http_requests_total", route="/metrics", method="GET", status="401") == 1
    finally:
        await app.state.db.dispose()
