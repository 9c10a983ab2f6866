"""Learned cadence (`auto` policies): the median gap between an asset's recent successful materializations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from gateway.database import Database
from tests.monitors import add_policy, health, materialize, open_alerts, run_sweep, status
from tests.store.factories import declare, record

HOUR = 3600
KEY = "db://wh/events.hourly"


async def history(
    db: Database, key: str, start: datetime, gaps_hours: Sequence[float], prefix: str = "run"
) -> datetime:
    """COMPLETE runs writing `key`: one at `start`, then one after each gap. Returns the last one's time."""
    moment = start
    await materialize(db, key, moment, f"{prefix}-0")
    for index, gap in enumerate(gaps_hours, start=1):
        moment += timedelta(hours=gap)
        await materialize(db, key, moment, f"{prefix}-{index}")
    return moment


async def expected_interval(db: Database, key: str) -> float | None:
    found = await health(db, key)
    assert found is not None
    return found.expected_interval_seconds


@pytest.fixture
def start(now: datetime) -> datetime:
    return now - timedelta(days=5)


async def test_a_regular_hourly_history(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    policy = await add_policy(db, "learned", "auto", asset_key=KEY, tolerance=1.0)
    # Twelve runs an hour apart, each with a START event ten minutes before it completes.
    last = start
    for index in range(12):
        last = start + timedelta(hours=index)
        await record(db, f"build {KEY}", f"r{index}", "START", last - timedelta(minutes=10), outputs=[KEY], now=last)
        await materialize(db, KEY, last, f"r{index}")

    await run_sweep(db, last + timedelta(hours=1.5))
    found = await health(db, KEY)
    assert found is not None
    assert (found.status, found.policy_id) == ("FRESH", policy.id)
    assert found.expected_interval_seconds == pytest.approx(HOUR, abs=1)

    # Stale once more than median * (1 + tolerance) = 2 h have passed.
    await run_sweep(db, last + timedelta(hours=2) - timedelta(seconds=1))
    assert await status(db, KEY) == "FRESH"
    await run_sweep(db, last + timedelta(hours=2, seconds=1))
    assert await status(db, KEY) == "STALE"
    await run_sweep(db, last + timedelta(hours=2.5))
    assert await status(db, KEY) == "STALE"
    [alert] = await open_alerts(db, KEY)
    assert (alert.kind, alert.policy_id) == ("stale", policy.id)

    # The next run on its usual schedule resolves it, and the cadence is still an hour.
    await materialize(db, KEY, last + timedelta(hours=3), "r12")
    await run_sweep(db, last + timedelta(hours=3, minutes=1))
    assert await status(db, KEY) == "FRESH"
    assert await open_alerts(db, KEY) == []
    assert await expected_interval(db, KEY) == pytest.approx(HOUR, abs=1)  # eleven 1 h gaps and one of 3 h


async def test_tolerance_scales_the_allowed_delay(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "strict", "auto", asset_key=KEY, tolerance=0.25)
    last = await history(db, KEY, start, [1] * 8)
    await run_sweep(db, last + timedelta(hours=1.2))
    assert await status(db, KEY) == "FRESH"
    await run_sweep(db, last + timedelta(hours=1.3))
    assert await status(db, KEY) == "STALE"


async def test_an_outlier_does_not_move_the_median(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", asset_key=KEY, tolerance=1.0)
    # Mostly hourly, with one ten-hour outage: the mean gap would be 2.1 h, the median is 1 h.
    last = await history(db, KEY, start, [1, 1, 1, 10, 1, 1, 1, 1])
    await run_sweep(db, last + timedelta(hours=1.5))
    assert await status(db, KEY) == "FRESH"
    assert await expected_interval(db, KEY) == pytest.approx(HOUR, abs=1)
    await run_sweep(db, last + timedelta(hours=2.5))
    assert await status(db, KEY) == "STALE"


async def test_the_median_of_an_even_number_of_gaps_is_the_mean_of_the_middle_two(
    db: Database, start: datetime
) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", asset_key=KEY, tolerance=1.0)
    last = await history(db, KEY, start, [3, 1, 6, 2, 5, 4])
    await run_sweep(db, last + timedelta(minutes=1))
    assert await expected_interval(db, KEY) == pytest.approx(3.5 * HOUR, abs=1)
    await run_sweep(db, last + timedelta(hours=6.9))
    assert await status(db, KEY) == "FRESH"
    await run_sweep(db, last + timedelta(hours=7.1))
    assert await status(db, KEY) == "STALE"


async def test_an_odd_number_of_gaps_takes_the_middle_one(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", asset_key=KEY)
    await history(db, KEY, start, [0.5, 4, 2, 1, 3])
    await run_sweep(db, start + timedelta(days=1))
    assert await expected_interval(db, KEY) == pytest.approx(2 * HOUR, abs=1)


async def test_only_recent_materializations_count(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=30))
    await add_policy(db, "learned", "auto", asset_key=KEY, tolerance=1.0)
    # Months ago it ran every 5 h; lately every hour. Over all 46 gaps the median would be 5 h.
    old_start = start - timedelta(days=10)
    last_old = await history(db, KEY, old_start, [5] * 24, prefix="old")
    last = await history(db, KEY, last_old + timedelta(hours=5), [1] * 21, prefix="new")
    await run_sweep(db, last + timedelta(hours=2.5))
    assert await expected_interval(db, KEY) == pytest.approx(HOUR, abs=1)
    assert await status(db, KEY) == "STALE"


async def test_fewer_gaps_than_min_history_is_unknown(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", asset_key=KEY, min_history=5)
    last = await history(db, KEY, start, [1, 1, 1, 1])  # five runs: four gaps
    # However long it has been, four gaps are not enough to judge.
    await run_sweep(db, last + timedelta(days=3))
    assert await status(db, KEY) == "UNKNOWN"
    assert await open_alerts(db, KEY) == []
    await materialize(db, KEY, last + timedelta(hours=1), "run-5")  # the fifth gap
    await run_sweep(db, last + timedelta(hours=1, minutes=30))
    assert await status(db, KEY) == "FRESH"
    await run_sweep(db, last + timedelta(hours=3, minutes=30))
    assert await status(db, KEY) == "STALE"


async def test_min_history_defaults_to_five_gaps(db: Database, start: datetime) -> None:
    short, enough = "db://wh/a.short", "db://wh/a.enough"
    for key in (short, enough):
        await declare(db, key, tags=["learned"], now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", selector={"tag": "learned"})
    await history(db, short, start, [1] * 4, prefix="s")
    await history(db, enough, start, [1] * 5, prefix="e")
    await run_sweep(db, start + timedelta(days=2))
    assert (await status(db, short), await status(db, enough)) == ("UNKNOWN", "STALE")


async def test_a_never_materialized_asset_is_unknown(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=100))
    await add_policy(db, "learned", "auto", asset_key=KEY)
    await run_sweep(db, start)
    assert await status(db, KEY) == "UNKNOWN"


async def test_failed_and_aborted_runs_are_not_materializations(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", asset_key=KEY, tolerance=1.0)
    # Hourly successes, with a failed (or aborted) attempt at every half hour in between.
    last = start
    for index in range(8):
        last = start + timedelta(hours=index)
        await materialize(db, KEY, last, f"ok-{index}")
        if index < 7:
            state = "FAIL" if index % 2 else "ABORT"
            await materialize(db, KEY, last + timedelta(minutes=30), f"bad-{index}", state=state)
    # Had the failures counted, the cadence would be 30 min and the asset stale after an hour.
    await run_sweep(db, last + timedelta(hours=1.5))
    assert await status(db, KEY) == "FRESH"
    assert await expected_interval(db, KEY) == pytest.approx(HOUR, abs=1)
    await run_sweep(db, last + timedelta(hours=2.5))
    assert await status(db, KEY) == "STALE"


async def test_reads_of_the_asset_are_not_materializations(db: Database, start: datetime) -> None:
    await declare(db, KEY, now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", asset_key=KEY, tolerance=1.0)
    last = await history(db, KEY, start, [2] * 6)
    # A consumer reads it every 20 minutes, in runs of its own job that complete.
    for index in range(30):
        when = start + timedelta(minutes=20 * index)
        await record(
            db, "consumer", f"read-{index}", "COMPLETE", when, inputs=[KEY], outputs=["db://wh/a.out"], now=when
        )
    await run_sweep(db, last + timedelta(hours=3))
    assert await expected_interval(db, KEY) == pytest.approx(2 * HOUR, abs=1)
    assert await status(db, KEY) == "FRESH"


async def test_each_asset_learns_its_own_cadence(db: Database, start: datetime) -> None:
    fast, slow = "db://wh/c.fast", "db://wh/c.slow"
    for key in (fast, slow):
        await declare(db, key, tags=["learned"], now=start - timedelta(days=1))
    await add_policy(db, "learned", "auto", selector={"tag": "learned"}, tolerance=1.0)
    last_fast = await history(db, fast, start, [0.25] * 6, prefix="f")
    last_slow = await history(db, slow, start, [6] * 6, prefix="s")
    now = max(last_fast, last_slow) + timedelta(hours=1)
    await run_sweep(db, now)
    assert await expected_interval(db, fast) == pytest.approx(900, abs=1)
    assert await expected_interval(db, slow) == pytest.approx(6 * HOUR, abs=1)
    assert (await status(db, fast), await status(db, slow)) == ("STALE", "FRESH")
