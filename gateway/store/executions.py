"""Recording an execution: one store operation that both GraphQL and OpenLineage ingestion use.

Every derived value is a function of the set of recorded events, never of their arrival order:
a run's state is the event with the highest (state rank, time, state), times are min/max over
events, facets merge by event time, edges carry the min/max times of the runs that contain them,
and an edge retires at the first later COMPLETE run of its job that wrote outputs without it.

Here: the records and the recording of one event. The rows it writes are built in store/run_rows.py, what a run
settles (edges, their retirement, its outputs' status) in store/run_settle.py; store/execution_batch.py records
many events at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput
from gateway.orm import RUN_STATES, Run, RunAsset
from gateway.store.assets import ensure_assets
from gateway.store.jobs import upsert_job
from gateway.store.run_rows import (
    RecordedRun,
    build_run_assets_upsert,
    build_run_upsert,
    change_facets,
    chunks,
    merge_run_asset,
    recorded_run,
    run_asset_rows,
    run_values,
    touched_datasets,
)
from gateway.store.run_settle import retire_run_edges, update_output_assets, upsert_run_edges
from gateway.store.sql import cached

MAX_DATASETS_PER_EVENT = 2_000

_RUNS: Any = Run.__table__
_RUN_ASSETS: Any = RunAsset.__table__


@dataclass(frozen=True)
class DatasetTouch:
    """An asset read or written by a run, with the facets the producer reported for it."""

    key: str
    facets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParentRef:
    run_id: str
    job_namespace: str
    job_name: str


@dataclass(frozen=True)
class ExecutionRecord:
    job_namespace: str
    job_name: str
    run_id: str
    state: str
    event_time: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    inputs: Sequence[DatasetTouch] = ()
    outputs: Sequence[DatasetTouch] = ()
    parent: ParentRef | None = None
    facets: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    job_type: str | None = None
    job_description: str | None = None


def validate_execution(record: ExecutionRecord) -> None:
    """Refuse a record `record_execution` would refuse, before anything is written."""
    if record.state not in RUN_STATES:
        raise InvalidInput(f"state {record.state!r} is not one of {', '.join(RUN_STATES)}")
    if not record.run_id or len(record.run_id) > 255:
        raise InvalidInput("run id must be 1..255 characters")
    if len(record.inputs) + len(record.outputs) > MAX_DATASETS_PER_EVENT:
        raise InvalidInput(f"an execution may name at most {MAX_DATASETS_PER_EVENT} inputs and outputs")
    if record.started_at and record.ended_at and record.ended_at < record.started_at:
        raise InvalidInput("endedAt is before startedAt")


def placeholder_values(parent: ParentRef, job_id: int, moment: datetime, now: datetime) -> dict[str, Any]:
    """The row of a parent run named by a child at `moment`, before (or without) any event of its own."""
    record = ExecutionRecord(
        job_namespace=parent.job_namespace,
        job_name=parent.job_name,
        run_id=parent.run_id,
        state="OTHER",
        event_time=moment,
    )
    return run_values(record, job_id, None, now) | {"placeholder": True}


async def _upsert_run(
    session: AsyncSession, record: ExecutionRecord, job_id: int, parent_id: int | None, now: datetime
) -> RecordedRun:
    upsert = cached(session, ("run upsert", False), lambda dialect: build_run_upsert(dialect, False))
    row = (await session.execute(upsert, run_values(record, job_id, parent_id, now))).one()
    changes: list[dict[str, Any]] = []
    run = recorded_run(record, row, changes)
    await change_facets(session, _RUNS, changes)
    return run


async def _upsert_placeholder(
    session: AsyncSession, parent: ParentRef, job_id: int, moment: datetime, now: datetime
) -> int:
    """The parent of a run, known only by reference until its own events arrive."""
    upsert = cached(session, ("run upsert", True), lambda dialect: build_run_upsert(dialect, True))
    run_pk: int = (await session.execute(upsert, placeholder_values(parent, job_id, moment, now))).one()[0]
    return run_pk


async def _upsert_run_assets(
    session: AsyncSession, run: RecordedRun, record: ExecutionRecord, asset_ids: Mapping[str, int]
) -> None:
    touched = touched_datasets(record, asset_ids)
    upsert = cached(session, "run assets upsert", build_run_assets_upsert)
    changes: list[dict[str, Any]] = []
    for chunk in chunks(run_asset_rows(run.id, record, touched)):
        for row in await session.execute(upsert, chunk):
            merge_run_asset(record, touched, row, changes)
    await change_facets(session, _RUN_ASSETS, changes)


async def record_execution(session: AsyncSession, record: ExecutionRecord, now: datetime) -> Run:
    """Record one event of a run: its job, state, inputs, outputs, parent, edges and asset status."""
    recorded = await apply_execution(session, record, now)
    run = await session.get(Run, recorded.id, populate_existing=True)
    assert run is not None
    return run


async def apply_execution(
    session: AsyncSession,
    record: ExecutionRecord,
    now: datetime,
    asset_ids: Mapping[str, int] | None = None,
    job_ids: Mapping[tuple[str, str], int] | None = None,
) -> RecordedRun:
    """`record_execution` without loading the run. `asset_ids` may give the ids of the record's dataset keys
    (asset keys, not aliases); `job_ids` those of jobs this transaction has upserted with the record's values."""
    validate_execution(record)
    job_id = job_ids.get((record.job_namespace, record.job_name)) if job_ids else None
    if job_id is None:
        job_id = await upsert_job(
            session,
            record.job_namespace,
            record.job_name,
            now,
            record.job_type,
            record.job_description,
            described_at=record.event_time,
        )
    parent_id = None
    if record.parent is not None and record.parent.run_id != record.run_id:
        parent = record.parent
        parent_job_id = job_ids.get((parent.job_namespace, parent.job_name)) if job_ids else None
        if parent_job_id is None:
            parent_job_id = await upsert_job(session, parent.job_namespace, parent.job_name, now)
        parent_id = await _upsert_placeholder(session, parent, parent_job_id, record.event_time, now)
    keys = [touch.key for touch in (*record.inputs, *record.outputs)]
    if keys and (asset_ids is None or any(key not in asset_ids for key in keys)):
        asset_ids = await ensure_assets(session, keys, now)
    run = await _upsert_run(session, record, job_id, parent_id, now)
    if keys:
        assert asset_ids is not None
        await _upsert_run_assets(session, run, record, asset_ids)
    if run.had_outputs or record.outputs:
        if run.had_inputs or record.inputs:
            await upsert_run_edges(session, run)
        await retire_run_edges(session, run)
        await update_output_assets(session, run, now)
    return run
