"""Recording an execution: one store operation that both GraphQL and OpenLineage ingestion use.

Every derived value is a function of the set of recorded events, never of their arrival order:
a run's state is the event with the highest (state rank, time, state), times are min/max over
events, facets merge by event time, edges carry the min/max times of the runs that contain them,
and an edge retires at the first later COMPLETE run of its job that wrote outputs without it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, exists, func, literal, not_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput
from gateway.orm import RUN_STATES, TERMINAL_STATES, Asset, LineageEdge, Run, RunAsset
from gateway.store.assets import ensure_assets
from gateway.store.jobs import upsert_job
from gateway.store.sql import earlier, insert, later

MAX_DATASETS_PER_EVENT = 2_000
ROWS_PER_STATEMENT = 1_000
_STATE_RANK = {"COMPLETE": 3, "FAIL": 3, "ABORT": 3, "RUNNING": 2, "START": 1, "OTHER": 0}


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


def _validate(record: ExecutionRecord) -> None:
    if record.state not in RUN_STATES:
        raise InvalidInput(f"state {record.state!r} is not one of {', '.join(RUN_STATES)}")
    if not record.run_id or len(record.run_id) > 255:
        raise InvalidInput("run id must be 1..255 characters")
    if len(record.inputs) + len(record.outputs) > MAX_DATASETS_PER_EVENT:
        raise InvalidInput(f"an execution may name at most {MAX_DATASETS_PER_EVENT} inputs and outputs")
    if record.started_at and record.ended_at and record.ended_at < record.started_at:
        raise InvalidInput("endedAt is before startedAt")


def _rank(column: Any) -> ColumnElement[int]:
    return case(_STATE_RANK, value=column, else_=0)


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        yield rows[start : start + ROWS_PER_STATEMENT]


def merge_facets(
    facets: dict[str, Any], times: dict[str, str], incoming: dict[str, Any], moment: datetime
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each facet keeps the value of the newest event that set it (ties: the greater JSON), whatever the order."""
    merged, merged_times = dict(facets), dict(times)
    stamp = moment.isoformat()
    for name, value in incoming.items():
        held = merged_times.get(name)
        if held is None or stamp > held or (stamp == held and _canonical(value) > _canonical(merged.get(name))):
            merged[name] = value
            merged_times[name] = stamp
    return merged, merged_times


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _time_merge(stored: Any, new: Any, placeholder: Any, combine: Any) -> ColumnElement[Any]:
    """A real event's times replace a placeholder's; a placeholder never moves a real run's times."""
    stored_only_placeholder = and_(placeholder.stored, not_(placeholder.new))
    new_only_placeholder = and_(placeholder.new, not_(placeholder.stored))
    return case((stored_only_placeholder, new), (new_only_placeholder, stored), else_=combine(stored, new))


@dataclass(frozen=True)
class _Placeholder:
    stored: Any
    new: Any


async def _upsert_run(
    session: AsyncSession,
    record: ExecutionRecord,
    job_id: int,
    parent_id: int | None,
    now: datetime,
    placeholder: bool = False,
) -> Run:
    started_at = record.started_at or (record.event_time if record.state in ("START", "RUNNING") else None)
    ended_at = record.ended_at or (record.event_time if record.state in TERMINAL_STATES else None)
    statement = insert(session, Run).values(
        run_id=record.run_id,
        job_id=job_id,
        parent_id=parent_id,
        state=record.state,
        started_at=started_at,
        ended_at=ended_at,
        first_event_time=record.event_time,
        event_time=record.event_time,
        state_time=record.event_time,
        facets={},
        facet_times={},
        error_message=record.error_message,
        placeholder=placeholder,
        created_at=now,
        updated_at=now,
    )
    stored, new = Run.__table__.c, statement.excluded
    flags = _Placeholder(stored.placeholder, new.placeholder)
    ranked = tuple_(_rank(new.state), new.state_time, new.state) > tuple_(
        _rank(stored.state), stored.state_time, stored.state
    )
    wins = and_(not_(new.placeholder), or_(stored.placeholder, ranked))
    statement = statement.on_conflict_do_update(
        index_elements=["run_id"],
        set_={
            "state": case((wins, new.state), else_=stored.state),
            "state_time": case(
                (wins, new.state_time),
                (and_(stored.placeholder, new.placeholder), earlier(stored.state_time, new.state_time)),
                else_=stored.state_time,
            ),
            "error_message": case(
                (wins, func.coalesce(new.error_message, stored.error_message)),
                else_=func.coalesce(stored.error_message, new.error_message),
            ),
            "started_at": _time_merge(stored.started_at, new.started_at, flags, earlier),
            "ended_at": _time_merge(stored.ended_at, new.ended_at, flags, later),
            "first_event_time": _time_merge(stored.first_event_time, new.first_event_time, flags, earlier),
            "event_time": _time_merge(stored.event_time, new.event_time, flags, later),
            "parent_id": func.coalesce(stored.parent_id, new.parent_id),
            "placeholder": and_(stored.placeholder, new.placeholder),
            "updated_at": now,
        },
    )
    run_pk = (await session.execute(statement.returning(Run.id))).scalar_one()
    run = await session.get(Run, run_pk, populate_existing=True)
    assert run is not None
    if record.facets:
        facets, times = merge_facets(run.facets, run.facet_times, record.facets, record.event_time)
        if facets != run.facets or times != run.facet_times:
            run.facets, run.facet_times = facets, times
            await session.flush()
    return run


