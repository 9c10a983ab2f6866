"""A shutdown that meets a scheduled job in flight stops it quietly: a stop is not a failure."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.settings import Settings
from monitors.scheduler import LeaderLock, ScheduledJob, Scheduler


async def test_a_job_in_flight_at_shutdown_stops_without_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    finished = False

    async def sweep() -> None:
        nonlocal finished
        started.set()
        await asyncio.sleep(60)
        finished = True

    # SQLite: this process always leads, no lock to take.
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    scheduler = Scheduler(LeaderLock(settings))
    scheduler.add(ScheduledJob("slow sweep", sweep, interval_seconds=3600))
    caplog.set_level(logging.INFO)
    scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    await scheduler.shutdown()
    for _ in range(20):  # the cancelled job ends on the loop's next turns
        await asyncio.sleep(0.01)
    assert not finished
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert errors == [], [record.getMessage() for record in errors]
    assert "scheduled job slow sweep stopped by the shutdown" in caplog.text
