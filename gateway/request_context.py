"""The outermost middleware: a request id for every request, one access-log record, and the HTTP figures.

Pure ASGI (no BaseHTTPMiddleware), so that the id lives in a contextvar that every coroutine of the request sees:
whatever is logged while the request runs carries it, and the client gets it back in `X-Request-ID`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import REQUEST_ID
from gateway.metrics import UNMATCHED_ROUTE, GatewayMetrics

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is short and plain (it ends up in log lines and a response header); otherwise
# the gateway makes one. UUIDs, W3C trace ids and most load balancers' ids fit.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/@-]{1,128}")
access_logger = logging.getLogger("gateway.access")
# Any token is a valid HTTP method; the label keeps to the usual ones.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(headers: Headers) -> str:
    offered = headers.get(REQUEST_ID_HEADER)
    if offered is not None and _SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The route's path template: a bounded label, unlike the raw path."""
    route = scope.get("route")
    if route is None:
        # Answered before routing (401, 503 from the auth middleware): find the route the request was for.
        router = getattr(scope.get("app"), "router", None)
        for candidate in getattr(router, "routes", ()):
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        # Should the app raise before it answers, the server's error handler (outside us) answers 500.
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                self._record(scope, status, time.perf_counter() - started, request_id)
            REQUEST_ID.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        duration_ms = round(seconds * 1000, 2)
        # A 5xx is the operator's business (an outage answers 503): it stands out of the stream of requests.
        access_logger.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "%s %s %d %.1fms",
            method,
            path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "request_id": request_id,
            },
        )
        if self.metrics is not None:
            label = method if method in _METHODS else "OTHER"
            self.metrics.observe_http(route_template(scope), label, status, seconds)
