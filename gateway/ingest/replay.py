"""Rebuild every derived table from the raw event log; the result equals the incremental state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database, run_transaction
from gateway.declarations import apply_declaration
from gateway.ingest.events import parse_event
from gateway.ingest.normalise import apply_event
from gateway.store.events import clear_derived_state, iter_raw_events


async def replay(session: AsyncSession, now: datetime) -> int:
    await clear_derived_state(session)
    replayed = 0
    async for batch in iter_raw_events(session):
        for row in batch:
            if row.kind.startswith("api."):
                await apply_declaration(session, row.kind, row.payload, row.received_at)
            else:
                await apply_event(session, parse_event(row.payload), now)
            replayed += 1
    return replayed


async def replay_all(db: Database, now: datetime) -> int:
    """Readers keep seeing the old state until the rebuilt one commits."""

    async def work(session: AsyncSession) -> int:
        return await replay(session, now)

    return await run_transaction(db, work)
