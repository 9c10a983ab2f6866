"""The per-request loaders (schema/batch_loader.py): one statement per batch, in waves, whatever the timing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

import pytest

from gateway.database import Database
from gateway.store.assets import AssetSpec, upsert_asset
from schema.batch_loader import BatchLoader, Waves
from schema.loaders import Loaders
from tests.helpers import count_statements


async def _assets(db: Database, now: datetime, count: int) -> list[int]:
    async with db.transaction() as session:
        return [(await upsert_asset(session, AssetSpec(f"dw://wh/t_{index:03d}"), now)).id for index in range(count)]


async def test_a_loader_reads_what_resolvers_want_together_in_one_statement(db: Database, now: datetime) -> None:
    ids = await _assets(db, now, 100)
    loaders = Loaders(db)
    with count_statements(db) as counter:
        singles = await asyncio.gather(*(loaders.asset_by_id.load(asset_id) for asset_id in [*ids, -1]))
        # Every key is known now, found or not: no statement more.
        again = await loaders.asset_by_id.load_many([*ids, -1])
    assert counter.count == 1
    assert [row.id if row else None for row in singles] == [*ids, None]
    assert [row.id if row else None for row in again] == [*ids, None]


async def test_a_key_being_read_is_not_read_again(db: Database, now: datetime) -> None:
    ids = await _assets(db, now, 3)
    loaders = Loaders(db)
    with count_statements(db) as counter:
        first = asyncio.ensure_future(loaders.asset_by_id.load_many(ids))
        # Let the read start, then ask for one of its keys while it is under way.
        while not counter.count:  # noqa: ASYNC110 - no event announces the statement the loader sends
            await asyncio.sleep(0)
        second = await loaders.asset_by_id.load(ids[1])
        assert second is not None
        assert (await first)[1] is second
    assert counter.count == 1


async def test_keys_that_reads_lead_to_are_read_in_one_wave() -> None:
    """Two reads answer at different moments; what their answers lead to is still read together."""
    waves = Waves()
    reads: list[list[int]] = []

    async def slow_then(delay: float, found: dict[int, int]) -> Mapping[int, int]:
        await asyncio.sleep(delay)
        return found

    def loader(delay: float) -> BatchLoader[int, int]:
        async def read(keys: list[int]) -> Mapping[int, int]:
            reads.append(keys)
            return await slow_then(delay, {key: key * 10 for key in keys})

        return BatchLoader(read, -1, waves)

    fast, slow, next_ = loader(0.0), loader(0.05), loader(0.0)

    async def chain(first: BatchLoader[int, int], key: int) -> int:
        return await next_.load(await first.load(key))

    answers = await asyncio.gather(chain(fast, 1), chain(slow, 2), chain(fast, 3))
    assert answers == [100, 200, 300]
    # fast (1, 3) and slow (2) in the first wave; 10, 20 and 30 together in the second.
    assert sorted(map(sorted, reads)) == [[1, 3], [2], [10, 20, 30]]


async def test_a_failed_read_fails_its_waiters_and_the_next_load_reads_again() -> None:
    attempts: list[list[str]] = []

    async def read(keys: list[str]) -> Mapping[str, str]:
        attempts.append(keys)
        if len(attempts) == 1:
            raise ConnectionError("the database went away")
        return {key: key.upper() for key in keys}

    loader: BatchLoader[str, str] = BatchLoader(read, "", Waves())
    results = await asyncio.gather(loader.load("a"), loader.load("b"), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert await loader.load_many(["a", "b"]) == ["A", "B"]
    assert attempts == [["a", "b"], ["a", "b"]]


async def test_a_cancelled_waiter_leaves_the_read_to_the_others() -> None:
    release = asyncio.Event()

    async def read(keys: list[str]) -> Mapping[str, str]:
        await release.wait()
        return {key: key.upper() for key in keys}

    loader: BatchLoader[str, str] = BatchLoader(read, "", Waves())
    cancelled = asyncio.ensure_future(loader.load("a"))
    kept = asyncio.ensure_future(loader.load("a"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await kept == "A"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
