"""The freshness monitor: sweep, queue notifications for alert transitions, deliver them, record the run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database, run_transaction
from gateway.orm import Alert, AlertDelivery, Asset, FreshnessPolicy, MonitorRun
from gateway.settings import Settings
from gateway.store import alerts as alert_store
from gateway.store.assets import read_assets_by_keys
from gateway.store.freshness import sweep
from gateway.store.policies import list_policies, sync_config_policies
from monitors.config import PolicyConfig, parse_notifiers, parse_policies
from monitors.deadlines import deadlines
from monitors.messages import build_message
from monitors.notifiers import Notifier, build_notifiers

logger = logging.getLogger("gateway.monitors")
MONITOR_NAME = "freshness"
IMMEDIATE_RETRIES = 3


def retry_delay(attempts: int) -> timedelta:
    """Backoff between delivery attempts across sweeps: 30 s, 1 min, 2 min ... at most 1 h."""
    return timedelta(seconds=min(30 * 2**attempts, 3600))


class FreshnessMonitor:
    name = MONITOR_NAME

    def __init__(
        self,
        db: Database,
        policies: Sequence[PolicyConfig] = (),
        notifiers: dict[str, Notifier] | None = None,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.config_policies = list(policies)
        self.notifiers = notifiers or {}
        self.max_attempts = max_attempts
        self._policies_synced = False
        # Keys of the assets whose config policies the last sync skipped because no such asset existed yet.
        self._waiting_for: set[str] = set()
        # Told of every run (the /metrics figures); None for a run that could not be recorded at all.
        self.observers: list[Callable[[str, MonitorRun | None], None]] = []

    async def sync_policies(self, now: datetime) -> None:
        specs = [policy.to_spec("config") for policy in self.config_policies]

        async def work(session: AsyncSession) -> set[str]:
            skipped = set(await sync_config_policies(session, specs, now))
            keys = [spec.asset_key for spec in specs if spec.name in skipped and spec.asset_key is not None]
            known = await read_assets_by_keys(session, keys)
            return {key for key in keys if key not in known}

        self._waiting_for = await run_transaction(self.db, work)

    async def _waited_for_assets_appeared(self) -> bool:
        """True when an asset that a skipped config policy names exists now: time to sync again."""
        if not self._waiting_for:
            return False
        async with self.db.session() as session:
            return bool(await read_assets_by_keys(session, sorted(self._waiting_for)))

    async def run(self, now: datetime | None = None) -> MonitorRun:
        """One sweep. Errors are logged and recorded on the run, never raised."""
        record: MonitorRun | None = None
        try:
            record = await self._run(now)
            return record
        finally:
            for observer in self.observers:
                observer(self.name, record)

    async def _run(self, now: datetime | None) -> MonitorRun:
        now = now or datetime.now(UTC)
        started = time.perf_counter()
        async with self.db.transaction() as session:
            record = await alert_store.start_monitor_run(session, self.name, now)
        try:
            if not self._policies_synced or await self._waited_for_assets_appeared():
                await self.sync_policies(now)
                self._policies_synced = True
            opened, resolved, checked = await run_transaction(self.db, lambda session: self._sweep(session, now))
            record.assets_checked, record.alerts_opened, record.alerts_resolved = checked, opened, resolved
            await self.deliver(now)
        except Exception as error:
            logger.exception("freshness sweep failed")
            record.error = f"{type(error).__name__}: {error}"[:2000]
        record.finished_at = now + timedelta(seconds=time.perf_counter() - started)
        async with self.db.transaction() as session:
            await session.merge(record)
        return record

    async def _sweep(self, session: AsyncSession, now: datetime) -> tuple[int, int, int]:
        policies = await list_policies(session)
        result = await sweep(session, policies, deadlines(policies, now), now)
        await self._queue(session, [(alert_id, "opened") for alert_id in result.opened], now)
        await self._queue(session, [(alert_id, "resolved") for alert_id in result.resolved], now)
        return len(result.opened), len(result.resolved), result.assets_checked

    async def _queue(self, session: AsyncSession, events: list[tuple[int, str]], now: datetime) -> None:
        if not events or not self.notifiers:
            return
        alerts = await alert_store.read_alerts_by_ids(session, [alert_id for alert_id, _ in events])
        assets = {
            asset.id: asset
            for asset in await session.scalars(select(Asset).where(Asset.id.in_({a.asset_id for a in alerts.values()})))
        }
        routes = {
            (alert_id, event): [
                name
                for name, notifier in self.notifiers.items()
                if notifier.wants(assets[alerts[alert_id].asset_id], alerts[alert_id].severity)
            ]
            for alert_id, event in events
        }
        await alert_store.queue_deliveries(session, routes, now)

    async def deliver(self, now: datetime) -> int:
        """Send due notifications; a failure is recorded and retried later, never raised."""
        async with self.db.session() as session:
            due = await alert_store.due_deliveries(session, now, self.max_attempts, limit=500)
            context = await self._context(session, due)
        delivered = 0
        for delivery in due:
            error = await self._send(delivery, context, now)
            async with self.db.transaction() as session:
                await alert_store.record_delivery(session, delivery.id, now, error, retry_delay(delivery.attempts))
            delivered += error is None
        return delivered

    async def _context(
        self, session: AsyncSession, due: list[AlertDelivery]
    ) -> dict[int, tuple[Alert, Asset, FreshnessPolicy | None]]:
        alerts = await alert_store.read_alerts_by_ids(session, [d.alert_id for d in due])
        assets = {
            asset.id: asset
            for asset in await session.scalars(select(Asset).where(Asset.id.in_({a.asset_id for a in alerts.values()})))
        }
        policies = {policy.id: policy for policy in await list_policies(session)}
        return {
            alert.id: (alert, assets[alert.asset_id], policies.get(alert.policy_id) if alert.policy_id else None)
            for alert in alerts.values()
        }

    async def _send(
        self, delivery: AlertDelivery, context: dict[int, tuple[Alert, Asset, FreshnessPolicy | None]], now: datetime
    ) -> str | None:
        notifier = self.notifiers.get(delivery.notifier)
        if notifier is None:
            return f"notifier {delivery.notifier!r} is no longer configured"
        alert, asset, policy = context[delivery.alert_id]
        message = build_message(delivery.event, alert, asset, policy, None, now)
        error = None
        for attempt in range(IMMEDIATE_RETRIES):
            try:
                await notifier.send(message)
                return None
            except Exception as failure:
                error = f"{type(failure).__name__}: {failure}"
                logger.warning("delivery to %s failed (attempt %d): %s", notifier.name, attempt + 1, error)
                if attempt + 1 < IMMEDIATE_RETRIES:  # after the last one, the next run retries
                    await asyncio.sleep(0.2 * 2**attempt)
        return error

    async def aclose(self) -> None:
        for notifier in self.notifiers.values():
            await notifier.aclose()


def monitor_from_settings(db: Database, settings: Settings) -> FreshnessMonitor:
    """Raises ValueError (pydantic's ValidationError) naming the bad policy or notifier."""
    return FreshnessMonitor(
        db,
        parse_policies(settings.freshness_policies),
        build_notifiers(parse_notifiers(settings.notifiers)),
        settings.notification_max_attempts,
    )