async def _upsert_run_assets(
    session: AsyncSession, run: Run, record: ExecutionRecord, asset_ids: dict[str, int]
) -> None:
    touched: dict[tuple[int, str], dict[str, Any]] = {}
    for role, touches in (("input", record.inputs), ("output", record.outputs)):
        for touch in touches:
            facets = touched.setdefault((asset_ids[touch.key], role), {})
            facets.update(touch.facets)
    rows = [
        {
            "run_id": run.id,
            "asset_id": asset_id,
            "role": role,
            "event_time": record.event_time,
            "facets": {},
            "facet_times": {},
        }
        for (asset_id, role) in sorted(touched)
    ]
    for chunk in _chunks(rows):
        statement = insert(session, RunAsset).values(chunk)
        stored, new = RunAsset.__table__.c, statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "asset_id", "role"],
            set_={"event_time": later(stored.event_time, new.event_time)},
        )
        await session.execute(statement)
    with_facets = {key: facets for key, facets in touched.items() if facets}
    if with_facets:
        stored_rows = await session.scalars(
            select(RunAsset).where(
                RunAsset.run_id == run.id, RunAsset.asset_id.in_(sorted({asset_id for asset_id, _ in with_facets}))
            )
        )
        for row in stored_rows:
            incoming = with_facets.get((row.asset_id, row.role))
            if not incoming:
                continue
            facets, times = merge_facets(row.facets, row.facet_times, incoming, record.event_time)
            if facets != row.facets or times != row.facet_times:
                row.facets, row.facet_times = facets, times
        await session.flush()


async def _upsert_run_edges(session: AsyncSession, run: Run) -> list[int]:
    """Every input of the run feeds every output; returns the run's outputs."""
    rows = await session.execute(select(RunAsset.asset_id, RunAsset.role).where(RunAsset.run_id == run.id))
    inputs: list[int] = []
    outputs: list[int] = []
    for asset_id, role in rows:
        (inputs if role == "input" else outputs).append(asset_id)
    edges = [
        {
            "upstream_id": upstream,
            "downstream_id": downstream,
            "job_id": run.job_id,
            "origin": "run",
            "first_seen_at": run.first_event_time,
            "last_seen_at": run.event_time,
            "last_run_id": run.id,
        }
        for upstream in sorted(inputs)
        for downstream in sorted(outputs)
        if upstream != downstream
    ]
    await _upsert_job_edges(session, edges, observed=True)
    return sorted(outputs)


async def _retire_job_edges(session: AsyncSession, job_id: int) -> None:
    later_complete = (
        select(func.min(Run.state_time))
        .where(
            Run.job_id == LineageEdge.job_id,
            Run.state == "COMPLETE",
            Run.state_time > LineageEdge.last_seen_at,
            # ...that wrote this edge's downstream asset, and without this edge.
            exists()
            .where(
                RunAsset.run_id == Run.id,
                RunAsset.role == "output",
                RunAsset.asset_id == LineageEdge.downstream_id,
            )
            .correlate_except(RunAsset),
        )
        .correlate(LineageEdge)
        .scalar_subquery()
    )
    await session.execute(
        update(LineageEdge)
        .where(
            LineageEdge.job_id == job_id,
            LineageEdge.origin == "run",
            LineageEdge.retired_at.is_distinct_from(later_complete),
        )
        .values(retired_at=later_complete)
        .execution_options(synchronize_session=False)
    )


