"""Alerts, their notification outbox, and the record of monitor runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import NamespaceGrants
from gateway.errors import Conflict, NotFound
from gateway.orm import Alert, AlertDelivery, Asset, AssetHealth, MonitorRun
from gateway.store.grants import namespace_clause
from gateway.store.pagination import KeysetOrder, Page, keyset_page
from gateway.store.sql import dialect_name, insert, one_of

ALERT_ORDER = "OPENED_AT_DESC"


@dataclass(frozen=True)
class AlertFilter:
    open: bool | None = None
    kinds: Sequence[str] | None = None
    severities: Sequence[str] | None = None
    namespace: str | None = None
    namespace_prefix: str | None = None
    asset_ids: Sequence[int] | None = None
    opened_after: datetime | None = None
    opened_before: datetime | None = None
    # The caller's namespace grants on the alerts' assets (None: unrestricted).
    grants: NamespaceGrants | None = None


def alert_conditions(f: AlertFilter, dialect: str) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.grants is not None and not f.grants.everything:
        visible = select(Asset.id).where(namespace_clause(f.grants, Asset.namespace, dialect))
        conditions.append(Alert.asset_id.in_(visible.scalar_subquery()))
    if f.open is not None:
        conditions.append(Alert.resolved_at.is_(None) if f.open else Alert.resolved_at.is_not(None))
    if f.kinds is not None:
        conditions.append(Alert.kind.in_(list(f.kinds)))
    if f.severities is not None:
        conditions.append(Alert.severity.in_(list(f.severities)))
    if f.asset_ids is not None:
        conditions.append(Alert.asset_id.in_(list(f.asset_ids)))
    if f.namespace is not None or f.namespace_prefix is not None:
        assets = select(Asset.id)
        if f.namespace is not None:
            assets = assets.where(Asset.namespace == f.namespace)
        if f.namespace_prefix is not None:
            assets = assets.where(Asset.namespace.startswith(f.namespace_prefix, autoescape=True))
        conditions.append(Alert.asset_id.in_(assets.scalar_subquery()))
    if f.opened_after is not None:
        conditions.append(Alert.opened_at >= f.opened_after)
    if f.opened_before is not None:
        conditions.append(Alert.opened_at < f.opened_before)
    return conditions


ALERTS_NEWEST_FIRST: KeysetOrder[Alert] = KeysetOrder(
    ALERT_ORDER, Alert.opened_at, Alert.id, True, True, lambda alert: alert.opened_at, lambda alert: alert.id, False
)


async def list_alerts(session: AsyncSession, alert_filter: AlertFilter, first: int, after: str | None) -> Page[Alert]:
    """Alerts, newest first."""
    statement = select(Alert).where(*alert_conditions(alert_filter, dialect_name(session)))
    return await keyset_page(session, statement, ALERTS_NEWEST_FIRST, first, after)


async def count_alerts(session: AsyncSession, alert_filter: AlertFilter) -> int:
    statement = select(func.count()).select_from(Alert).where(*alert_conditions(alert_filter, dialect_name(session)))
    return (await session.execute(statement)).scalar_one()


async def read_alerts_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Alert]:
    if not ids:
        return {}
    rows = await session.scalars(select(Alert).where(one_of(session, Alert.id, ids)))
    return {alert.id: alert for alert in rows}


async def read_open_alerts_by_asset_ids(session: AsyncSession, asset_ids: Sequence[int]) -> dict[int, list[Alert]]:
    result: dict[int, list[Alert]] = {asset_id: [] for asset_id in asset_ids}
    if asset_ids:
        rows = await session.scalars(
            select(Alert)
            .where(one_of(session, Alert.asset_id, asset_ids), Alert.resolved_at.is_(None))
            .order_by(Alert.asset_id, Alert.opened_at.desc(), Alert.id.desc())
        )
        for alert in rows:
            result[alert.asset_id].append(alert)
    return result


async def read_health_by_asset_ids(session: AsyncSession, asset_ids: Sequence[int]) -> dict[int, AssetHealth]:
    if not asset_ids:
        return {}
    rows = await session.scalars(select(AssetHealth).where(one_of(session, AssetHealth.asset_id, asset_ids)))
    return {health.asset_id: health for health in rows}


async def read_health_status_by_asset_ids(session: AsyncSession, asset_ids: Sequence[int]) -> dict[int, str]:
    """The sweep's verdict alone, for pages of assets (no row objects to build)."""
    if not asset_ids:
        return {}
    rows = await session.execute(
        select(AssetHealth.asset_id, AssetHealth.status).where(one_of(session, AssetHealth.asset_id, asset_ids))
    )
    return {asset_id: status for asset_id, status in rows}  # noqa: C416 - a result is no mapping


async def acknowledge_alert(session: AsyncSession, alert_id: int, who: str, now: datetime) -> Alert:
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert with id {alert_id}")
    if alert.acknowledged_at is not None:
        raise Conflict(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}")
    alert.acknowledged_at = now
    alert.acknowledged_by = who
    await session.flush()
    return alert


async def queue_deliveries(session: AsyncSession, routes: dict[tuple[int, str], list[str]], now: datetime) -> None:
    """(alert id, event) -> notifier names. A delivery already queued is not queued twice."""
    rows = [
        {
            "alert_id": alert_id,
            "notifier": notifier,
            "event": event,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for (alert_id, event), notifiers in sorted(routes.items())
        for notifier in sorted(set(notifiers))
    ]
    if rows:
        statement = insert(session, AlertDelivery).values(rows)
        await session.execute(statement.on_conflict_do_nothing(index_elements=["alert_id", "notifier", "event"]))


async def due_deliveries(session: AsyncSession, now: datetime, max_attempts: int, limit: int) -> list[AlertDelivery]:
    statement = (
        select(AlertDelivery)
        .where(
            AlertDelivery.delivered_at.is_(None),
            AlertDelivery.next_attempt_at <= now,
            AlertDelivery.attempts < max_attempts,
        )
        .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def record_delivery(
    session: AsyncSession, delivery_id: int, now: datetime, error: str | None, retry_in: timedelta
) -> None:
    values: dict[str, object] = {"attempts": AlertDelivery.attempts + 1}
    if error is None:
        values |= {"delivered_at": now, "last_error": None}
    else:
        values |= {"last_error": error[:2000], "next_attempt_at": now + retry_in}
    await session.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values))


async def read_deliveries_by_alert_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[AlertDelivery]]:
    result: dict[int, list[AlertDelivery]] = {alert_id: [] for alert_id in ids}
    if ids:
        rows = await session.scalars(
            select(AlertDelivery).where(one_of(session, AlertDelivery.alert_id, ids)).order_by(AlertDelivery.id)
        )
        for row in rows:
            result[row.alert_id].append(row)
    return result


async def start_monitor_run(session: AsyncSession, monitor: str, now: datetime) -> MonitorRun:
    run = MonitorRun(monitor=monitor, started_at=now, assets_checked=0, alerts_opened=0, alerts_resolved=0)
    session.add(run)
    await session.flush()
    return run


async def latest_monitor_runs(session: AsyncSession) -> dict[str, MonitorRun]:
    latest = select(
        MonitorRun.id, func.row_number().over(partition_by=MonitorRun.monitor, order_by=MonitorRun.id.desc()).label("n")
    ).subquery()
    rows = await session.scalars(select(MonitorRun).join(latest, latest.c.id == MonitorRun.id).where(latest.c.n == 1))
    return {run.monitor: run for run in rows}
