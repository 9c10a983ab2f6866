"""Freshness, alerts and monitors as the API shows them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from gateway import orm
from schema.context import Info
from schema.types.common import as_json

if TYPE_CHECKING:
    from schema.types.asset import Asset

AssetRef = Annotated["Asset", strawberry.lazy("schema.types.asset")]


@strawberry.enum(description="What the latest sweep concluded about an asset.")
class AssetStatus(enum.Enum):
    FRESH = "FRESH"
    STALE = "STALE"
    AT_RISK = "AT_RISK"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


@strawberry.enum
class PolicyKind(enum.Enum):
    MAX_AGE = "max_age"
    CRON = "cron"
    AUTO = "auto"


@strawberry.enum
class Severity(enum.Enum):
    WARN = "warn"
    ERROR = "error"


@strawberry.enum
class AlertKind(enum.Enum):
    STALE = "stale"
    FAILED = "failed"


@strawberry.type(description="How fresh assets must be, for one asset or every asset a selector matches.")
class FreshnessPolicy:
    row: strawberry.Private[orm.FreshnessPolicy]
    name: str
    kind: PolicyKind
    severity: Severity
    max_age_seconds: int | None
    cron: str | None
    timezone: str
    tolerance: float | None
    min_history: int | None
    selector: JSON | None
    source: str

    @classmethod
    def from_row(cls, row: orm.FreshnessPolicy) -> FreshnessPolicy:
        return cls(
            row=row,
            name=row.name,
            kind=PolicyKind(row.kind),
            severity=Severity(row.severity),
            max_age_seconds=row.max_age_seconds,
            cron=row.cron,
            timezone=row.timezone,
            tolerance=row.tolerance,
            min_history=row.min_history,
            selector=as_json(row.selector) if row.selector else None,
            source=row.source,
        )

    @strawberry.field(description="The asset the policy is attached to, when it is not a selector policy.")
    async def asset(self, info: Info) -> AssetRef | None:
        from schema.types.asset import Asset

        if self.row.asset_id is None:
            return None
        row = await info.context.loaders.asset_by_id.load(self.row.asset_id)
        return None if row is None else Asset.from_row(row)


@strawberry.type(description="An asset's freshness: the policy that governs it and what it implies now.")
class Freshness:
    policy: FreshnessPolicy | None
    status: AssetStatus
    last_updated: datetime | None
    deadline: datetime | None = strawberry.field(description="When the asset is (or was) due by its policy.")
    stale_since: datetime | None
    expected_interval_seconds: float | None = strawberry.field(description="Learned from history (auto policies).")
    reason: str
    cause_key: str | None = strawberry.field(description="For AT_RISK: the stale or failed upstream asset.")


@strawberry.type(description="One notification of an alert to one notifier.")
class AlertDelivery:
    notifier: str
    event: str
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


@strawberry.type
class Alert:
    row: strawberry.Private[orm.Alert]
    id: strawberry.ID
    kind: AlertKind
    severity: Severity
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    details: JSON

    @classmethod
    def from_row(cls, row: orm.Alert) -> Alert:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            kind=AlertKind(row.kind),
            severity=Severity(row.severity),
            opened_at=row.opened_at,
            resolved_at=row.resolved_at,
            acknowledged_at=row.acknowledged_at,
            acknowledged_by=row.acknowledged_by,
            details=as_json(row.details),
        )

    @strawberry.field
    def open(self) -> bool:
        return self.resolved_at is None

    @strawberry.field
    async def asset(self, info: Info) -> AssetRef:
        from schema.types.asset import Asset

        row = await info.context.loaders.asset_by_id.load(self.row.asset_id)
        assert row is not None, "alerts reference assets by foreign key"
        return Asset.from_row(row)

    @strawberry.field(description="Where and whether this alert was notified.")
    async def deliveries(self, info: Info) -> list[AlertDelivery]:
        rows = await info.context.loaders.deliveries_by_alert.load(self.row.id)
        return [
            AlertDelivery(
                notifier=row.notifier,
                event=row.event,
                attempts=row.attempts,
                delivered_at=row.delivered_at,
                last_error=row.last_error,
            )
            for row in rows
        ]


@strawberry.type(description="One run of a monitor.")
class MonitorRun:
    started_at: datetime
    finished_at: datetime | None
    assets_checked: int
    alerts_opened: int
    alerts_resolved: int
    error: str | None

    @classmethod
    def from_row(cls, row: orm.MonitorRun) -> MonitorRun:
        return cls(
            started_at=row.started_at,
            finished_at=row.finished_at,
            assets_checked=row.assets_checked,
            alerts_opened=row.alerts_opened,
            alerts_resolved=row.alerts_resolved,
            error=row.error,
        )

    @strawberry.field
    def duration_seconds(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()


@strawberry.type
class Monitor:
    name: str
    interval_seconds: float
    scheduled: bool
    last_run: MonitorRun | None
