"""The change feed: triggers write one change per real write, in the writer's transaction, and a cursor reading
with `read_changes` never passes a change that commits late.

On Postgres, change ids come from a sequence when the row is written, not when the transaction commits: a
transaction that wrote first and commits last leaves a smaller id behind a cursor that has moved on. The test
shows that a naive reader (`WHERE id > :cursor ORDER BY id`) skips such a change for good, and that
`read_changes` (which waits for every transaction older than its horizon) delivers it. On SQLite writers are
serialised, so the id order is the commit order and no change can appear behind a cursor.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from sqlalchemy import case, func, literal, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database
from gateway.orm import Asset, Change, Job, LineageEdge, Run
from gateway.settings import Settings
from gateway.store import changes as feed
from gateway.store.assets import ensure_assets
from gateway.store.sql import insert_for
from tests.ingest.support import APPLES, load_documents
from tests.shippers import change_count, ingest, settled

Seen = tuple[int, int, str, int]  # (txid, id, entity, entity_id)


async def read_all(db: Database, cursor: feed.Cursor, limit: int = 3) -> tuple[list[Seen], feed.Cursor]:
    """Everything `read_changes` gives after the cursor, page by page; the changes and the cursor after them."""
    seen: list[Seen] = []
    while True:
        async with db.session() as session:
            read = await feed.read_changes(session, cursor, limit)
        if not read.changes:
            return seen, cursor
        seen.extend((change.txid, change.id, change.entity, change.entity_id) for change in read.changes)
        cursor = (read.changes[-1].txid, read.changes[-1].id)


async def read_naively(db: Database, cursor: int) -> tuple[list[int], int]:
    """The trap: the ids after the cursor, in id order; the cursor moves to the greatest id seen."""
    async with db.session() as session:
        ids = list(await session.scalars(select(Change.id).where(Change.id > cursor).order_by(Change.id)))
    return ids, (ids[-1] if ids else cursor)


async def write_asset(session: AsyncSession, key: str, now: datetime) -> int:
    """Insert an asset in the session's open transaction; the id of the change the trigger wrote for it."""
    asset_id = (await ensure_assets(session, [key], now))[key]
    change_id = await session.scalar(
        select(func.max(Change.id)).where(Change.entity == "asset", Change.entity_id == asset_id)
    )
    assert change_id is not None
    return int(change_id)


# --- Postgres: concurrent writers committing out of order ---------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql"])
@pytest.mark.parametrize("second_takes_its_txid_first", [False, True], ids=["t1-txid-first", "t2-txid-first"])
async def test_a_change_that_commits_late_is_delivered_where_a_naive_reader_skips_it(
    db: Database, now: datetime, second_takes_its_txid_first: bool
) -> None:
    """T1 writes first (the smaller change id) and commits last; T2 writes and commits in between, and the feed
    is read (and the cursors moved) while T1 is still open. Whichever of them got its transaction id first."""
    async with db.sessions() as t1, db.sessions() as t2:
        if second_takes_its_txid_first:
            await t2.execute(text("SELECT pg_current_xact_id()"))
        late = await write_asset(t1, "test://feed/late", now)
        early = await write_asset(t2, "test://feed/early", now)
        await t2.commit()
        assert late < early, "T1 wrote first, so its change has the smaller id"

        delivered, cursor = await read_all(db, feed.START)
        naive, naive_cursor = await read_naively(db, 0)
        async with db.session() as session:
            head = await feed.feed_head(session)

        await t1.commit()

    await settled(db)
    delivered_after, cursor = await read_all(db, cursor)
    naive_after, _ = await read_naively(db, naive_cursor)

    # The naive reader saw T2's change while T1 was open, moved past T1's id, and never sees T1's change.
    assert naive == [early]
    assert naive_after == []
    # read_changes: whatever it gave while T1 was open cannot be overtaken; after the commit it gives the rest.
    ids = [change_id for _, change_id, _, _ in delivered + delivered_after]
    assert sorted(ids) == [late, early], "each change exactly once, none skipped"
    assert late not in [change_id for _, change_id, _, _ in delivered], "T1's change was not committed yet"
    assert head <= cursor
    if not second_takes_its_txid_first:
        # T2's transaction is younger than T1's, still running at the first read: nothing of T2 may go before T1.
        assert delivered == []
        assert head == feed.START
    async with db.session() as session:
        assert await feed.feed_head(session) == cursor


