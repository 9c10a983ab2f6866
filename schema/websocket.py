"""One graphql-transport-ws connection to /graphql: who it is, and how it is cut off when it does not keep up.

Authentication: an `Authorization` header on the upgrade request is checked by the AuthMiddleware. Browsers
cannot set one on a websocket, so without it the `connection_init` payload is checked instead
(`{"Authorization": "Bearer <token>"}`, the key in any case, or `{"authToken": "<token>"}`); until then the
connection holds a principal that may read nothing, and the protocol refuses any operation before it is
acknowledged. A refused payload closes the connection with 4403 (Forbidden).

Slow consumers: when a subscription's queue overflows, the broker drops it and calls `drop`. The dropped
operation then sends its notice (an error on the subscription) and completes, as soon as the transport lets it;
after at most the grace period the connection is closed (1008) and its handler stopped, whatever the client
does, so a client that stopped reading holds nothing of the gateway's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected

from gateway.auth import NamespaceGrants, Principal, Scope

logger = logging.getLogger("gateway.live")
SESSION = "websocket_session"
SLOW_CONSUMER_CLOSE = 1008  # policy violation
# Holds no grant: reads nothing until connection_init has authenticated the connection.
UNAUTHENTICATED = Principal(name="unauthenticated", scope=Scope.READ, grants=NamespaceGrants(()))


def connection_authorization(params: object) -> str | None:
    """The Authorization value a connection_init payload carries, or None."""
    if not isinstance(params, Mapping):
        return None
    headers = params.get("headers")
    for source in (params, headers if isinstance(headers, Mapping) else {}):
        for name, value in source.items():
            if isinstance(name, str) and name.lower() == "authorization":
                return value if isinstance(value, str) else ""
        token = source.get("authToken")
        if token is not None:
            if not isinstance(token, str):
                return ""
            token = token.strip()
            return token if " " in token else f"Bearer {token}"
    return None


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are text frames; the view's orjson encoder gives bytes, sent as binary."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        encoded = self.view.encode_json(message)
        try:
            await self.ws.send_text(encoded.decode() if isinstance(encoded, bytes) else encoded)
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error


class WebSocketSession:
    def __init__(self, send: Send, grace_seconds: float) -> None:
        self._send = send
        self.grace_seconds = grace_seconds
        self.authenticated = False
        self.handler: asyncio.Task[None] | None = None
        self.cut_off = False
        self._dropping: asyncio.Task[None] | None = None

    def drop(self, reason: str, operation: asyncio.Task[object] | None = None) -> None:
        """Disconnect this connection because `operation` fell behind; returns at once."""
        if self._dropping is None and self.handler is not None and not self.handler.done():
            self._dropping = asyncio.create_task(self._disconnect(reason, operation), name="live-disconnect")

    async def _disconnect(self, reason: str, operation: asyncio.Task[object] | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_seconds
        if operation is not None and not operation.done():
            # The operation sends the notice and completes once the transport takes its pending messages.
            await asyncio.wait({operation}, timeout=self.grace_seconds)
        try:
            async with asyncio.timeout(max(0.05, deadline - loop.time())):
                await self._send({"type": "websocket.close", "code": SLOW_CONSUMER_CLOSE, "reason": "too slow"})
        except Exception as error:  # the client stopped reading, or is gone already
            logger.info("live updates: closing a slow consumer's connection: %s", type(error).__name__)
        logger.info("live updates: disconnected a consumer that did not keep up (%s)", reason)
        if self.handler is not None and not self.handler.done():
            self.cut_off = True
            self.handler.cancel()


async def serve(app: ASGIApp, scope: ASGIScope, receive: Receive, send: Send, grace_seconds: float) -> None:
    """Runs the protocol handler `app` for one websocket, as a task that a slow-consumer drop may stop."""
    session = WebSocketSession(send, grace_seconds)
    scope.setdefault("state", {})[SESSION] = session
    session.handler = asyncio.ensure_future(app(scope, receive, send))
    try:
        await session.handler
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not session.cut_off or (current is not None and current.cancelling()):
            raise
