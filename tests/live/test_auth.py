"""Who may subscribe, and to what: websocket authentication, filters and namespace grants."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.settings import Settings
from tests.live.support import SUBPROTOCOLS, GraphQLSocket, create_token, graphql_socket, serve

ASSET_CHANGED = "subscription($filter: AssetFilterInput) { assetChanged(filter: $filter) { key } }"
EXECUTION_UPDATED = "subscription { executionUpdated { runId job { namespace } } }"
ALERT_RAISED = "subscription { alertRaised { asset { key } } }"
UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"
RECORD = "mutation($input: RecordExecutionInput!) { recordExecution(input: $input) { runId } }"


async def closed_with(socket: GraphQLSocket) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        await socket.receive()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_websocket_without_a_valid_token_is_refused(settings: Settings) -> None:
    token = await create_token(settings, "reader", "read", ["*"])
    admin = await create_token(settings, "admin", "admin", ["*"])
    async with serve(settings) as served:
        # No token in connection_init: 4403 Forbidden, before any operation can run.
        for payload in ({}, {"Authorization": "Bearer agw_not-a-token"}, {"authToken": 42}):
            async with connect(served.ws_url, subprotocols=SUBPROTOCOLS) as connection:
                socket = GraphQLSocket(connection)
                await socket.send({"type": "connection_init", "payload": payload})
                assert await closed_with(socket) == 4403, payload
        # An operation without connection_init is refused as well (4401), and no subscription was made.
        async with connect(served.ws_url, subprotocols=SUBPROTOCOLS) as connection:
            socket = GraphQLSocket(connection)
            await socket.subscribe(ASSET_CHANGED)
            assert await closed_with(socket) == 4401
        assert served.live.all_subscriptions() == []
        # A bad Authorization header fails the upgrade itself.
        with pytest.raises(InvalidStatus):
            async with connect(
                served.ws_url, subprotocols=SUBPROTOCOLS, additional_headers={"authorization": "Bearer x"}
            ):
                pass

        # The token in connection_init, under any spelling of the key, or as authToken; or in the header.
        for payload in (
            {"authorization": f"Bearer {token}"},
            {"AUTHORIZATION": f"Bearer {token}"},
            {"authToken": token},
        ):
            async with graphql_socket(served.ws_url, payload=payload):
                pass
        async with graphql_socket(served.ws_url, headers={"Authorization": f"Bearer {token}"}) as socket:
            operation = await socket.subscribe(ASSET_CHANGED)
            await served.subscribed(1)
            await served.graphql(UPSERT, {"input": {"key": "s3://auth/a.csv"}}, token=admin)
            assert (await socket.next_data(operation))["assetChanged"] == {"key": "s3://auth/a.csv"}


async def test_filters_and_grants_decide_what_is_delivered(settings: Settings) -> None:
    admin = await create_token(settings, "admin", "admin", ["*"])
    team_a = await create_token(settings, "team-a", "read", ["s3://team-a*"])
    async with (
        serve(settings) as served,
        graphql_socket(served.ws_url, payload={"Authorization": f"Bearer {team_a}"}) as reader,
        graphql_socket(served.ws_url, payload={"Authorization": f"Bearer {admin}"}) as everything,
    ):
        granted = await reader.subscribe(ASSET_CHANGED)
        runs = await reader.subscribe(EXECUTION_UPDATED)
        alerts = await reader.subscribe(ALERT_RAISED)
        tagged = await everything.subscribe(ASSET_CHANGED, {"filter": {"tags": ["pii"]}})
        await served.subscribed(4)

        # Written in this order: whatever either client should not see comes before what it should.
        await served.graphql(UPSERT, {"input": {"key": "s3://team-b/secret.csv", "tags": ["pii"]}}, token=admin)
        job_b = {"namespace": "team-b.jobs", "name": "load"}
        await served.graphql(
            RECORD,
            {"input": {"job": job_b, "state": "FAIL", "outputs": [{"key": "s3://team-a/b-wrote.csv"}]}},
            token=admin,
        )
        await served.graphql(UPSERT, {"input": {"key": "s3://team-a/open.csv"}}, token=admin)
        await served.graphql(UPSERT, {"input": {"key": "s3://team-a/tagged.csv", "tags": ["pii"]}}, token=admin)
        job_a = {"namespace": "s3://team-a.jobs", "name": "load"}
        run = await served.graphql(
            RECORD,
            {"input": {"job": job_a, "state": "COMPLETE", "outputs": [{"key": "s3://team-a/open.csv"}]}},
            token=admin,
        )

        # The grant hides team-b's asset; the job of team-b's run too, though it wrote a team-a asset.
        seen = [(await reader.next_data(granted))["assetChanged"]["key"] for _ in range(3)]
        assert seen == ["s3://team-a/b-wrote.csv", "s3://team-a/open.csv", "s3://team-a/tagged.csv"]
        executed = (await reader.next_data(runs))["executionUpdated"]
        assert executed == {"runId": run["recordExecution"]["runId"], "job": {"namespace": "s3://team-a.jobs"}}
        # The filter: only tagged assets, of every namespace.
        seen = [(await everything.next_data(tagged))["assetChanged"]["key"] for _ in range(2)]
        assert seen == ["s3://team-b/secret.csv", "s3://team-a/tagged.csv"]

        # An alert on team-b's asset is not team-a's business; one on a team-a asset is.
        await served.graphql(
            RECORD,
            {"input": {"job": job_b, "state": "FAIL", "outputs": [{"key": "s3://team-b/secret.csv"}]}},
            token=admin,
        )
        await served.graphql("mutation { runMonitor { alertsOpened } }", token=admin)
        assert (await reader.next_data(alerts))["alertRaised"] == {"asset": {"key": "s3://team-a/b-wrote.csv"}}
        # Had team-b's alert been delivered, it would come before the alert of this later sweep.
        await served.graphql(
            RECORD,
            {"input": {"job": job_a, "state": "FAIL", "outputs": [{"key": "s3://team-a/late.csv"}]}},
            token=admin,
        )
        await served.graphql("mutation { runMonitor { alertsOpened } }", token=admin)
        assert (await reader.next_data(alerts))["alertRaised"] == {"asset": {"key": "s3://team-a/late.csv"}}