@dataclass
class Writer:
    session: AsyncSession
    keys: list[str] = field(default_factory=list)
    change_ids: list[int] = field(default_factory=list)


@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_interleaved_writers_every_committed_change_arrives_once(db: Database, now: datetime) -> None:
    """Random interleavings (seeded) of four writers that insert and update assets, commit or roll back, with a
    reader moving its cursor (pages of 2) at random points: the reader gets every committed change exactly once
    and nothing rolled back. A naive reader run alongside misses some."""
    naive_missed = 0
    for seed in range(12):
        rng = random.Random(seed)
        committed: set[int] = set()
        delivered: list[int] = []
        cursor = await _head(db)
        naive_cursor = cursor[1]
        naive_seen: list[int] = []
        writers: dict[int, Writer] = {}
        steps = 0
        opened = 0
        while opened < 4 or writers:
            steps += 1
            assert steps < 200
            choice = rng.random()
            if choice < 0.25 and opened < 4:
                writers[opened] = Writer(db.sessions())
                opened += 1
            elif choice < 0.65 and writers:
                writer = writers[rng.choice(sorted(writers))]
                await _write(writer, rng, now, f"{seed}-{opened}-{steps}")
            elif choice < 0.8 and writers:
                number = rng.choice(sorted(writers))
                writer = writers.pop(number)
                if rng.random() < 0.8:
                    await writer.session.commit()
                    committed.update(writer.change_ids)
                else:
                    await writer.session.rollback()
                await writer.session.close()
            else:
                seen, cursor = await read_all(db, cursor, limit=2)
                delivered.extend(change_id for _, change_id, _, _ in seen)
                ids, naive_cursor = await read_naively(db, naive_cursor)
                naive_seen.extend(ids)
        await settled(db)
        seen, cursor = await read_all(db, cursor, limit=2)
        delivered.extend(change_id for _, change_id, _, _ in seen)
        ids, naive_cursor = await read_naively(db, naive_cursor)
        naive_seen.extend(ids)

        assert len(delivered) == len(set(delivered)), f"seed {seed}: a change came twice"
        assert set(delivered) == committed, f"seed {seed}: missing {committed - set(delivered)}"
        naive_missed += len(committed - set(naive_seen))
    assert naive_missed > 0, "the interleavings should include late commits that a naive reader skips"


async def _write(writer: Writer, rng: random.Random, now: datetime, suffix: str) -> None:
    if writer.keys and rng.random() < 0.4:
        key = rng.choice(writer.keys)
        await writer.session.execute(update(Asset).where(Asset.key == key).values(description=f"described {suffix}"))
        asset_id = await writer.session.scalar(select(Asset.id).where(Asset.key == key))
        change_id = await writer.session.scalar(
            select(func.max(Change.id)).where(Change.entity == "asset", Change.entity_id == asset_id)
        )
        assert change_id is not None
        writer.change_ids.append(int(change_id))
        return
    key = f"test://feed/{suffix}"
    writer.keys.append(key)
    writer.change_ids.append(await write_asset(writer.session, key, now))


async def _head(db: Database) -> feed.Cursor:
    return await settled(db)


# --- SQLite: writers serialise ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_sqlite_writers_serialise_so_id_order_is_commit_order(
    db: Database, settings: Settings, now: datetime
) -> None:
    path = make_url(settings.resolved_database_url).database
    assert path is not None
    async with db.transaction() as first:
        first_id = await write_asset(first, "test://feed/first", now)
        # A second writer cannot even begin while the first holds the write lock (no waiting: timeout 0).
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
        # Readers see nothing of the open transaction.
        delivered, cursor = await read_all(db, feed.START)
        naive, naive_cursor = await read_naively(db, 0)
        assert delivered == []
        assert naive == []
    async with db.transaction() as second:
        second_ids = [await write_asset(second, f"test://feed/second-{n}", now) for n in range(2)]

    more, cursor = await read_all(db, cursor)
    naive_more, _ = await read_naively(db, naive_cursor)
    assert [change_id for _, change_id, _, _ in more] == [first_id, *second_ids]
    assert first_id < min(second_ids), "the first to commit has the smaller ids"
    assert naive_more == [first_id, *second_ids], "on SQLite even the naive reader skips nothing"
    assert {txid for txid, _, _, _ in more} == {0}


# --- both dialects: what the triggers write -----------------------------------------------------------------------


