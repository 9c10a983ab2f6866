"""Stopping the gateway with subscriptions open: every subscription ends and the server stops promptly."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from gateway.settings import Settings
from tests.live.support import graphql_socket, serve

ASSET_CHANGED = "subscription { assetChanged { key } }"
ALERT_RAISED = "subscription { alertRaised { id } }"
UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"


async def test_stopping_the_broker_completes_every_subscription(settings: Settings) -> None:
    async with serve(settings) as served, graphql_socket(served.ws_url) as socket:
        assets = await socket.subscribe(ASSET_CHANGED)
        alerts = await socket.subscribe(ALERT_RAISED)
        await served.subscribed(2)
        await served.live.stop()
        # Each stream completes as a stream does; the connection itself stays up until the server closes it.
        assert await socket.next_message(assets) == {"id": assets, "type": "complete"}
        assert await socket.next_message(alerts) == {"id": alerts, "type": "complete"}
        assert served.live.all_subscriptions() == []
        refused = await socket.subscribe(ASSET_CHANGED)
        message = await socket.next_message(refused)
        assert message["payload"]["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


async def test_the_server_stops_promptly_with_open_subscriptions(settings: Settings) -> None:
    async with (
        serve(settings) as served,
        graphql_socket(served.ws_url) as first,
        graphql_socket(served.ws_url) as second,
    ):
        operation = await first.subscribe(ASSET_CHANGED)
        await second.subscribe(ALERT_RAISED)
        await served.subscribed(2)
        await served.graphql(UPSERT, {"input": {"key": "s3://bye/a.csv"}})
        assert (await first.next_data(operation))["assetChanged"] == {"key": "s3://bye/a.csv"}

        started = time.monotonic()
        await served.stop()
        assert time.monotonic() - started < 3
        for client in (first, second):
            with pytest.raises(ConnectionClosed) as closed:
                await client.receive()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012  # service restart
        assert served.live.all_subscriptions() == []
