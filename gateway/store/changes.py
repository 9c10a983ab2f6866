"""Reading the change feed safely, and the shippers' durable cursors.

On Postgres a change row carries its transaction id. A reader takes only rows whose transaction is older
than every transaction still running (the snapshot's xmin): those transactions are finished, so no row can
later appear behind the cursor. Rows of newer transactions wait for the next read. On SQLite writers are
serialised and a row id is never seen before the rows below it are committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import Asset, Change, Job, LineageEdge, ParkedBatch, Run, ShipperState
from gateway.store.sql import dialect_name, insert, one_of

Cursor = tuple[int, int]
START: Cursor = (0, 0)


@dataclass(frozen=True)
class FeedRead:
    changes: Sequence[Change]
    horizon: int | None


async def _horizon(session: AsyncSession) -> int | None:
    if dialect_name(session) != "postgresql":
        return None
    value = (await session.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))).scalar()
    return int(value) if value is not None else None


async def read_changes(session: AsyncSession, after: Cursor, limit: int) -> FeedRead:
    """Up to `limit` changes after the cursor, in (txid, id) order, none of which can be overtaken."""
    horizon = await _horizon(session)
    statement = select(Change).where(tuple_(Change.txid, Change.id) > tuple_(*after))
    if horizon is not None:
        statement = statement.where(Change.txid < horizon)
    rows = await session.scalars(statement.order_by(Change.txid, Change.id).limit(limit))
    return FeedRead(list(rows.all()), horizon)


async def feed_head(session: AsyncSession) -> Cursor:
    """The cursor of the newest change readable now (everything up to it can be skipped by a full export)."""
    horizon = await _horizon(session)
    statement = select(Change.txid, Change.id)
    if horizon is not None:
        statement = statement.where(Change.txid < horizon)
    row = (await session.execute(statement.order_by(Change.txid.desc(), Change.id.desc()).limit(1))).first()
    return (int(row[0]), int(row[1])) if row else START


async def count_changes_after(session: AsyncSession, after: Cursor) -> int:
    statement = select(func.count()).select_from(Change).where(tuple_(Change.txid, Change.id) > tuple_(*after))
    return (await session.execute(statement)).scalar_one()


async def oldest_change_after(session: AsyncSession, after: Cursor) -> datetime | None:
    statement = select(func.min(Change.changed_at)).where(tuple_(Change.txid, Change.id) > tuple_(*after))
    moment: datetime | None = (await session.execute(statement)).scalar_one()
    return moment


async def read_shipper_state(session: AsyncSession, name: str, kind: str) -> ShipperState:
    """The shipper's state, created at the start of the feed on first use."""
    await session.execute(
        insert(session, ShipperState)
        .values(name=name, kind=kind, cursor_txid=0, cursor_id=0, shipped=0, failures=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    state = await session.get(ShipperState, name, populate_existing=True)
    assert state is not None
    return state


async def read_shipper_states(session: AsyncSession) -> dict[str, ShipperState]:
    return {state.name: state for state in await session.scalars(select(ShipperState))}


async def advance_cursor(session: AsyncSession, name: str, cursor: Cursor, shipped: int, now: datetime) -> None:
    await session.execute(
        update(ShipperState)
        .where(ShipperState.name == name)
        .values(
            cursor_txid=cursor[0],
            cursor_id=cursor[1],
            shipped=ShipperState.shipped + shipped,
            last_run_at=now,
            last_success_at=now,
            last_error=None,
            failures=0,
        )
    )


async def skip_parked(session: AsyncSession, name: str, cursor: Cursor, error: str, now: datetime) -> None:
    """Move the cursor past a parked batch: nothing was shipped, so the last success and the shipped count stay
    as they were and the error stays visible; the failed-run count starts again for the next batch."""
    await session.execute(
        update(ShipperState)
        .where(ShipperState.name == name)
        .values(cursor_txid=cursor[0], cursor_id=cursor[1], last_run_at=now, last_error=error[:2000], failures=0)
    )


async def record_failure(session: AsyncSession, name: str, error: str, now: datetime) -> None:
    await session.execute(
        update(ShipperState)
        .where(ShipperState.name == name)
        .values(last_run_at=now, last_error=error[:2000], failures=ShipperState.failures + 1)
    )


async def park_batch(
    session: AsyncSession,
    name: str,
    first: Cursor,
    last: Cursor,
    changes: int,
    attempts: int,
    error: str,
    now: datetime,
) -> None:
    session.add(
        ParkedBatch(
            shipper=name,
            from_txid=first[0],
            from_id=first[1],
            to_txid=last[0],
            to_id=last[1],
            changes=changes,
            attempts=attempts,
            error=error[:4000],
            parked_at=now,
        )
    )
    await session.flush()


async def read_parked_batches(session: AsyncSession, names: Sequence[str]) -> dict[str, list[ParkedBatch]]:
    result: dict[str, list[ParkedBatch]] = {name: [] for name in names}
    if names:
        rows = await session.scalars(
            select(ParkedBatch).where(ParkedBatch.shipper.in_(list(names))).order_by(ParkedBatch.id)
        )
        for row in rows:
            result[row.shipper].append(row)
    return result


async def read_edges_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[LineageEdge]:
    if not ids:
        return []
    rows = await session.scalars(
        select(LineageEdge).where(one_of(session, LineageEdge.id, ids)).order_by(LineageEdge.id)
    )
    return list(rows.all())


async def read_latest_changes(
    session: AsyncSession, entity: str, ids: Sequence[int]
) -> dict[tuple[str, int], tuple[int, datetime]]:
    """(entity, row id) -> (id, time) of the newest change of each row, for full exports (rows never changed
    since the feed began have none). Change ids grow with every change of a row: its writers hold the row lock."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Change.entity_id, func.max(Change.id), func.max(Change.changed_at))
        .where(Change.entity == entity, one_of(session, Change.entity_id, ids))
        .group_by(Change.entity_id)
    )
    return {(entity, int(entity_id)): (int(change_id), changed_at) for entity_id, change_id, changed_at in rows}


async def page_entity_ids(session: AsyncSession, entity: str, after: int, limit: int) -> list[int]:
    """Ids of every row of one feed entity, in id order, a page at a time (full exports)."""
    column = {"asset": Asset.id, "run": Run.id, "job": Job.id, "edge": LineageEdge.id}[entity]
    rows = await session.scalars(select(column).where(column > after).order_by(column).limit(limit))
    return list(rows.all())


async def shipper_lag(session: AsyncSession, name: str) -> int:
    """How many changes lie after the shipper's cursor (all of them for a shipper that never ran)."""
    state = await session.get(ShipperState, name)
    cursor = (state.cursor_txid, state.cursor_id) if state else START
    return await count_changes_after(session, cursor)
