"""The GraphQL endpoint: Strawberry's ASGI view with our context, orjson and a per-request time limit."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import ExecutionResult

from gateway.authenticator import Authenticator
from gateway.database import Database
from gateway.http_auth import PRINCIPAL
from gateway.settings import Settings
from schema.build import GatewaySchema
from schema.context import Context


class GatewayGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        schema: GatewaySchema,
        db: Database,
        settings: Settings,
        monitors: dict[str, Any] | None = None,
        shippers: dict[str, Any] | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None)
        self.db = db
        self.settings = settings
        self.monitors = monitors or {}
        self.shippers = shippers or {}
        self.authenticator = authenticator or Authenticator(db, settings)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        principal = request.scope.get("state", {}).get(PRINCIPAL) or await self.authenticator.authenticate(None)
        return Context.create(self.db, self.settings, request, response, self.monitors, self.shippers, principal)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

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
