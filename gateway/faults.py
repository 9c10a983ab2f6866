"""Telling a database that is away from a bug: the first is 503 with Retry-After, the second is ours."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse, Response

RETRY_AFTER_SECONDS = 5
# Postgres: connection exceptions, insufficient resources, operator intervention (shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached right now (and a retry later may succeed)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, PoolTimeout, InterfaceError, asyncio.TimeoutError)):
            return True
        if isinstance(current, OperationalError):
            state = getattr(current.orig, "sqlstate", None) or getattr(current.orig, "pgcode", None)
            if state is None or str(state)[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
                return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def unavailable_response(message: str = "the database is unavailable; retry later") -> Response:
    return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
