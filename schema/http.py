"""The GraphQL endpoint: Strawberry's ASGI view with our context, orjson and a per-request time limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from gateway.auth import NOBODY, Principal, Unauthenticated
from gateway.authenticator import Authenticator
from gateway.body_limit import BodyTooLarge, read_body, replay
from gateway.database import Database
from gateway.faults import RETRY_AFTER_SECONDS, SERVICE_UNAVAILABLE
from gateway.http_auth import PRINCIPAL
from gateway.live import LiveChanges
from gateway.settings import Settings
from schema import websocket
from schema.build import GatewaySchema
from schema.context import Context
from schema.loaders import Loaders


class GatewayGraphQL(GraphQL[Context, None]):
    websocket_adapter_class = websocket.TextWebSocketAdapter

    def __init__(
        self,
        schema: GatewaySchema,
        db: Database,
        settings: Settings,
        monitors: dict[str, Any] | None = None,
        shippers: dict[str, Any] | None = None,
        authenticator: Authenticator | None = None,
        live: LiveChanges | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=settings.graphql_get_queries,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.db = db
        self.settings = settings
        self.monitors = monitors or {}
        self.shippers = shippers or {}
        self.authenticator = authenticator or Authenticator(db, settings)
        self.live = live

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        state = request.scope.get("state", {})
        principal, session = state.get(PRINCIPAL), state.get(websocket.SESSION)
        if principal is None:
            # A websocket without an Authorization header authenticates its connection_init (on_ws_connect).
            principal = websocket.UNAUTHENTICATED if session is not None else await self._tokenless()
        elif session is not None:
            session.authenticated = True
        context = Context.create(self.db, self.settings, request, response, self.monitors, self.shippers, principal)
        context.websocket, context.live = session, self.live
        return context

    async def _tokenless(self) -> Principal:
        # Only the GraphiQL page reaches here without a token (the middleware refuses the rest): it reads nothing.
        try:
            return await self.authenticator.authenticate(None)
        except Unauthenticated:
            return NOBODY

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        session = context.websocket
        if session is None or session.authenticated:
            return UnsetType()
        try:
            principal = await self.authenticator.authenticate(
                websocket.connection_authorization(context.connection_params)
            )
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from error
        session.authenticated = True
        context.principal, context.loaders = principal, Loaders(self.db, principal)
        return UnsetType()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Strawberry would read any body whole: bound it first, chunked or not.
            try:
                body = await read_body(scope, receive, self.settings.max_graphql_body_bytes)
            except BodyTooLarge as error:
                refusal = {
                    "data": None,
                    "errors": [{"message": error.message, "extensions": {"code": "PAYLOAD_TOO_LARGE"}}],
                }
                await JSONResponse(refusal, status_code=413)(scope, receive, send)
                return
            if body is None:
                return
            receive = replay(body, receive)
        elif scope["type"] == "websocket":
            await websocket.serve(super().__call__, scope, receive, send, self.settings.live_drop_grace_seconds)
            return
        await super().__call__(scope, receive, send)

    def encode_json(self, data: object) -> bytes:
        try:
            return orjson.dumps(data)
        except orjson.JSONEncodeError:
            # orjson writes no integer beyond 64 bits; one stored before the edge refused them must not turn every
            # answer that shows it into a 500.
            return json.dumps(data, separators=(",", ":")).encode()

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        # A database that is away is not the client's fault nor a bug: 503 and when to retry, like every other path.
        results = response_data if isinstance(response_data, list) else [response_data]
        if any(_has_code(result, SERVICE_UNAVAILABLE) for result in results):
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return super().create_response(response_data, sub_response)

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData | list[GraphQLRequestData]:
        # Strawberry expects a JSON object, or an array of objects, and fails with a 500 on anything else.
        if request.method == "POST" and "json" in (request.content_type or ""):
            body = await request.get_body()
            start = body.lstrip()[:1]
            if start == b"[":
                self._check_batch(self.parse_json(body))
            elif start != b"{":
                parsed = self.parse_json(body)  # 400 when it is no JSON at all
                raise HTTPException(400, f"the request must be a JSON object, got {_json_kind(parsed)}")
        data = await super().parse_http_body(request)
        for index, item in enumerate(data if isinstance(data, list) else [data]):
            if not isinstance(item.operation_name, str | None):
                raise HTTPException(400, f"the operationName of operation {index} must be a string or null")
        return data

    def _check_batch(self, operations: list[Any]) -> None:
        limit = self.settings.max_batch_operations
        if not limit:
            raise HTTPException(400, "batched operations (a JSON array) are not accepted: send one per request")
        if not 1 <= len(operations) <= limit:
            raise HTTPException(400, f"a batch holds 1 to {limit} operations, got {len(operations)}")
        for index, item in enumerate(operations):
            if not isinstance(item, dict):
                raise HTTPException(400, f"operation {index} of the batch must be a JSON object")
            if not isinstance(item.get("query"), str | None) or not isinstance(item.get("variables"), dict | None):
                raise HTTPException(400, f"operation {index} of the batch needs a string query and object variables")
            if not isinstance(item.get("extensions"), dict | None):
                raise HTTPException(400, f"the extensions of operation {index} of the batch must be an object")

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            async with asyncio.timeout(self.settings.request_timeout_seconds):
                return await super().execute_single(*args, **kwargs)
        except TimeoutError:
            limit = self.settings.request_timeout_seconds
            error = GraphQLError(
                f"the request took longer than {limit:g} s and was stopped", extensions={"code": "TIMEOUT"}
            )
            return ExecutionResult(data=None, errors=[error])


def _has_code(result: GraphQLHTTPResponse, code: str) -> bool:
    for error in result.get("errors") or ():
        extensions = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(extensions, dict) and extensions.get("code") == code:
            return True
    return False


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(type(value), "an array")
