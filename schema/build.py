"""Assemble the federated schema with its limits."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from gateway.settings import Settings
from schema.errors import ErrorCodes, log_errors
from schema.mutations import Mutation
from schema.queries import Query
from schema.types.asset import Asset
from schema.types.execution import Execution
from schema.types.job import Job


class GatewaySchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Clients' mistakes are answered, not logged as server errors.
        log_errors(errors)


def build_schema(settings: Settings | None = None) -> GatewaySchema:
    settings = settings or Settings()
    # Factories: each request gets fresh extension instances (the parse/validation caches are module-wide).
    extensions: list[Any] = [
        ErrorCodes,
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
    ]
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        types=[Asset, Execution, Job],
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )
