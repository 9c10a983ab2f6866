"""Subscriptions delivered in process, over a real websocket, on SQLite and on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.database import Database
from gateway.settings import Settings
from gateway.store.assets import AssetSpec, upsert_asset
from tests.live.support import graphql_socket, serve

ASSET_CHANGED = """subscription($filter: AssetFilterInput) {
  assetChanged(filter: $filter) { key namespace owners tags lastStatus lastExecution { runId state job { name } } }
}"""
EXECUTION_UPDATED = """subscription($filter: ExecutionUpdateFilterInput) {
  executionUpdated(filter: $filter) { runId state job { namespace name } outputs { asset { key } } }
}"""
ALERT_RAISED = """subscription($filter: AlertFilterInput) {
  alertRaised(filter: $filter) { id kind severity open asset { key } }
}"""
UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"
RECORD = "mutation($input: RecordExecutionInput!) { recordExecution(input: $input) { runId } }"
POLICY = "mutation($input: FreshnessPolicyInput!) { setFreshnessPolicy(input: $input) { name } }"
RUN_MONITOR = "mutation { runMonitor { alertsOpened error } }"


def execution(job: str, state: str, output: str, **extra: Any) -> dict[str, Any]:
    return {"job": {"namespace": "live.jobs", "name": job}, "state": state, "outputs": [{"key": output}], **extra}


async def test_asset_changed_delivers_the_asset_as_queries_show_it(settings: Settings) -> None:
    async with serve(settings) as served, graphql_socket(served.ws_url) as socket:
        operation = await socket.subscribe(ASSET_CHANGED, {"filter": {"namespacePrefix": "s3://live"}})
        await served.subscribed(1)

        await served.graphql(UPSERT, {"input": {"key": "s3://live/a.csv", "owners": ["ana"]}})
        first = (await socket.next_data(operation))["assetChanged"]
        assert first == {
            "key": "s3://live/a.csv",
            "namespace": "s3://live",
            "owners": ["ana"],
            "tags": [],
            "lastStatus": None,
            "lastExecution": None,
        }

        start = execution("load_a", "START", "s3://live/a.csv", runId="run-a")
        await served.graphql(RECORD, {"input": start})
        second = (await socket.next_data(operation))["assetChanged"]
        assert second["lastStatus"] == "START"
        assert second["lastExecution"] == {"runId": "run-a", "state": "START", "job": {"name": "load_a"}}
        await served.graphql(RECORD, {"input": {**start, "state": "COMPLETE"}})
        third = (await socket.next_data(operation))["assetChanged"]
        # Nested fields are read when the update is sent: the run as it is now, not as the last update saw it.
        assert third["lastStatus"] == "COMPLETE"
        assert third["lastExecution"] == {"runId": "run-a", "state": "COMPLETE", "job": {"name": "load_a"}}


async def test_execution_updated_follows_a_run_through_its_states(settings: Settings) -> None:
    async with serve(settings) as served, graphql_socket(served.ws_url) as socket:
        by_asset = await socket.subscribe(EXECUTION_UPDATED, {"filter": {"assetKey": "s3://live/b.csv"}})
        failed_only = await socket.subscribe(EXECUTION_UPDATED, {"filter": {"jobName": "load_b", "states": ["FAIL"]}})
        await served.subscribed(2)

        await served.graphql(RECORD, {"input": execution("other", "COMPLETE", "s3://live/elsewhere.csv")})
        start = execution("load_b", "START", "s3://live/b.csv", runId="run-b")
        await served.graphql(RECORD, {"input": start})
        started = (await socket.next_data(by_asset))["executionUpdated"]
        # The run of `other` came first and touched another asset: the first update is load_b's.
        assert started == {
            "runId": "run-b",
            "state": "START",
            "job": {"namespace": "live.jobs", "name": "load_b"},
            "outputs": [{"asset": {"key": "s3://live/b.csv"}}],
        }
        await served.graphql(RECORD, {"input": {**start, "state": "FAIL"}})
        assert (await socket.next_data(by_asset))["executionUpdated"]["state"] == "FAIL"
        # The START never reached the subscription that wants failures only.
        assert (await socket.next_data(failed_only))["executionUpdated"]["state"] == "FAIL"


async def test_alert_raised_when_the_monitor_opens_an_alert(settings: Settings) -> None:
    key = "postgres://live-db:5432/mart.orders"
    async with serve(settings) as served, graphql_socket(served.ws_url) as socket:
        stale = await socket.subscribe(ALERT_RAISED, {"filter": {"kinds": ["STALE"], "namespacePrefix": "postgres://"}})
        failed = await socket.subscribe(ALERT_RAISED, {"filter": {"kinds": ["FAILED"]}})
        await served.subscribed(2)

        long_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        await served.graphql(RECORD, {"input": execution("build", "COMPLETE", key, eventTime=long_ago)})
        await served.graphql(POLICY, {"input": {"name": "orders-daily", "assetKey": key, "maxAge": "24h"}})
        run = (await served.graphql(RUN_MONITOR))["runMonitor"]
        assert run == {"alertsOpened": 1, "error": None}

        alert = (await socket.next_data(stale))["alertRaised"]
        assert alert["kind"] == "STALE"
        assert alert["open"] is True
        assert alert["asset"] == {"key": key}

        await served.graphql(RECORD, {"input": execution("broken", "FAIL", "s3://live/broken.csv")})
        await served.graphql(RUN_MONITOR)
        assert (await socket.next_data(failed))["alertRaised"]["asset"] == {"key": "s3://live/broken.csv"}


async def test_writes_of_another_process_are_delivered_too(settings: Settings) -> None:
    # Another process's writes (the CLI, another replica on Postgres) never pass this app's own commit hook.
    async with serve(settings) as served, graphql_socket(served.ws_url) as socket:
        operation = await socket.subscribe(ASSET_CHANGED)
        await served.subscribed(1)
        other = Database(settings)
        try:
            async with other.transaction() as session:
                await upsert_asset(session, AssetSpec(key="s3://elsewhere/x.csv"), datetime.now(UTC))
        finally:
            await other.dispose()
        assert (await socket.next_data(operation))["assetChanged"]["key"] == "s3://elsewhere/x.csv"


async def test_client_mistakes_are_answered_on_the_subscription(settings: Settings) -> None:
    async with serve(settings) as served, graphql_socket(served.ws_url) as socket:
        # Over HTTP, a subscription is refused outright.
        response = await served.http.post("/graphql", json={"query": "subscription { assetChanged { key } }"})
        assert response.status_code == 400
        assert "subscriptions are not allowed" in response.text
        # A filter the store refuses, and a variable no database can store: coded errors, no subscription left.
        bad_filter = await socket.subscribe(ASSET_CHANGED, {"filter": {"metadata": [{"key": 'a"b', "value": 1}]}})
        message = await socket.next_message(bad_filter)
        assert message["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert await socket.next_message(bad_filter) == {"id": bad_filter, "type": "complete"}
        nul = await socket.subscribe(ASSET_CHANGED, {"filter": {"keyPrefix": "s3://\u0000"}})
        message = await socket.next_message(nul)
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert served.live.all_subscriptions() == []
