"""Shippers in the API: their cursors, lag, failures and parked batches; running one now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from gateway.auth import Scope
from gateway.errors import NotFound
from gateway.store import changes as feed
from schema import authz
from schema.context import Info


@strawberry.type(description="A batch the target kept refusing, set aside so that the feed moved on.")
class ParkedBatch:
    from_cursor: str
    to_cursor: str
    changes: int
    attempts: int
    error: str
    parked_at: datetime


@strawberry.type(description="A configured AssetShipper and how far it has shipped the change feed.")
class Shipper:
    name: str
    kind: str
    interval_seconds: float | None
    cron: str | None
    cursor: str
    lag_changes: int = strawberry.field(description="Changes in the feed after the cursor.")
    lag_seconds: float | None = strawberry.field(description="Age of the oldest change not yet shipped.")
    shipped: int
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failed_runs: int
    parked_batches: list[ParkedBatch]


@strawberry.type
class ShipReport:
    shipped: int = strawberry.field(description="Changes (or, for a full export, entities) shipped.")
    batches: int
    parked: int
    error: str | None
    full: bool


def _covers(info: Info, runner: Any) -> bool:
    """Whether the caller's grants cover everything the shipper exports (its namespace prefix, if any)."""
    prefix = runner.spec.filters.namespace_prefix
    return info.context.principal.grants.covers_prefix(prefix)


@strawberry.type
class ShippingQuery:
    @strawberry.field(description="The configured shippers.")
    async def shippers(self, info: Info) -> list[Shipper]:
        authz.require_scope(info, Scope.ADMIN, "listing shippers")
        runners = {name: runner for name, runner in info.context.shippers.items() if _covers(info, runner)}
        now = info.context.now()
        async with info.context.db.session() as session:
            states = await feed.read_shipper_states(session)
            parked = await feed.read_parked_batches(session, sorted(runners))
            answer = []
            for name in sorted(runners):
                runner = runners[name]
                state = states.get(name)
                cursor = (state.cursor_txid, state.cursor_id) if state else feed.START
                oldest = await feed.oldest_change_after(session, cursor)
                answer.append(
                    Shipper(
                        name=name,
                        kind=runner.shipper.kind,
                        interval_seconds=runner.spec.interval_seconds,
                        cron=runner.spec.cron,
                        cursor=f"{cursor[0]}:{cursor[1]}",
                        lag_changes=await feed.count_changes_after(session, cursor),
                        lag_seconds=(now - oldest).total_seconds() if oldest else None,
                        shipped=state.shipped if state else 0,
                        last_run_at=state.last_run_at if state else None,
                        last_success_at=state.last_success_at if state else None,
                        last_error=state.last_error if state else None,
                        failed_runs=state.failures if state else 0,
                        parked_batches=[
                            ParkedBatch(
                                from_cursor=f"{row.from_txid}:{row.from_id}",
                                to_cursor=f"{row.to_txid}:{row.to_id}",
                                changes=row.changes,
                                attempts=row.attempts,
                                error=row.error,
                                parked_at=row.parked_at,
                            )
                            for row in parked.get(name, [])
                        ],
                    )
                )
        return answer


@strawberry.type
class ShippingMutation:
    @strawberry.mutation(description="Run a shipper now; `full` re-exports everything.")
    async def run_shipper(self, info: Info, name: str, full: bool = False) -> ShipReport:
        authz.require_scope(info, Scope.ADMIN, "runShipper")
        runner = info.context.shippers.get(name)
        if runner is None or not _covers(info, runner):
            known = ", ".join(sorted(info.context.shippers)) or "none"
            raise NotFound(f"no shipper named {name!r}; configured: {known}")
        report = await runner.run(full=full)
        return ShipReport(
            shipped=report.shipped, batches=report.batches, parked=report.parked, error=report.error, full=report.full
        )