async def _update_output_assets(
    session: AsyncSession, run: Run, outputs: list[int], was_complete: bool, now: datetime
) -> None:
    if not outputs:
        return
    current = select(Run.id).where(
        Run.id == Asset.last_run_id,
        tuple_(Run.event_time, Run.run_id) < tuple_(literal(run.event_time, Run.event_time.type), literal(run.run_id)),
    )
    await session.execute(
        update(Asset)
        .where(
            Asset.id.in_(outputs),
            (Asset.last_run_id.is_(None)) | (Asset.last_run_id == run.id) | exists(current),
        )
        .values(last_run_id=run.id, last_status=run.state, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if run.state == "COMPLETE":
        await session.execute(
            update(Asset)
            .where(
                Asset.id.in_(outputs),
                (Asset.last_materialized_at.is_(None)) | (Asset.last_materialized_at < run.state_time),
            )
            .values(last_materialized_at=run.state_time, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    elif was_complete:
        # A later terminal event overturned this run's success: the outputs' last success is another run's.
        latest_success = (
            select(func.max(Run.state_time))
            .join(RunAsset, RunAsset.run_id == Run.id)
            .where(RunAsset.asset_id == Asset.id, RunAsset.role == "output", Run.state == "COMPLETE")
            .correlate(Asset)
            .scalar_subquery()
        )
        await session.execute(
            update(Asset)
            .where(Asset.id.in_(outputs))
            .values(last_materialized_at=latest_success, updated_at=now)
            .execution_options(synchronize_session=False)
        )


async def declare_job_edges(
    session: AsyncSession, job_id: int, input_ids: Sequence[int], output_ids: Sequence[int], event_time: datetime
) -> None:
    """Static lineage a job declares (an OpenLineage JobEvent): every input feeds every output."""
    edges = [
        {
            "upstream_id": upstream,
            "downstream_id": downstream,
            "job_id": job_id,
            "origin": "declared",
            "first_seen_at": event_time,
            "last_seen_at": event_time,
        }
        for upstream in sorted(set(input_ids))
        for downstream in sorted(set(output_ids))
        if upstream != downstream
    ]
    await _upsert_job_edges(session, edges, observed=False)


async def _upsert_job_edges(session: AsyncSession, edges: list[dict[str, Any]], observed: bool) -> None:
    """Edges through a job widen their seen interval; an edge a run has shown is observed lineage, whatever
    was declared before, and remembers the run that saw it last."""
    for chunk in _chunks(edges):
        statement = insert(session, LineageEdge).values(chunk)
        stored, new = LineageEdge.__table__.c, statement.excluded
        changes: dict[str, Any] = {
            "first_seen_at": earlier(stored.first_seen_at, new.first_seen_at),
            "last_seen_at": later(stored.last_seen_at, new.last_seen_at),
        }
        if observed:
            changes["origin"] = "run"
            changes["last_run_id"] = case(
                (new.last_seen_at >= stored.last_seen_at, new.last_run_id), else_=stored.last_run_id
            )
        statement = statement.on_conflict_do_update(
            index_elements=["upstream_id", "downstream_id", "job_id"],
            index_where=LineageEdge.job_id.is_not(None),
            set_=changes,
        )
        await session.execute(statement)


async def record_execution(session: AsyncSession, record: ExecutionRecord, now: datetime) -> Run:
    """Record one event of a run: its job, state, inputs, outputs, parent, edges and asset status."""
    _validate(record)
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
        parent = ExecutionRecord(
            job_namespace=record.parent.job_namespace,
            job_name=record.parent.job_name,
            run_id=record.parent.run_id,
            state="OTHER",
            event_time=record.event_time,
        )
        parent_job_id = await upsert_job(session, parent.job_namespace, parent.job_name, now)
        parent_id = (await _upsert_run(session, parent, parent_job_id, None, now, placeholder=True)).id
    keys = [touch.key for touch in (*record.inputs, *record.outputs)]
    asset_ids = await ensure_assets(session, keys, now)
    previous_state = (await session.execute(select(Run.state).where(Run.run_id == record.run_id))).scalar_one_or_none()
    run = await _upsert_run(session, record, job_id, parent_id, now)
    if keys:
        await _upsert_run_assets(session, run, record, asset_ids)
    outputs = await _upsert_run_edges(session, run)
    await _retire_job_edges(session, run.job_id)
    await _update_output_assets(session, run, outputs, previous_state == "COMPLETE", now)
    return run
