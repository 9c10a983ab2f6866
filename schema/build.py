"""Assemble the federated schema with its limits."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, max_aliases, query_depth_limiter
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionResult, Info
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.errors import InvalidInput
from gateway.metrics import GatewayMetrics
from gateway.settings import Settings
from schema.cost import CostModel, QueryCostLimiter
from schema.disclosure import NoIntrospection, hide_suggestions
from schema.errors import ErrorCodes, code_errors, log_errors
from schema.execution import GatewayExecutionContext
from schema.metrics_extension import GraphQLMetrics
from schema.monitoring import MonitoringMutation, MonitoringQuery
from schema.mutations import Mutation
from schema.queries import Query
from schema.shape import ShapedValidation
from schema.shipping import ShippingMutation, ShippingQuery
from schema.strings import StorableStrings, variables_error
from schema.subscriptions import Subscription
from schema.types.asset import Asset
from schema.types.execution import Execution
from schema.types.job import Job

ENTITIES: list[type] = [Asset, Execution, Job]
MAX_REPRESENTATIONS = 10_000
ENTITY_TYPES = tuple(entity.__strawberry_definition__.name for entity in ENTITIES)  # type: ignore[attr-defined]


class GatewaySchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Every list of errors passes here before it is answered (queries, mutations, subscriptions).
        if self.config.disable_field_suggestions:
            hide_suggestions(errors)
        # Clients' mistakes are answered, not logged as server errors.
        log_errors(errors)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        variables = kwargs.get("variable_values", args[1] if len(args) > 1 else None)
        if isinstance(variables, Mapping) and (error := variables_error(variables)) is not None:
            return ExecutionResult(data=None, errors=[error])
        # Subscriptions are served over websockets (graphql-transport-ws) only: over HTTP, a 400 says so.
        allowed = kwargs.get("allowed_operation_types") or DEFAULT_ALLOWED_OPERATION_TYPES
        kwargs["allowed_operation_types"] = set(allowed) - {OperationType.SUBSCRIPTION}
        result = await super().execute(*args, **kwargs)
        # Errors raised while an extension parses (ParserCache, MaxTokensLimiter: syntax errors, the token
        # limit) leave Strawberry outside the operation hook where ErrorCodes works: code them here too.
        if result.errors:
            result.errors = code_errors(result.errors)
        return result

    async def stream(self, *args: Any, **kwargs: Any) -> StreamResult:
        # Operations over websockets: the same check of the variables as over HTTP.
        variables = kwargs.get("variable_values", args[1] if len(args) > 1 else None)
        if isinstance(variables, Mapping) and (error := variables_error(variables)) is not None:
            return _refused(error)
        return await super().stream(*args, **kwargs)

    def entities_resolver(self, info: Info, representations: list[FederationAny]) -> list[FederationAny]:
        # One batch of a router's entity fetches; past this the loaders' queries would exceed what Postgres binds.
        if len(representations) > MAX_REPRESENTATIONS:
            raise InvalidInput(f"at most {MAX_REPRESENTATIONS} representations per request, got {len(representations)}")
        # A representation naming no entity type is the client's mistake, not a KeyError of ours.
        for index, representation in enumerate(representations):
            type_name = representation.get("__typename") if isinstance(representation, Mapping) else None
            if type_name not in ENTITY_TYPES:
                raise InvalidInput(
                    f"representation {index} must have a __typename of {', '.join(ENTITY_TYPES)}, got {type_name!r}"
                )
        return super().entities_resolver(info, representations)


async def _refused(error: GraphQLError) -> AsyncGenerator[PreExecutionError, None]:
    yield PreExecutionError(data=None, errors=[error])


def build_schema(settings: Settings | None = None, metrics: GatewayMetrics | None = None) -> GatewaySchema:
    """The schema; with `metrics`, every operation is counted and timed for /metrics."""
    settings = settings or Settings()
    # The rule classes are built once: the validation cache knows a document by its rules too, and Strawberry's
    # limiter extensions would make new classes for every request, so that nothing would ever be found in it.
    rules: list[Any] = [
        StorableStrings,
        max_aliases.create_validator(settings.max_aliases),
        query_depth_limiter.create_validator(settings.max_query_depth, should_ignore=None),
    ]
    if not settings.introspection:
        rules.append(NoIntrospection)
    cost_model = CostModel.from_settings(settings)
    # Factories: each request gets fresh extension instances (the parse/validation caches are module-wide).
    extensions: list[Any] = [
        ErrorCodes,
        lambda: ParserCache(maxsize=512),
        # Validation, cached, of documents whose shape is sound (schema/shape.py).
        lambda: ShapedValidation(settings.max_field_repeats, maxsize=512),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: QueryCostLimiter(settings.max_query_cost, cost_model),
    ]
    if metrics is not None:
        extensions.append(lambda: GraphQLMetrics(metrics))
    return GatewaySchema(
        query=merge_types("Query", (Query, MonitoringQuery, ShippingQuery)),
        mutation=merge_types("Mutation", (Mutation, MonitoringMutation, ShippingMutation)),
        subscription=Subscription,
        types=ENTITIES,
        extensions=extensions,
        execution_context_class=GatewayExecutionContext,
        config=StrawberryConfig(
            auto_camel_case=True,
            disable_field_suggestions=not settings.field_suggestions,
            batching_config=(
                {"max_operations": settings.max_batch_operations} if settings.max_batch_operations else None
            ),
        ),
    )
