"""Counts and times every GraphQL operation for /metrics: by operation name, type and outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from gateway.metrics import GatewayMetrics

UNKNOWN_TYPE = "unknown"


class GraphQLMetrics(SchemaExtension):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        finished = False
        try:
            yield
            finished = True
        finally:
            # Also when the operation is cut short (the per-request timeout cancels it): that is an error too.
            context = self.execution_context
            errors = context.result.errors if context.result is not None else context.pre_execution_errors
            self.metrics.observe_graphql(
                context.operation_name, self._operation_type(), finished and not errors, time.perf_counter() - started
            )

    def _operation_type(self) -> str:
        try:
            return self.execution_context.operation_type.value
        except RuntimeError:  # no document (a syntax error), or no operation by the requested name
            return UNKNOWN_TYPE
