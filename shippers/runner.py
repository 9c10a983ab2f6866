"""Runs one shipper over the change feed: read after the cursor, ship, advance only once accepted.

At-least-once: the cursor moves only after the target accepted a batch, so a crash or an outage means
the next run ships that batch again (shippers are idempotent at their target). A batch that fails a few
attempts ends the run and is tried again next run; one that keeps failing for `park_after_runs` runs is
parked (dead letter, visible in the API) so that the rest of the feed moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.database import Database
from gateway.store import changes as feed
from shippers.base import AssetShipper, ShipperSpec
from shippers.batch import Filters, Touched, load_batch
from shippers.records import ChangeBatch

logger = logging.getLogger("gateway.shippers")
FULL_EXPORT_ORDER = ("asset", "job", "run", "edge")


@dataclass
class ShipReport:
    shipped: int = 0
    batches: int = 0
    parked: int = 0
    error: str | None = None
    full: bool = False


class ShipperRunner:
    def __init__(self, db: Database, spec: ShipperSpec, shipper: AssetShipper, retry_base_seconds: float = 0.5) -> None:
        self.db = db
        self.spec = spec
        self.shipper = shipper
        self.filters = Filters(**spec.filters.as_dict())
        self.retry_base_seconds = retry_base_seconds
        self._lock = asyncio.Lock()
        # Told of every run's report (the /metrics figures).
        self.observers: list[Callable[[str, ShipReport], None]] = []

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self, full: bool = False, progress: Callable[[int], None] | None = None) -> ShipReport:
        """One pass to the end of the feed (or of everything, with `full`). Never raises."""
        async with self._lock:
            try:
                report = await (self._full(progress) if full else self._incremental(progress))
            except Exception as error:
                logger.exception("shipper %s failed", self.name)
                report = ShipReport(error=f"{type(error).__name__}: {error}", full=full)
        for observer in self.observers:
            observer(self.name, report)
        return report

    async def _ship(self, batch: ChangeBatch) -> str | None:
        """Ship with retries and exponential backoff; the last error, or None once accepted."""
        error = None
        for attempt in range(self.spec.max_attempts):
            try:
                await self.shipper.ship(batch)
                return None
            except Exception as failure:
                error = f"{type(failure).__name__}: {failure}"
                logger.warning("shipper %s: attempt %d failed: %s", self.name, attempt + 1, error)
                if attempt + 1 < self.spec.max_attempts:
                    await asyncio.sleep(min(self.retry_base_seconds * 2**attempt, 30.0))
        return error

    async def _incremental(self, progress: Callable[[int], None] | None) -> ShipReport:
        report = ShipReport()
        async with self.db.transaction() as session:
            state = await feed.read_shipper_state(session, self.name, self.shipper.kind)
        cursor: feed.Cursor = (state.cursor_txid, state.cursor_id)
        failures = state.failures
        while True:
            async with self.db.session() as session:
                read = await feed.read_changes(session, cursor, self.spec.batch_size)
                if not read.changes:
                    break
                batch = await load_batch(session, Touched.of(read.changes), self.filters)
            batch.changes = len(read.changes)
            first = (read.changes[0].txid, read.changes[0].id)
            last = (read.changes[-1].txid, read.changes[-1].id)
            error = await self._ship(batch) if len(batch) else None
            now = datetime.now(UTC)
            if error is None:
                async with self.db.transaction() as session:
                    await feed.advance_cursor(session, self.name, last, len(read.changes), now)
                cursor, failures = last, 0
                report.shipped += len(read.changes)
                report.batches += 1
                if progress:
                    progress(len(read.changes))
                continue
            failures += 1
            if failures < self.spec.park_after_runs:
                async with self.db.transaction() as session:
                    await feed.record_failure(session, self.name, error, now)
                report.error = error
                break
            async with self.db.transaction() as session:
                await feed.park_batch(
                    session, self.name, first, last, len(read.changes), failures * self.spec.max_attempts, error, now
                )
                await feed.skip_parked(session, self.name, last, error, now)
            logger.error(
                "shipper %s parked %d changes after %d failed runs: %s", self.name, batch.changes, failures, error
            )
            cursor, failures = last, 0
            report.parked += 1
        return report

    async def _full(self, progress: Callable[[int], None] | None) -> ShipReport:
        """Everything as it is now; then the cursor jumps to the head read before the export began."""
        report = ShipReport(full=True)
        async with self.db.transaction() as session:
            await feed.read_shipper_state(session, self.name, self.shipper.kind)
            head = await feed.feed_head(session)
        for entity in FULL_EXPORT_ORDER:
            after = 0
            while True:
                async with self.db.session() as session:
                    ids = await feed.page_entity_ids(session, entity, after, self.spec.batch_size)
                    if not ids:
                        break
                    touched = Touched(versions=await feed.read_latest_changes(session, entity, ids))
                    getattr(touched, f"{entity}s").update(ids)
                    batch = await load_batch(session, touched, self.filters)
                error = await self._ship(batch) if len(batch) else None
                if error is not None:
                    async with self.db.transaction() as session:
                        await feed.record_failure(session, self.name, error, datetime.now(UTC))
                    report.error = error
                    return report
                after = ids[-1]
                report.shipped += len(ids)
                report.batches += 1
                if progress:
                    progress(len(ids))
        async with self.db.transaction() as session:
            state = await feed.read_shipper_state(session, self.name, self.shipper.kind)
            cursor = max((state.cursor_txid, state.cursor_id), head)
            await feed.advance_cursor(session, self.name, cursor, 0, datetime.now(UTC))
        return report

    async def aclose(self) -> None:
        await self.shipper.aclose()
