"""Builders the store tests share: each one is a committed write through the public store API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway.database import Database
from gateway.orm import Asset, LineageEdge, Run
from gateway.store.assets import AssetSpec, read_asset_by_key, upsert_asset
from gateway.store.executions import DatasetTouch, ExecutionRecord, ParentRef, record_execution
from tests.conftest import NOW

JOB_NAMESPACE = "airflow"


def at(minutes: float) -> datetime:
    """A moment `minutes` after the fixed test clock."""
    return NOW + timedelta(minutes=minutes)


async def declare(db: Database, key: str, now: datetime = NOW, **values: Any) -> Asset:
    async with db.transaction() as session:
        return await upsert_asset(session, AssetSpec(key=key, **values), now)


async def record(
    db: Database,
    job: str,
    run_id: str,
    state: str,
    event_time: datetime,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    now: datetime = NOW,
    **values: Any,
) -> Run:
    """Record one event of a run of job `airflow/<job>`."""
    execution = ExecutionRecord(
        job_namespace=values.pop("job_namespace", JOB_NAMESPACE),
        job_name=job,
        run_id=run_id,
        state=state,
        event_time=event_time,
        inputs=[DatasetTouch(key) for key in inputs],
        outputs=[DatasetTouch(key) for key in outputs],
        **values,
    )
    async with db.transaction() as session:
        return await record_execution(session, execution, now)


def parent_ref(run_id: str, job: str = "parent") -> ParentRef:
    return ParentRef(run_id=run_id, job_namespace=JOB_NAMESPACE, job_name=job)


async def asset(db: Database, key: str, include_deleted: bool = False) -> Asset:
    async with db.session() as session:
        found = await read_asset_by_key(session, key, include_deleted)
    assert found is not None, f"no asset {key!r}"
    return found


async def asset_ids(db: Database, *keys: str) -> list[int]:
    return [(await asset(db, key, include_deleted=True)).id for key in keys]


async def edges(db: Database) -> list[LineageEdge]:
    """Every stored lineage edge, retired or not."""
    async with db.session() as session:
        return list((await session.scalars(select(LineageEdge).order_by(LineageEdge.id))).all())


async def edge_pairs(db: Database, live_only: bool = True) -> set[tuple[str, str]]:
    """(upstream key, downstream key) of the stored edges."""
    async with db.session() as session:
        keys = dict((await session.execute(select(Asset.id, Asset.key))).all())
        rows = await session.scalars(select(LineageEdge))
        return {
            (keys[edge.upstream_id], keys[edge.downstream_id])
            for edge in rows
            if not live_only or edge.retired_at is None
        }
