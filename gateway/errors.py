"""Domain errors raised by the store and the core; each edge (GraphQL, HTTP, CLI) translates them."""

from __future__ import annotations


class GatewayError(Exception):
    """A client's mistake, described so that the client can fix it."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GatewayError):
    code = "BAD_USER_INPUT"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class Conflict(GatewayError):
    code = "CONFLICT"
