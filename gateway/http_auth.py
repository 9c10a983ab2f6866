"""ASGI middleware that puts the caller's Principal on every protected request, or answers 401."""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth import Unauthenticated
from gateway.authenticator import Authenticator
from gateway.faults import is_database_unavailable, unavailable_response

logger = logging.getLogger("gateway.auth")
PRINCIPAL = "principal"
# Probes stay open: an orchestrator's liveness check carries no token.
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})


def _refusal(path: str, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="asset-gateway"'}
    if path.startswith("/graphql"):
        body = {"data": None, "errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}
        return JSONResponse(body, status_code=401, headers=headers)
    return JSONResponse({"error": message}, status_code=401, headers=headers)


def _is_ide_page(scope: Scope, headers: Headers) -> bool:
    # GraphiQL's page holds no data; its queries carry the token like any other request.
    return scope["method"] == "GET" and "text/html" in headers.get("accept", "") and not scope.get("query_string")


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        if scope["type"] == "websocket" and authorization is None:
            # Browsers cannot set headers on a websocket: the GraphQL view authenticates connection_init.
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and _is_ide_page(scope, headers):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticator.authenticate(authorization)
        except Unauthenticated as error:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401, "reason": error.message})
                return
            await _refusal(scope["path"], error.message)(scope, receive, send)
            return
        except Exception as error:
            if not is_database_unavailable(error):
                raise
            logger.warning("cannot check the token: the database is unavailable (%s)", type(error).__name__)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013, "reason": "database unavailable"})
                return
            await unavailable_response()(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)
