"""Live-update test helpers: a real gateway served by uvicorn inside the test's event loop, a small
graphql-transport-ws client on the `websockets` library, and tokens made as `asset-gateway token create` does."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from gateway.app import create_app
from gateway.auth import hash_token, new_token
from gateway.database import Database
from gateway.live import LiveChanges
from gateway.settings import Settings
from gateway.store import tokens
from tests.helpers import free_port

PROTOCOL = "graphql-transport-ws"
SUBPROTOCOLS = [Subprotocol(PROTOCOL)]
FLOOD = """subscription { assetChanged(filter: {keyPrefix: "s3://flood/"}) { key metadata } }"""
UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"
BLOB_BYTES = 192 * 1024  # large, incompressible updates fill a transport's buffers after a few
WITHIN = 10.0  # seconds any expected message may take (a generous bound; the replica test measures latency)


@dataclass
class Served:
    app: Starlette
    base: str
    http: httpx.AsyncClient
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self, within: float = 20) -> None:
        """Stops the server as SIGTERM would (open connections are closed), and waits for it."""
        self.server.should_exit = True
        await asyncio.wait_for(asyncio.shield(self.task), within)

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"

    @property
    def live(self) -> LiveChanges:
        broker: LiveChanges = self.app.state.live
        return broker

    async def graphql(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def subscribed(self, count: int) -> None:
        """Waits until the broker holds `count` subscriptions."""
        await eventually(lambda: len(self.live.all_subscriptions()) == count, f"{count} subscriptions")


async def eventually(condition: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serve(settings: Settings, **overrides: Any) -> AsyncIterator[Served]:
    """create_app(settings) served on a loopback port by uvicorn, in this event loop; stopped on exit."""
    values = {"scheduler_enabled": False, "live_poll_seconds": 0.5} | overrides
    app = create_app(settings.model_copy(update=values))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), "the server to start")
    assert not task.done(), task.exception()
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            yield Served(app, base, http, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def create_token(settings: Settings, name: str, scope: str, namespaces: list[str]) -> str:
    """A bearer token stored as `asset-gateway token create` stores one."""
    secret = new_token()
    db = Database(settings)
    try:
        async with db.transaction() as session:
            await tokens.create_token(
                session,
                name=name,
                token_hash=hash_token(secret),
                display_prefix=secret[:10],
                scope=scope,
                namespaces=namespaces,
                now=datetime.now(UTC),
            )
    finally:
        await db.dispose()
    return secret


class GraphQLSocket:
    """A graphql-transport-ws client: connection_init, subscribe, and the messages that come back."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._ids = 0
        self._held: dict[str, list[dict[str, Any]]] = {}

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def receive(self, within: float = WITHIN) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.connection.recv(), within)
        assert isinstance(frame, str), "graphql-transport-ws messages are text frames"
        message: dict[str, Any] = orjson.loads(frame)
        return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        operation = str(self._ids)
        await self.send({"id": operation, "type": "subscribe", "payload": {"query": query, "variables": variables}})
        return operation

    async def next_message(self, operation: str, within: float = WITHIN) -> dict[str, Any]:
        """The next message of `operation`; those of other operations wait for their turn."""
        deadline = time.monotonic() + within
        while not self._held.get(operation):
            message = await self.receive(max(0.0, deadline - time.monotonic()))
            if "id" in message:
                self._held.setdefault(message["id"], []).append(message)
        return self._held[operation].pop(0)

    async def next_data(self, operation: str, within: float = WITHIN) -> dict[str, Any]:
        """The data of the next message of `operation`, which must be a `next` without errors."""
        message = await self.next_message(operation, within)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data


@asynccontextmanager
async def graphql_socket(
    url: str, headers: dict[str, str] | None = None, payload: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[GraphQLSocket]:
    """A connected and acknowledged graphql-transport-ws client."""
    async with connect(url, subprotocols=SUBPROTOCOLS, additional_headers=headers, **options) as connection:
        socket = GraphQLSocket(connection)
        ack = await socket.init(payload)
        assert ack["type"] == "connection_ack", ack
        yield socket


@asynccontextmanager
async def stalled_socket(base: str) -> AsyncIterator[GraphQLSocket]:
    """A client of the gateway at `base` whose receive buffers are tiny, which reads only when told to."""
    address = urlsplit(base)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (address.hostname, address.port))
    url = f"ws://{address.netloc}/graphql"
    options: dict[str, Any] = {"max_queue": 1, "ping_interval": None, "compression": None, "close_timeout": 1}
    async with connect(url, sock=raw, subprotocols=SUBPROTOCOLS, **options) as connection:
        client = GraphQLSocket(connection)
        assert (await client.init())["type"] == "connection_ack"
        yield client


def big_asset(key: str) -> dict[str, Any]:
    """upsertAsset variables for an asset with a large, incompressible metadata value."""
    return {"input": {"key": key, "metadata": {"blob": secrets.token_urlsafe(BLOB_BYTES)}}}
