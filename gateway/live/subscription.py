"""One live subscription: what it selects, and a bounded queue of the rows it has yet to send."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import GatewayError

Kind = Literal["asset", "run", "alert"]
Row = TypeVar("Row")
_END = object()


class SubscriptionDropped(GatewayError):
    """The consumer did not keep up: its queue overflowed and the gateway let it go."""

    code = "SLOW_CONSUMER"


class LiveUnavailable(GatewayError):
    """Subscriptions are not served (the gateway is starting or stopping)."""

    code = "SERVICE_UNAVAILABLE"


class Selector(Protocol):
    """Which changed rows of one kind a subscription wants; equal keys select the same rows."""

    @property
    def kind(self) -> Kind: ...

    @property
    def key(self) -> Hashable: ...

    async def select(self, session: AsyncSession, ids: Sequence[int]) -> set[int]: ...


class Subscription(Generic[Row]):
    """Rows are offered without waiting; a full queue ends the subscription instead of slowing the broker.

    Iterating yields the rows; it stops when the gateway shuts down and raises SubscriptionDropped once the
    subscription was dropped for falling behind (the rows still queued are not sent: the consumer is cut off).
    """

    def __init__(self, selector: Selector, limit: int, on_drop: Callable[[str], None] | None = None) -> None:
        self.selector = selector
        self.limit = limit
        self.on_drop = on_drop
        self.ended: str | None = None
        self.dropped = False
        self._queue: asyncio.Queue[Any] = asyncio.Queue(limit)

    @property
    def kind(self) -> Kind:
        return self.selector.kind

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def offer(self, row: Row) -> bool:
        """Queue a row; False when the queue is full (the consumer is too slow)."""
        if self.ended is not None:
            return True
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, reason: str, dropped: bool = False) -> None:
        if self.ended is not None:
            return
        self.ended, self.dropped = reason, dropped
        if not self._queue.full():  # else the consumer is not waiting, and sees `ended` on its next read
            self._queue.put_nowait(_END)

    def __aiter__(self) -> Subscription[Row]:
        return self

    async def __anext__(self) -> Row:
        if self.ended is None:
            item = await self._queue.get()
            if item is not _END and self.ended is None:
                row: Row = item
                return row
        if self.dropped:
            raise SubscriptionDropped(self.ended or "dropped")
        raise StopAsyncIteration
