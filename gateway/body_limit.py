"""Reading a request body up to a limit, whether it declares its length or arrives chunked."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope


class BodyTooLarge(Exception):
    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        if declared is not None:
            message = f"the request body of {declared} bytes exceeds the limit of {limit} bytes"
        else:
            message = f"the request body exceeds the limit of {limit} bytes"
        super().__init__(message)
        self.message = message


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when the client went away first; BodyTooLarge past `limit` bytes.

    A declared Content-Length over the limit is refused before anything is read; a chunked body is counted as it
    comes, so that no more than `limit` bytes are ever held.
    """
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit, int(declared))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out `body` once, then whatever the client sends next (its disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
