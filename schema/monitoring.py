"""Monitoring in the API: alerts, monitors and freshness policies; acknowledging, running, declaring."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

import strawberry
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import declarations
from gateway.auth import Scope
from gateway.database import run_transaction
from gateway.errors import InvalidInput, NotFound
from gateway.orm import Alert as AlertRow
from gateway.orm import FreshnessPolicy as PolicyRow
from gateway.store import alerts as alert_store
from gateway.store.policies import list_policies
from monitors.config import PolicyConfig
from schema import authz
from schema.context import Info
from schema.types.common import Connection, as_utc, connection_edges, page_size
from schema.types.monitoring import Alert, AlertKind, FreshnessPolicy, Monitor, MonitorRun, Severity

# Row ids are 64-bit integers.
MAX_ID = 2**63 - 1


@strawberry.input(description="All given conditions must hold.")
class AlertFilterInput:
    open: bool | None = None
    kinds: list[AlertKind] | None = None
    severities: list[Severity] | None = None
    namespace: str | None = None
    namespace_prefix: str | None = None
    opened_after: datetime | None = None
    opened_before: datetime | None = None

    def to_filter(self) -> alert_store.AlertFilter:
        return alert_store.AlertFilter(
            open=self.open,
            kinds=[kind.value for kind in self.kinds] if self.kinds is not None else None,
            severities=[severity.value for severity in self.severities] if self.severities is not None else None,
            namespace=self.namespace,
            namespace_prefix=self.namespace_prefix,
            opened_after=as_utc(self.opened_after),
            opened_before=as_utc(self.opened_before),
        )


@strawberry.input
class PolicySelectorInput:
    namespace_prefix: str | None = None
    type: str | None = None
    tag: str | None = None
    owner: str | None = None
    key_glob: str | None = None


@strawberry.input(description="One of maxAge (`24h`, `PT90M`), cron (+ timezone) or auto; for an asset or a selector.")
class FreshnessPolicyInput:
    name: str
    asset_key: str | None = None
    selector: PolicySelectorInput | None = None
    max_age: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    auto: bool = False
    tolerance: float | None = None
    min_history: int | None = None
    severity: Severity = Severity.WARN

    def to_config(self) -> PolicyConfig:
        selector = None
        if self.selector is not None:
            selector = {k: v for k, v in vars(self.selector).items() if v is not None}
        severity: Literal["warn", "error"] = "error" if self.severity is Severity.ERROR else "warn"
        try:
            return PolicyConfig(
                name=self.name,
                asset=self.asset_key,
                selector=selector,
                max_age=self.max_age,
                cron=self.cron,
                timezone=self.timezone,
                auto=self.auto,
                tolerance=self.tolerance,
                min_history=self.min_history,
                severity=severity,
            )
        except ValidationError as error:
            detail = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in detail["loc"])
            message = str(detail["msg"]).removeprefix("Value error, ")
            raise InvalidInput(f"{where + ': ' if where else ''}{message}") from None


@strawberry.type
class AlertConnection(Connection[Alert]):
    filter: strawberry.Private[alert_store.AlertFilter]

    @strawberry.field
    async def total_count(self, info: Info) -> int:
        async with info.context.db.session() as session:
            return await alert_store.count_alerts(session, self.filter)


@strawberry.type
class MonitoringQuery:
    @strawberry.field(description="Alerts, newest first.")
    async def alerts(
        self, info: Info, filter: AlertFilterInput | None = None, first: int | None = None, after: str | None = None
    ) -> AlertConnection:
        alert_filter = replace((filter or AlertFilterInput()).to_filter(), grants=info.context.loaders.grants)
        async with info.context.db.session() as session:
            page = await alert_store.list_alerts(session, alert_filter, page_size(info, first), after)
        edges, page_info = connection_edges(page, Alert.from_row)
        return AlertConnection(edges=edges, page_info=page_info, filter=alert_filter)

    @strawberry.field(description="The monitors and their latest runs.")
    async def monitors(self, info: Info) -> list[Monitor]:
        async with info.context.db.session() as session:
            latest = await alert_store.latest_monitor_runs(session)
        settings = info.context.settings
        names = sorted(set(info.context.monitors) | set(latest))
        return [
            Monitor(
                name=name,
                interval_seconds=settings.monitor_interval_seconds,
                scheduled=settings.scheduler_enabled and name in info.context.monitors,
                last_run=MonitorRun.from_row(latest[name]) if name in latest else None,
            )
            for name in names
        ]

    @strawberry.field
    async def freshness_policies(self, info: Info) -> list[FreshnessPolicy]:
        # Selectors name keys and namespaces anywhere: listing them needs a grant on every namespace.
        authz.require_everything(info, Scope.READ, "listing freshness policies")
        async with info.context.db.session() as session:
            return [FreshnessPolicy.from_row(row) for row in await list_policies(session)]


@strawberry.type
class MonitoringMutation:
    @strawberry.mutation(description="Declare (or replace) a freshness policy.")
    async def set_freshness_policy(self, info: Info, input: FreshnessPolicyInput) -> FreshnessPolicy:
        authz.require_everything(info, Scope.ADMIN, "setFreshnessPolicy")
        spec = input.to_config().to_spec("api")
        now = info.context.now()

        async def work(session: AsyncSession) -> PolicyRow:
            return await declarations.declare_policy(session, spec, now)

        return FreshnessPolicy.from_row(await run_transaction(info.context.db, work))

    @strawberry.mutation(description="Remove a freshness policy; true when there was one.")
    async def delete_freshness_policy(self, info: Info, name: str) -> bool:
        authz.require_everything(info, Scope.ADMIN, "deleteFreshnessPolicy")
        now = info.context.now()

        async def work(session: AsyncSession) -> bool:
            return await declarations.remove_policy(session, name, now)

        return await run_transaction(info.context.db, work)

    @strawberry.mutation(description="Mark an alert as seen by someone.")
    async def acknowledge_alert(self, info: Info, id: strawberry.ID, by: str = "anonymous") -> Alert:
        # ASCII digits only ("²" is a digit to Python, not to int()); ids are 64-bit, a longer number names none.
        if not (str(id).isascii() and str(id).isdigit()):
            raise InvalidInput(f"alert id {id!r} is not an alert id")
        if int(id) > MAX_ID:
            raise NotFound(f"no alert with id {id}")
        visible = await info.context.loaders.alert_by_id.load(int(id))
        if visible is None:
            raise NotFound(f"no alert with id {id}")
        asset = await info.context.loaders.asset_by_id.load(visible.asset_id)
        authz.require_write_namespaces(info, [asset.namespace if asset else ""], "acknowledgeAlert")
        now = info.context.now()

        async def work(session: AsyncSession) -> AlertRow:
            return await alert_store.acknowledge_alert(session, int(id), by[:255], now)

        return Alert.from_row(await run_transaction(info.context.db, work))

    @strawberry.mutation(description="Run a monitor now and return its run.")
    async def run_monitor(self, info: Info, name: str = "freshness") -> MonitorRun:
        authz.require_everything(info, Scope.ADMIN, "runMonitor")
        monitor = info.context.monitors.get(name)
        if monitor is None:
            raise NotFound(
                f"no monitor named {name!r}; there are: {', '.join(sorted(info.context.monitors)) or 'none'}"
            )
        return MonitorRun.from_row(await monitor.run())
