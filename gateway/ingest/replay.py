"""Rebuild every derived table from the raw event log; the result equals the incremental state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database, run_transaction
from gateway.declarations import apply_declaration
from gateway.ingest.events import Event, parse_event
from gateway.ingest.normalise import BatchEventError, BatchUnsettled, apply_event, apply_events
from gateway.store.events import clear_derived_state, iter_raw_events


async def replay(session: AsyncSession, now: datetime) -> int:
    await clear_derived_state(session)
    replayed = 0
    async for batch in iter_raw_events(session):
        events: list[Event] = []
        for row in batch:
            if row.kind.startswith("api."):
                await _apply(session, events, now)
                events = []
                await apply_declaration(session, row.kind, row.payload, row.received_at)
            else:
                events.append(parse_event(row.payload))
            replayed += 1
        await _apply(session, events, now)
    return replayed


async def _apply(session: AsyncSession, events: list[Event], now: datetime) -> None:
    """The events in their order: together where they can be, else one by one."""
    if len(events) > 1:
        try:
            async with session.begin_nested():
                await apply_events(session, events, now)
            return
        except BatchEventError as failed:
            raise failed.error from None
        except BatchUnsettled:
            pass
    for event in events:
        await apply_event(session, event, now)


async def replay_all(db: Database, now: datetime) -> int:
    """Readers keep seeing the old state until the rebuilt one commits."""

    async def work(session: AsyncSession) -> int:
        return await replay(session, now)

    return await run_transaction(db, work)
