"""Scheduled work inside the service: APScheduler 3 (AsyncIOScheduler), run only by the leader.

With several gateway processes on one Postgres, the leader is whoever holds a Postgres advisory lock
on a dedicated connection (outside the pool): when that process dies, its connection closes, the lock
is released, and the next process to try takes over. SQLite serves one process: it always leads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.settings import Settings

logger = logging.getLogger("gateway.scheduler")
LEADER_LOCK_KEY = 0x61737365745F6777  # "asset_gw"


class LeaderLock:
    def __init__(self, settings: Settings, key: int = LEADER_LOCK_KEY) -> None:
        self.key = key
        self.engine: AsyncEngine | None = None
        if not settings.is_sqlite:
            # Autocommit: the lock is session-level, and the heartbeat must not leave a transaction open
            # ("idle in transaction" for the life of the process holds back VACUUM and meets
            # idle_in_transaction_session_timeout, which would end the connection and the leadership).
            self.engine = create_async_engine(
                settings.resolved_database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        self.connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self.engine is None or self.connection is not None

    async def acquire(self) -> bool:
        """True while this process leads; tries to take the lead when it does not."""
        if self.engine is None:
            return True
        if self.connection is not None:
            try:
                await self.connection.execute(text("SELECT 1"))
                return True
            except Exception:
                logger.warning("lost the leader connection; trying to lead again")
                await self._drop()
        try:
            connection = await self.engine.connect()
        except Exception:
            logger.warning("cannot reach the database to take the leader lock", exc_info=True)
            return False
        try:
            taken = (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})).scalar()
            await connection.commit()
        except Exception:
            await connection.close()
            return False
        if not taken:
            await connection.close()
            return False
        logger.info("this process now leads scheduled work")
        self.connection = connection
        return True

    async def _drop(self) -> None:
        if self.connection is not None:
            try:
                await self.connection.close()
            except Exception:
                logger.debug("closing a dead leader connection failed", exc_info=True)
            self.connection = None

    async def release(self) -> None:
        if self.connection is not None:
            try:
                await self.connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception:
                logger.debug("unlock failed; closing the connection releases it", exc_info=True)
        await self._drop()
        if self.engine is not None:
            await self.engine.dispose()


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    run: Callable[[], Awaitable[object]]
    interval_seconds: float | None = None
    cron: str | None = None


class Scheduler:
    """Runs each job on its schedule, one instance at a time, only while this process leads."""

    def __init__(self, leader: LeaderLock) -> None:
        self.leader = leader
        self.scheduler = AsyncIOScheduler(timezone=UTC)

    def add(self, job: ScheduledJob) -> None:
        if job.cron:
            from apscheduler.triggers.cron import CronTrigger

            trigger = CronTrigger.from_crontab(job.cron, timezone=UTC)
            self.scheduler.add_job(self._guarded(job), trigger, id=job.name, max_instances=1, coalesce=True)
        else:
            self.scheduler.add_job(
                self._guarded(job),
                "interval",
                seconds=job.interval_seconds or 60,
                id=job.name,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
            )

    def _guarded(self, job: ScheduledJob) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                if await self.leader.acquire():
                    await job.run()
            except Exception:
                logger.exception("scheduled job %s failed", job.name)
            except asyncio.CancelledError:
                # The scheduler shuts down and cancels a job in flight; its transaction rolls back. This is the
                # job's outermost frame: ending here spares APScheduler reporting a stop as a failure.
                logger.info("scheduled job %s stopped by the shutdown; it will run again at the next start", job.name)

        return run

    def start(self) -> None:
        self.scheduler.start()

    async def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.leader.release()
