"""The raw OpenLineage event log: stored before applied, deduplicated by content hash."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import Asset, AssetAlias, ColumnLineage, Job, LineageEdge, LineageEvent, Run, RunAsset
from gateway.store.sql import bind_rows, cached, dialect_name, insert_for

# Rows of one INSERT: ten parameters each stays below both dialects' limits on bind parameters.
EVENTS_PER_STATEMENT = 1_000


@dataclass(frozen=True)
class RawEvent:
    content_hash: str
    kind: str
    event_time: datetime
    payload: dict[str, Any]
    event_type: str | None = None
    run_id: str | None = None
    job_namespace: str | None = None
    job_name: str | None = None
    producer: str | None = None


_COLUMNS = (
    "content_hash",
    "kind",
    "event_type",
    "event_time",
    "run_id",
    "job_namespace",
    "job_name",
    "producer",
    "received_at",
    "payload",
)


def _build_store(dialect: str, returned: str, rows_of: tuple[str, ...] = ()) -> Any:
    table: Any = LineageEvent.__table__
    statement = insert_for(dialect, table, rows_of).on_conflict_do_nothing(index_elements=["content_hash"])
    return statement.returning(table.c[returned])


def _row(event: RawEvent, now: datetime) -> dict[str, Any]:
    return {
        "content_hash": event.content_hash,
        "kind": event.kind,
        "event_type": event.event_type,
        "event_time": event.event_time,
        "run_id": event.run_id,
        "job_namespace": event.job_namespace,
        "job_name": event.job_name,
        "producer": event.producer,
        "received_at": now,
        "payload": event.payload,
    }


async def store_raw_event(session: AsyncSession, event: RawEvent, now: datetime) -> int | None:
    """The new row's id, or None when the very same event was stored before."""
    statement = cached(session, ("store raw event", "id"), lambda dialect: _build_store(dialect, "id"))
    event_id: int | None = (await session.execute(statement, _row(event, now))).scalar_one_or_none()
    return event_id


async def store_raw_events(session: AsyncSession, events: Sequence[RawEvent], now: datetime) -> list[bool]:
    """Store each event, in order, in as few statements as the database takes; which of them are new.

    The same event twice among them is stored once: the first is new, the other a duplicate."""
    statement = cached(
        session, ("store raw event", "rows"), lambda dialect: _build_store(dialect, "content_hash", _COLUMNS)
    )
    dialect = dialect_name(session)
    stored: set[str] = set()
    for start in range(0, len(events), EVENTS_PER_STATEMENT):
        rows = [_row(event, now) for event in events[start : start + EVENTS_PER_STATEMENT]]
        parameters = bind_rows(dialect, rows, _COLUMNS)
        stored.update(content_hash for (content_hash,) in await session.execute(statement, parameters))
    new: list[bool] = []
    for event in events:
        new.append(event.content_hash in stored)
        stored.discard(event.content_hash)
    return new


async def count_raw_events(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(LineageEvent))).scalar_one()


async def iter_raw_events(session: AsyncSession, batch_size: int = 500) -> AsyncIterator[list[LineageEvent]]:
    """All stored events in (event time, id) order, a batch at a time."""
    last: tuple[datetime, int] | None = None
    while True:
        statement = select(LineageEvent).order_by(LineageEvent.event_time, LineageEvent.id).limit(batch_size)
        if last is not None:
            statement = statement.where(
                (LineageEvent.event_time > last[0])
                | ((LineageEvent.event_time == last[0]) & (LineageEvent.id > last[1]))
            )
        rows = list((await session.scalars(statement)).all())
        if not rows:
            return
        yield rows
        last = (rows[-1].event_time, rows[-1].id)


async def clear_derived_state(session: AsyncSession) -> None:
    """Delete everything derived from events (assets, jobs, runs, lineage); the raw log stays."""
    for table in (ColumnLineage, LineageEdge, RunAsset, AssetAlias, Asset, Run, Job):
        await session.execute(delete(table))
