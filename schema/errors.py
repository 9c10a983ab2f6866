"""Every error leaves with a stable `extensions.code`; unexpected ones are masked and logged."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from gateway.errors import GatewayError
from gateway.faults import SERVICE_UNAVAILABLE, DatabaseFault, database_fault, log_fault

logger = logging.getLogger("gateway.graphql")

INTERNAL = "INTERNAL_SERVER_ERROR"
TIMEOUT = "TIMEOUT"
MASKED_MESSAGE = "Unexpected error."
_USER_MESSAGES = ("Variable '$", "Argument '", "Expected value of type", "Int cannot", "String cannot")


def _fault(error: GraphQLError) -> DatabaseFault | None:
    original = error.original_error
    return None if original is None or isinstance(original, GatewayError) else database_fault(original)


def _fault_code(fault: DatabaseFault) -> str:
    return TIMEOUT if fault is DatabaseFault.STATEMENT_TIMEOUT else SERVICE_UNAVAILABLE


def classify(error: GraphQLError) -> str | None:
    """The code for a client's mistake or a database fault, or None when the error is ours and must be masked."""
    original = error.original_error
    if (fault := _fault(error)) is not None:
        return _fault_code(fault)
    if isinstance(original, GatewayError):
        return original.code
    if isinstance(original, GraphQLError):
        return str((original.extensions or {}).get("code") or "BAD_USER_INPUT")
    if error.message.startswith(_USER_MESSAGES):
        return "BAD_USER_INPUT"
    if original is None:
        if error.message.startswith("Syntax Error"):
            return "GRAPHQL_PARSE_FAILED"
        return str((error.extensions or {}).get("code") or "GRAPHQL_VALIDATION_FAILED")
    return None


def mask(error: GraphQLError) -> GraphQLError:
    """The same position and path, none of the detail."""
    return _replace_message(error, MASKED_MESSAGE)


def _replace_message(error: GraphQLError, message: str) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
    )


def code_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Codes every error and masks ours. Idempotent: coding a coded list changes nothing."""
    processed: list[GraphQLError] = []
    for error in errors:
        code = classify(error)
        if code is None:
            processed.append(_with_code(mask(error), INTERNAL))
        elif (fault := _fault(error)) is not None:
            # The driver's message names hosts and SQL: the client gets ours, the log gets theirs.
            processed.append(_with_code(_replace_message(error, fault.message), _fault_code(fault)))
        else:
            processed.append(_with_code(error, code))
    return processed


class ErrorCodes(MaskErrors):
    """MaskErrors that keeps clients' mistakes readable and codes every error."""

    def __init__(self) -> None:
        super().__init__(error_message=MASKED_MESSAGE)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return code_errors(errors)


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    extensions: dict[str, Any] = dict(error.extensions or {})
    extensions["code"] = code
    error.extensions = extensions
    return error


def log_errors(errors: list[GraphQLError]) -> None:
    fault_logged = False
    for error in errors:
        if (fault := _fault(error)) is not None and error.original_error is not None:
            # An outage fails every field of the operation alike: one line tells it.
            if not fault_logged:
                log_fault(fault, error.original_error, f"GraphQL {'.'.join(map(str, error.path or ()))}")
                fault_logged = True
        elif classify(error) is None:
            logger.error("unexpected error in %s", error.path, exc_info=error.original_error)
