"""A consumer that does not keep up is dropped and disconnected; the broker and everyone else carry on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from gateway.settings import Settings
from tests.live.support import FLOOD, UPSERT, GraphQLSocket, Served, big_asset, graphql_socket, serve, stalled_socket

QUEUE = 4
MAX_WRITES = 400


async def flood_until_dropped(served: Served) -> list[str]:
    """Writes big asset updates until the broker drops a subscription; the keys written, in order."""
    written: list[str] = []
    while served.live.dropped == 0:
        assert len(written) < MAX_WRITES, "no subscription was dropped"
        key = f"s3://flood/{len(written):04d}.bin"
        await served.graphql(UPSERT, big_asset(key))
        written.append(key)
    return written


async def read_keys(client: GraphQLSocket, operation: str, into: list[str]) -> None:
    while True:
        into.append((await client.next_data(operation))["assetChanged"]["key"])


async def read_until_closed(client: GraphQLSocket, operation: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    try:
        while True:
            messages.append(await client.next_message(operation))
    except ConnectionClosed:
        return messages


async def test_a_consumer_that_stops_reading_is_dropped_with_a_notice(settings: Settings) -> None:
    async with (
        serve(settings, live_queue_size=QUEUE, live_drop_grace_seconds=20) as served,
        stalled_socket(served.base) as slow,
        graphql_socket(served.ws_url) as steady,
    ):
        slow_operation = await slow.subscribe(FLOOD)
        steady_operation = await steady.subscribe(FLOOD)
        await served.subscribed(2)
        received: list[str] = []
        reader = asyncio.create_task(read_keys(steady, steady_operation, received))
        try:
            written = await flood_until_dropped(served)
            assert len(served.live.all_subscriptions()) == 1
            # The steady consumer got everything, and keeps getting what comes after the drop.
            await served.graphql(UPSERT, {"input": {"key": "s3://flood/after.bin"}})
            written.append("s3://flood/after.bin")
            for _ in range(1000):
                if received == written:
                    break
                await asyncio.sleep(0.01)
            assert received == written
        finally:
            reader.cancel()

        # The slow one, reading at last: what the transport held, then the notice, then the close.
        seen: list[str] = []
        while (message := await slow.next_message(slow_operation))["type"] == "next":
            if "errors" in message["payload"]:
                break
            seen.append(message["payload"]["data"]["assetChanged"]["key"])
        assert seen == written[: len(seen)]
        assert len(seen) < len(written) - QUEUE
        assert message["payload"]["errors"][0]["extensions"]["code"] == "SLOW_CONSUMER"
        assert "fell 4 updates behind" in message["payload"]["errors"][0]["message"]
        assert (await slow.next_message(slow_operation))["type"] == "complete"
        with pytest.raises(ConnectionClosed) as closed:
            await slow.receive()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_a_consumer_that_never_reads_is_cut_off(settings: Settings) -> None:
    async with (
        serve(settings, live_queue_size=QUEUE, live_drop_grace_seconds=0.5) as served,
        stalled_socket(served.base) as slow,
        graphql_socket(served.ws_url) as steady,
    ):
        slow_operation = await slow.subscribe(FLOOD)
        steady_operation = await steady.subscribe(FLOOD)
        await served.subscribed(2)
        received: list[str] = []
        reader = asyncio.create_task(read_keys(steady, steady_operation, received))
        try:
            written = await flood_until_dropped(served)
            await asyncio.sleep(1.5)  # well past the grace period
            await served.graphql(UPSERT, {"input": {"key": "s3://flood/after.bin"}})
            for _ in range(1000):
                if received == [*written, "s3://flood/after.bin"]:
                    break
                await asyncio.sleep(0.01)
            assert received == [*written, "s3://flood/after.bin"]
        finally:
            reader.cancel()
        # Cut off without waiting for it: the buffered updates, then the end of the connection, and no notice.
        messages = await read_until_closed(slow, slow_operation)
        assert {message["type"] for message in messages} == {"next"}
        assert not [message for message in messages if "errors" in message["payload"]]
        assert len(messages) < len(written)
