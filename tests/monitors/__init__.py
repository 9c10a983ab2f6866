"""Freshness monitors: policies, the sweep, learned cadence, notifications, configuration.

Helpers the monitor tests share live here; each one is a committed write or a fresh read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gateway.database import Database
from gateway.orm import Alert, AssetHealth, FreshnessPolicy
from gateway.store.freshness import SweepResult, sweep
from gateway.store.policies import PolicySpec, list_policies, upsert_policy
from monitors.deadlines import deadlines
from tests.conftest import NOW
from tests.store.factories import asset, record


async def add_policy(db: Database, name: str, kind: str, now: datetime = NOW, **values: Any) -> FreshnessPolicy:
    async with db.transaction() as session:
        return await upsert_policy(session, PolicySpec(name=name, kind=kind, **values), now)


async def run_sweep(db: Database, now: datetime) -> SweepResult:
    """One sweep at `now` over the stored policies, as the monitor runs it."""
    async with db.transaction() as session:
        policies = await list_policies(session)
        return await sweep(session, policies, deadlines(policies, now), now)


async def materialize(
    db: Database, key: str, when: datetime, run_id: str, state: str = "COMPLETE", inputs: Sequence[str] = ()
) -> None:
    """A run of the job that builds `key` (one job per asset), whose terminal event (`state`) was at `when`."""
    await record(db, f"build {key}", run_id, state, when, inputs=inputs, outputs=[key], now=when)


async def health(db: Database, key: str) -> AssetHealth | None:
    asset_id = (await asset(db, key, include_deleted=True)).id
    async with db.session() as session:
        return await session.get(AssetHealth, asset_id)


async def status(db: Database, key: str) -> str | None:
    found = await health(db, key)
    return found.status if found else None


async def alerts_of(db: Database, key: str) -> list[Alert]:
    """Every alert of the asset, oldest first."""
    asset_id = (await asset(db, key, include_deleted=True)).id
    async with db.session() as session:
        rows = await session.scalars(select(Alert).where(Alert.asset_id == asset_id).order_by(Alert.id))
        return list(rows.all())


async def open_alerts(db: Database, key: str) -> list[Alert]:
    return [alert for alert in await alerts_of(db, key) if alert.resolved_at is None]
