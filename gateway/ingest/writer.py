"""Writing validated events: store each raw event, apply the new ones, one transaction per call or per group.

`GroupWriter` is how the server writes. Every POST's valid events join one queue, and a single task writes
whatever has queued up in one transaction, then answers each request with its own events' outcomes. Sixteen
clients posting one event each cost one transaction instead of sixteen that wait on each other's row locks, and
a request is answered only once its events are committed, exactly as before.

A group costs about the same whether it holds one event or sixteen (its statements' round trips), and the
clients a group answers usually come back together. So a group first waits, briefly, for as many requests as
the previous group answered. Without that, the first request back started a group of its own while the others
were still being read, and groups alternated between a few events and the rest: twice the transactions.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database, run_transaction
from gateway.errors import GatewayError
from gateway.ingest.events import Event
from gateway.ingest.normalise import BatchEventError, BatchUnsettled, apply_event, apply_events
from gateway.store.events import RawEvent, store_raw_event, store_raw_events
from gateway.store.sql import allow_generic_plans

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedEvent:
    event: Event
    raw: RawEvent


class Written(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


# What became of one event: written, or refused with the reason.
Outcome = Written | str


class EventRefused(Exception):
    """The store or the database refused the event at `position`; the transaction is lost, the event invalid."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def _is_data_error(error: DBAPIError) -> bool:
    # SQLSTATE class 22 (data exception): a value the database cannot hold, whatever the moment or the load.
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(state, str) and state.startswith("22")


def _refusal(position: int, error: Exception) -> EventRefused:
    """The refusal of the event at `position` for `error`; raises `error` again when it says nothing of the event."""
    if isinstance(error, GatewayError):
        return EventRefused(position, error.message)
    if isinstance(error, DBAPIError) and _is_data_error(error):
        detail = str(error.orig).splitlines()[0] if str(error.orig) else type(error.orig).__name__
        return EventRefused(position, f"the database cannot store this event: {detail}")
    raise error


async def apply_prepared(
    session: AsyncSession, events: Sequence[PreparedEvent], now: datetime, together: bool = False
) -> list[bool]:
    """Store then apply each new event; which of them were new (the others: duplicates). The caller owns the
    transaction.

    An event the store or the database refuses raises EventRefused with its position in `events`. `together`
    applies many events in fewer statements, with the same result; BatchUnsettled says to apply them one by one.
    """
    if together and len(events) > 1:
        return await _apply_together(session, events, now)
    new: list[bool] = []
    for position, prepared in enumerate(events):
        try:
            if await store_raw_event(session, prepared.raw, now) is None:
                new.append(False)
                continue
            await apply_event(session, prepared.event, now)
        except (GatewayError, DBAPIError) as error:
            raise _refusal(position, error) from error
        new.append(True)
    return new


async def _apply_together(session: AsyncSession, events: Sequence[PreparedEvent], now: datetime) -> list[bool]:
    try:
        new = await store_raw_events(session, [prepared.raw for prepared in events], now)
    except DBAPIError as error:
        if not _is_data_error(error):
            raise
        raise BatchUnsettled() from error
    positions = [position for position, is_new in enumerate(new) if is_new]
    try:
        await apply_events(session, [events[position].event for position in positions], now)
    except BatchEventError as failed:
        raise _refusal(positions[failed.position], failed.error) from failed.error
    return new


async def write_events(db: Database, events: Sequence[PreparedEvent], now: datetime) -> list[Outcome]:
    """Write `events` in one transaction; each one's outcome. One the store refuses is left out and the
    transaction runs again without it, so that a refusal never leaves the others half written."""
    outcomes: list[Outcome] = [Written.DUPLICATE] * len(events)
    pending = list(range(len(events)))
    together = True
    while pending:
        batch = [events[position] for position in pending]

        async def work(
            session: AsyncSession, batch: list[PreparedEvent] = batch, together: bool = together
        ) -> list[bool]:
            await allow_generic_plans(session)
            return await apply_prepared(session, batch, now, together)

        try:
            new = await run_transaction(db, work)
        except EventRefused as refused:
            outcomes[pending.pop(refused.position)] = refused.message
            continue
        except BatchUnsettled:
            together = False
            continue
        for position, is_new in zip(pending, new, strict=True):
            outcomes[position] = Written.ACCEPTED if is_new else Written.DUPLICATE
        break
    return outcomes


@dataclass
class _Waiting:
    events: Sequence[PreparedEvent]
    answered: asyncio.Future[list[Outcome]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def __post_init__(self) -> None:
        # Read the outcome even when the request is gone, so that a failure is not reported as never retrieved.
        self.answered.add_done_callback(lambda done: done.cancelled() or done.exception())

    def fail(self, error: BaseException) -> None:
        if not self.answered.done():
            self.answered.set_exception(error)


class GroupWriter:
    """One writer per process: the events of every request waiting are written together (see the module)."""

    def __init__(self, db: Database, max_group_events: int = 2_000, max_wait_seconds: float = 0.01) -> None:
        self.db = db
        # A request is never split; a group closes once it holds this many events (or nobody else is waiting).
        self.max_group_events = max_group_events
        # The longest a group waits for the requests it expects (a client that does not come back costs this once).
        self.max_wait_seconds = max_wait_seconds
        self._queue: list[_Waiting] = []
        self._draining: asyncio.Task[None] | None = None
        self._expected = 1
        self._queued: asyncio.Future[None] | None = None

    async def write(self, events: Sequence[PreparedEvent]) -> list[Outcome]:
        waiting = _Waiting(events)
        self._queue.append(waiting)
        if self._queued is not None and not self._queued.done():
            self._queued.set_result(None)
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain(), name="ingest group writer")
        # A client that goes away does not stop the group: its events are written all the same.
        return await asyncio.shield(waiting.answered)

    async def _drain(self) -> None:
        while self._queue:
            await self._wait_for_expected()
            group = self._take_group()
            self._expected = len(group)
            events = [event for waiting in group for event in waiting.events]
            try:
                outcomes = await write_events(self.db, events, datetime.now(UTC))
            except Exception as error:
                # A fault of the database (or a bug) is the answer of every request of the group; the next tries again.
                for waiting in group:
                    waiting.fail(error)
                continue
            except BaseException as error:
                # Cancelled (the server stops): nobody may wait for ever.
                for waiting in (*group, *self._queue):
                    waiting.fail(error)
                self._queue.clear()
                raise
            start = 0
            for waiting in group:
                end = start + len(waiting.events)
                if not waiting.answered.done():
                    waiting.answered.set_result(outcomes[start:end])
                start = end

    async def aclose(self) -> None:
        """Returns once every event handed over is written (requests in flight at shutdown are still answered)."""
        if self._draining is not None:
            await asyncio.gather(self._draining, return_exceptions=True)

    async def _wait_for_expected(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_seconds
        while len(self._queue) < self._expected and (remaining := deadline - loop.time()) > 0:
            if sum(len(waiting.events) for waiting in self._queue) >= self.max_group_events:
                return
            self._queued = loop.create_future()
            try:
                await asyncio.wait((self._queued,), timeout=remaining)
            finally:
                self._queued = None

    def _take_group(self) -> list[_Waiting]:
        group = [self._queue.pop(0)]
        size = len(group[0].events)
        while self._queue and size + len(self._queue[0].events) <= self.max_group_events:
            waiting = self._queue.pop(0)
            group.append(waiting)
            size += len(waiting.events)
        return group