async def test_triggers_write_one_change_per_real_write(db: Database, now: datetime) -> None:
    await ingest(db, [load_documents(APPLES)], now)
    async with db.session() as session:
        by_entity = dict((await session.execute(select(Change.entity, func.count()).group_by(Change.entity))).all())
        counts = {
            "asset": await session.scalar(select(func.count()).select_from(Asset)),
            "job": await session.scalar(select(func.count()).select_from(Job)),
            "run": await session.scalar(select(func.count()).select_from(Run)),
            "edge": await session.scalar(select(func.count()).select_from(LineageEdge)),
        }
    for entity, rows in counts.items():
        assert rows, entity
        assert by_entity[entity] >= rows, f"every {entity} row was inserted once at least"

    before = await change_count(db)
    async with db.transaction() as session:
        await session.execute(update(Asset).values(description=Asset.description))  # changes nothing
    assert await change_count(db) == before, "an update that changes nothing records nothing"

    async with db.transaction() as session:
        asset_id = await session.scalar(select(Asset.id).order_by(Asset.id).limit(1))
        await session.execute(update(Asset).where(Asset.id == asset_id).values(description="new description"))
    async with db.session() as session:
        last = (await session.scalars(select(Change).order_by(Change.id.desc()).limit(1))).one()
    assert await change_count(db) == before + 1
    assert (last.entity, last.entity_id) == ("asset", asset_id)

    async def write_then_fail() -> None:
        async with db.transaction() as session:
            await ensure_assets(session, ["test://feed/rolled-back"], now)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        await write_then_fail()
    assert await change_count(db) == before + 1, "a rolled back write leaves no change"


async def changed_assets_after(db: Database, change_id: int) -> list[int]:
    async with db.session() as session:
        found = await session.scalars(
            select(Change.entity_id).where(Change.id > change_id, Change.entity == "asset").order_by(Change.id)
        )
    return list(found)


async def test_one_statement_records_the_rows_it_changed_and_no_other(db: Database, now: datetime) -> None:
    # Postgres records a statement's rows at once (a statement trigger reading its transition tables), SQLite
    # row by row: both record exactly the rows a statement inserted or really changed.
    async with db.transaction() as session:
        ids = await ensure_assets(session, ["test://feed/a", "test://feed/b", "test://feed/c"], now)
        start = await session.scalar(select(func.max(Change.id)))
    assert start is not None
    assert sorted(await changed_assets_after(db, start - 3)) == sorted(ids.values())

    async with db.transaction() as session:
        keep = case((Asset.key == "test://feed/c", Asset.description), else_=literal("rewritten"))
        await session.execute(update(Asset).where(Asset.id.in_(list(ids.values()))).values(description=keep))
        after_update = await session.scalar(select(func.max(Change.id)))
    assert after_update is not None
    assert await changed_assets_after(db, start) == sorted([ids["test://feed/a"], ids["test://feed/b"]])

    # An upsert: one row inserted, one updated, one left as it was.
    table = Asset.__table__
    upsert = insert_for(db.dialect, table)
    upsert = upsert.on_conflict_do_update(index_elements=["key"], set_={"description": upsert.excluded.description})
    rows = [
        {
            "key": key,
            "namespace": "test",
            "name": key,
            "description": description,
            "owners": [],
            "tags": [],
            "metadata": {},
            "fields": [],
            "created_at": now,
            "updated_at": now,
        }
        for key, description in [("test://feed/a", "rewritten"), ("test://feed/b", "again"), ("test://feed/d", "new")]
    ]
    async with db.transaction() as session:
        await session.execute(upsert, rows)
        new_id = await session.scalar(select(Asset.id).where(Asset.key == "test://feed/d"))
    assert sorted(await changed_assets_after(db, after_update)) == sorted([ids["test://feed/b"], new_id])


async def test_pages_of_the_feed_give_every_change_once_in_order(db: Database, now: datetime) -> None:
    await ingest(db, [load_documents(APPLES)], now)
    await settled(db)
    total = await change_count(db)
    seen, cursor = await read_all(db, feed.START, limit=7)
    assert len(seen) == total
    positions: Sequence[tuple[int, int]] = [(txid, change_id) for txid, change_id, _, _ in seen]
    assert list(positions) == sorted(set(positions))
    async with db.session() as session:
        assert await feed.feed_head(session) == cursor
        assert await feed.count_changes_after(session, feed.START) == total
        assert await feed.count_changes_after(session, cursor) == 0
        assert await feed.oldest_change_after(session, cursor) is None
        assert await feed.oldest_change_after(session, feed.START) is not None
