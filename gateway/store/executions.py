"""Recording an execution: one store operation that both GraphQL and OpenLineage ingestion use.

Every derived value is a function of the set of recorded events, never of their arrival order:
a run's state is the event with the highest (state rank, time, state), times are min/max over
events, facets merge by event time, edges carry the min/max times of the runs that contain them,
and an edge retires at the first later COMPLETE run of its job that wrote outputs without it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput
from gateway.orm import RUN_STATES, TERMINAL_STATES, Asset, LineageEdge, Run, RunAsset
from gateway.store.assets import ensure_assets
from gateway.store.jobs import upsert_job
from gateway.store.sql import cached, earlier, id_pairs, in_list, insert_for, later

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


_RUNS: Any = Run.__table__
_RUN_ASSETS: Any = RunAsset.__table__
_EDGES: Any = LineageEdge.__table__
_ASSETS: Any = Asset.__table__


@dataclass(frozen=True)
class RecordedRun:
    """A run as the upsert of one of its events left it: what the rest of the recording needs."""

    id: int
    run_id: str
    job_id: int
    state: str
    state_time: datetime
    first_event_time: datetime
    event_time: datetime
    # The run's datasets before this event (stored by earlier ones).
    had_inputs: bool
    had_outputs: bool


def _build_run_upsert(dialect: str, placeholder: bool) -> Any:
    statement = insert_for(dialect, _RUNS)
    stored, new = _RUNS.c, statement.excluded
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
            "updated_at": new.updated_at,
        },
    )
    if placeholder:
        return statement.returning(stored.id, stored.run_id)
    # The datasets earlier events stored come back with the run: a run that has none skips lineage work.
    # RETURNING names the inserted or updated row by its table; SQLAlchemy would not correlate a subquery there.
    dataset = _RUN_ASSETS.alias("dataset")
    datasets = select(dataset.c.id).where(dataset.c.run_id == literal_column(f"{_RUNS.name}.id"))
    return statement.returning(
        stored.id,
        stored.run_id,
        stored.job_id,
        stored.state,
        stored.state_time,
        stored.first_event_time,
        stored.event_time,
        stored.facets,
        stored.facet_times,
        exists(datasets.where(dataset.c.role == "input")),
        exists(datasets.where(dataset.c.role == "output")),
    )


def _build_update_facets(dialect: str, table: Any) -> Any:
    return (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(facets=bindparam("merged_facets"), facet_times=bindparam("merged_times"))
    )


def _run_values(record: ExecutionRecord, job_id: int, parent_id: int | None, now: datetime) -> dict[str, Any]:
    started_at = record.started_at or (record.event_time if record.state in ("START", "RUNNING") else None)
    ended_at = record.ended_at or (record.event_time if record.state in TERMINAL_STATES else None)
    # A new run starts with this event's facets, as merging them into nothing would give.
    stamp = record.event_time.isoformat()
    return {
        "run_id": record.run_id,
        "job_id": job_id,
        "parent_id": parent_id,
        "state": record.state,
        "started_at": started_at,
        "ended_at": ended_at,
        "first_event_time": record.event_time,
        "event_time": record.event_time,
        "state_time": record.event_time,
        "facets": record.facets,
        "facet_times": dict.fromkeys(record.facets, stamp),
        "error_message": record.error_message,
        "placeholder": False,
        "created_at": now,
        "updated_at": now,
    }


def _recorded(record: ExecutionRecord, row: Any, changes: list[dict[str, Any]]) -> RecordedRun:
    """The run an upsert returned; a change to its facets joins `changes` when this event's facets move them."""
    run_pk, run_id, job_id, state, state_time, first_event_time, event_time, facets, times, inputs, outputs = row
    if record.facets:
        merged, merged_times = merge_facets(facets, times, record.facets, record.event_time)
        if merged != facets or merged_times != times:
            changes.append({"row_id": run_pk, "merged_facets": merged, "merged_times": merged_times})
    return RecordedRun(
        run_pk, run_id, job_id, state, state_time, first_event_time, event_time, bool(inputs), bool(outputs)
    )


async def _change_facets(session: AsyncSession, table: Any, changes: list[dict[str, Any]]) -> None:
    if changes:
        change = cached(session, ("facets", table.name), lambda dialect: _build_update_facets(dialect, table))
        await session.execute(change, sorted(changes, key=lambda values: values["row_id"]))


async def _upsert_run(
    session: AsyncSession, record: ExecutionRecord, job_id: int, parent_id: int | None, now: datetime
) -> RecordedRun:
    upsert = cached(session, ("run upsert", False), lambda dialect: _build_run_upsert(dialect, False))
    row = (await session.execute(upsert, _run_values(record, job_id, parent_id, now))).one()
    changes: list[dict[str, Any]] = []
    run = _recorded(record, row, changes)
    await _change_facets(session, _RUNS, changes)
    return run


def _placeholder_values(parent: ParentRef, job_id: int, moment: datetime, now: datetime) -> dict[str, Any]:
    record = ExecutionRecord(
        job_namespace=parent.job_namespace,
        job_name=parent.job_name,
        run_id=parent.run_id,
        state="OTHER",
        event_time=moment,
    )
    return _run_values(record, job_id, None, now) | {"placeholder": True}


async def _upsert_placeholder(
    session: AsyncSession, parent: ParentRef, job_id: int, moment: datetime, now: datetime
) -> int:
    """The parent of a run, known only by reference until its own events arrive."""
    upsert = cached(session, ("run upsert", True), lambda dialect: _build_run_upsert(dialect, True))
    run_pk: int = (await session.execute(upsert, _placeholder_values(parent, job_id, moment, now))).one()[0]
    return run_pk


def _build_run_assets_upsert(dialect: str) -> Any:
    statement = insert_for(dialect, _RUN_ASSETS)
    stored, new = _RUN_ASSETS.c, statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["run_id", "asset_id", "role"],
        set_={"event_time": later(stored.event_time, new.event_time)},
    ).returning(stored.id, stored.run_id, stored.asset_id, stored.role, stored.facets, stored.facet_times)


def _touched(record: ExecutionRecord, asset_ids: Mapping[str, int]) -> dict[tuple[int, str], dict[str, Any]]:
    """(asset id, role) -> the facets the record reports for it."""
    touched: dict[tuple[int, str], dict[str, Any]] = {}
    for role, touches in (("input", record.inputs), ("output", record.outputs)):
        for touch in touches:
            facets = touched.setdefault((asset_ids[touch.key], role), {})
            facets.update(touch.facets)
    return touched


def _run_asset_rows(
    run_pk: int, record: ExecutionRecord, touched: dict[tuple[int, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    stamp = record.event_time.isoformat()
    return [
        {
            "run_id": run_pk,
            "asset_id": asset_id,
            "role": role,
            "event_time": record.event_time,
            # A new row starts with this event's facets, as merging them into nothing would give.
            "facets": facets,
            "facet_times": dict.fromkeys(facets, stamp),
        }
        for (asset_id, role), facets in sorted(touched.items())
    ]


def _merge_run_asset(
    record: ExecutionRecord,
    touched: dict[tuple[int, str], dict[str, Any]],
    row: Any,
    changes: list[dict[str, Any]],
) -> None:
    row_id, _, asset_id, role, facets, times = row
    incoming = touched.get((asset_id, role))
    if incoming:
        merged, merged_times = merge_facets(facets, times, incoming, record.event_time)
        if merged != facets or merged_times != times:
            changes.append({"row_id": row_id, "merged_facets": merged, "merged_times": merged_times})


async def _upsert_run_assets(
    session: AsyncSession, run: RecordedRun, record: ExecutionRecord, asset_ids: Mapping[str, int]
) -> None:
    touched = _touched(record, asset_ids)
    upsert = cached(session, "run assets upsert", _build_run_assets_upsert)
    changes: list[dict[str, Any]] = []
    for chunk in _chunks(_run_asset_rows(run.id, record, touched)):
        for row in await session.execute(upsert, chunk):
            _merge_run_asset(record, touched, row, changes)
    await _change_facets(session, _RUN_ASSETS, changes)


def _edge_changes(stored: Any, new: Any, observed: bool) -> dict[str, Any]:
    """Edges through a job widen their seen interval; an edge a run has shown is observed lineage, whatever
    was declared before, and remembers the run that saw it last."""
    changes: dict[str, Any] = {
        "first_seen_at": earlier(stored.first_seen_at, new.first_seen_at),
        "last_seen_at": later(stored.last_seen_at, new.last_seen_at),
    }
    if observed:
        changes["origin"] = "run"
        changes["last_run_id"] = case(
            (new.last_seen_at >= stored.last_seen_at, new.last_run_id), else_=stored.last_run_id
        )
    return changes


_EDGE_COLUMNS = ("upstream_id", "downstream_id", "job_id", "origin", "first_seen_at", "last_seen_at", "last_run_id")


def _build_run_edges(dialect: str) -> Any:
    """Every input of the run feeds every output: one INSERT ... SELECT over the run's datasets."""
    upstream, downstream = _RUN_ASSETS.alias("upstream"), _RUN_ASSETS.alias("downstream")
    run_pk = bindparam("run_pk", type_=_RUNS.c.id.type)
    pairs = (
        select(
            upstream.c.asset_id,
            downstream.c.asset_id,
            bindparam("edge_job_id", type_=_EDGES.c.job_id.type),
            bindparam("edge_origin", type_=_EDGES.c.origin.type),
            bindparam("run_first_event_time", type_=_EDGES.c.first_seen_at.type),
            bindparam("run_event_time", type_=_EDGES.c.last_seen_at.type),
            run_pk,
        )
        # A WHERE clause (never a JOIN ... ON) keeps SQLite's INSERT ... SELECT ... ON CONFLICT unambiguous.
        .where(
            upstream.c.run_id == run_pk,
            upstream.c.role == "input",
            downstream.c.run_id == run_pk,
            downstream.c.role == "output",
            upstream.c.asset_id != downstream.c.asset_id,
        )
        .order_by(upstream.c.asset_id, downstream.c.asset_id)
    )
    statement = insert_for(dialect, _EDGES).from_select(list(_EDGE_COLUMNS), pairs)
    return statement.on_conflict_do_update(
        index_elements=["upstream_id", "downstream_id", "job_id"],
        index_where=_EDGES.c.job_id.is_not(None),
        set_=_edge_changes(_EDGES.c, statement.excluded, observed=True),
    )


async def _upsert_run_edges(session: AsyncSession, run: RecordedRun) -> None:
    upsert = cached(session, "run edges", _build_run_edges)
    await session.execute(
        upsert,
        {
            "run_pk": run.id,
            "edge_job_id": run.job_id,
            "edge_origin": "run",
            "run_first_event_time": run.first_event_time,
            "run_event_time": run.event_time,
        },
    )


def _later_complete() -> Any:
    """When an edge retires: at the first later COMPLETE run of its job that wrote its downstream asset."""
    return (
        select(func.min(_RUNS.c.state_time))
        .where(
            _RUNS.c.job_id == _EDGES.c.job_id,
            _RUNS.c.state == "COMPLETE",
            _RUNS.c.state_time > _EDGES.c.last_seen_at,
            # ...that wrote this edge's downstream asset, and without this edge.
            exists()
            .where(
                _RUN_ASSETS.c.run_id == _RUNS.c.id,
                _RUN_ASSETS.c.role == "output",
                _RUN_ASSETS.c.asset_id == _EDGES.c.downstream_id,
            )
            .correlate_except(_RUN_ASSETS),
        )
        .correlate(_EDGES)
        .scalar_subquery()
    )


def _build_retire(dialect: str, by_run: bool) -> Any:
    """An edge retires at the first later COMPLETE run of its job that wrote its downstream asset without it.

    Only edges into the outputs of what was just recorded can change: those of a run (`by_run`), or the declared
    outputs of a job. Every other edge of the job kept its inputs since the job's last event, and its value."""
    later_complete = _later_complete()
    if by_run:
        outputs = select(_RUN_ASSETS.c.asset_id).where(
            _RUN_ASSETS.c.run_id == bindparam("run_pk", type_=_RUNS.c.id.type), _RUN_ASSETS.c.role == "output"
        )
        into_outputs = _EDGES.c.downstream_id.in_(outputs)
    else:
        into_outputs = in_list(dialect, _EDGES.c.downstream_id, "downstream_ids")
    return (
        update(_EDGES)
        .where(
            _EDGES.c.job_id == bindparam("edge_job_id", type_=_EDGES.c.job_id.type),
            _EDGES.c.origin == "run",
            into_outputs,
            _EDGES.c.retired_at.is_distinct_from(later_complete),
        )
        .values(retired_at=later_complete)
    )


async def _retire_run_edges(session: AsyncSession, run: RecordedRun) -> None:
    retire = cached(session, ("retire", True), lambda dialect: _build_retire(dialect, True))
    await session.execute(retire, {"run_pk": run.id, "edge_job_id": run.job_id})


def _build_output_assets(dialect: str, outcome: str) -> Any:
    """The status of a run's outputs, in one UPDATE: the newest run (by event time, then run id) sets their
    status; a COMPLETE run their last materialization; a failed one, which may have been COMPLETE before (a later
    terminal event overturned it), leaves them the last success of another run."""
    run_pk = bindparam("run_pk", type_=_RUNS.c.id.type)
    now = bindparam("now", type_=_ASSETS.c.updated_at.type)
    state_time = bindparam("state_time", type_=_RUNS.c.state_time.type)
    stored = _ASSETS.c
    outputs = select(_RUN_ASSETS.c.asset_id).where(_RUN_ASSETS.c.run_id == run_pk, _RUN_ASSETS.c.role == "output")
    older = select(_RUNS.c.id).where(
        _RUNS.c.id == stored.last_run_id,
        tuple_(_RUNS.c.event_time, _RUNS.c.run_id)
        < tuple_(
            bindparam("event_time", type_=_RUNS.c.event_time.type), bindparam("run_id", type_=_RUNS.c.run_id.type)
        ),
    )
    takes_status = or_(stored.last_run_id.is_(None), stored.last_run_id == run_pk, exists(older))
    values: dict[str, Any] = {
        "last_run_id": case((takes_status, run_pk), else_=stored.last_run_id),
        "last_status": case((takes_status, bindparam("state", type_=_RUNS.c.state.type)), else_=stored.last_status),
        "updated_at": now,
    }
    changes = takes_status
    if outcome == "COMPLETE":
        materializes = or_(stored.last_materialized_at.is_(None), stored.last_materialized_at < state_time)
        values["last_materialized_at"] = case((materializes, state_time), else_=stored.last_materialized_at)
        changes = or_(takes_status, materializes)
    elif outcome == "FAILED":
        # Equal to the stored time unless this run was the COMPLETE one it came from.
        latest_success = (
            select(func.max(_RUNS.c.state_time))
            .select_from(_RUN_ASSETS.join(_RUNS, _RUN_ASSETS.c.run_id == _RUNS.c.id))
            .where(_RUN_ASSETS.c.asset_id == stored.id, _RUN_ASSETS.c.role == "output", _RUNS.c.state == "COMPLETE")
            .correlate(_ASSETS)
            .scalar_subquery()
        )
        recomputes = stored.last_materialized_at.is_distinct_from(latest_success)
        values["last_materialized_at"] = case((recomputes, latest_success), else_=stored.last_materialized_at)
        changes = or_(takes_status, recomputes)
    return update(_ASSETS).where(stored.id.in_(outputs), changes).values(values)


def _build_batch_output_assets(dialect: str) -> Any:
    """`_build_output_assets` for many runs at once, each in its own state (no asset is an output of two). The
    parameters `run_pks` and `asset_ids` are parallel lists: each run with each of its outputs."""
    run, holder = _RUNS.alias("settled"), _RUNS.alias("holder")
    stored = _ASSETS.c
    if dialect == "postgresql":
        # The pairs are known: read from two arrays, the plan needs no statistics of run_assets (a table just
        # loaded may have none, and Postgres then chose to read all of it).
        pair = id_pairs("run_pks", "asset_ids", "pair")
        outputs = [run.c.id == pair.c.run_pks, stored.id == pair.c.asset_ids]
    else:
        output = _RUN_ASSETS.alias("settled_output")
        outputs = [
            in_list(dialect, run.c.id, "run_pks"),
            output.c.run_id == run.c.id,
            output.c.role == "output",
            output.c.asset_id == stored.id,
        ]
    older = select(holder.c.id).where(
        holder.c.id == stored.last_run_id,
        tuple_(holder.c.event_time, holder.c.run_id) < tuple_(run.c.event_time, run.c.run_id),
    )
    takes_status = or_(stored.last_run_id.is_(None), stored.last_run_id == run.c.id, exists(older))
    success, success_output = _RUNS.alias("success"), _RUN_ASSETS.alias("success_output")
    latest_success = (
        select(func.max(success.c.state_time))
        .select_from(success_output.join(success, success_output.c.run_id == success.c.id))
        .where(
            success_output.c.asset_id == stored.id,
            success_output.c.role == "output",
            success.c.state == "COMPLETE",
        )
        .scalar_subquery()
    )
    materializes = and_(
        run.c.state == "COMPLETE",
        or_(stored.last_materialized_at.is_(None), stored.last_materialized_at < run.c.state_time),
    )
    recomputes = and_(
        run.c.state.in_([state for state in TERMINAL_STATES if state != "COMPLETE"]),
        stored.last_materialized_at.is_distinct_from(latest_success),
    )
    return (
        update(_ASSETS)
        .where(*outputs, or_(takes_status, materializes, recomputes))
        .values(
            last_run_id=case((takes_status, run.c.id), else_=stored.last_run_id),
            last_status=case((takes_status, run.c.state), else_=stored.last_status),
            last_materialized_at=case(
                (materializes, run.c.state_time), (recomputes, latest_success), else_=stored.last_materialized_at
            ),
            updated_at=bindparam("now", type_=_ASSETS.c.updated_at.type),
        )
    )


def _build_outputs_of(dialect: str) -> Any:
    return select(_RUN_ASSETS.c.run_id, _RUN_ASSETS.c.asset_id).where(
        in_list(dialect, _RUN_ASSETS.c.run_id, "run_pks"),
        _RUN_ASSETS.c.role == "output",
    )


async def _update_output_assets(session: AsyncSession, run: RecordedRun, now: datetime) -> None:
    outcome = run.state if run.state == "COMPLETE" else "FAILED" if run.state in TERMINAL_STATES else "OTHER"
    change = cached(session, ("output assets", outcome), lambda dialect: _build_output_assets(dialect, outcome))
    await session.execute(
        change,
        {
            "run_pk": run.id,
            "run_id": run.run_id,
            "event_time": run.event_time,
            "state": run.state,
            "state_time": run.state_time,
            "now": now,
        },
    )


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
            await _upsert_run_edges(session, run)
        await _retire_run_edges(session, run)
        await _update_output_assets(session, run, now)
    return run


def _rounds(keys: Sequence[Any]) -> list[list[int]]:
    """The positions of `keys` in rounds, in order: the n-th occurrence of each key in the n-th round.

    One statement takes at most one row of a run (Postgres updates a row once per statement); rows of one run
    keep their order across rounds."""
    seen: dict[Any, int] = {}
    rounds: list[list[int]] = []
    for position, key in enumerate(keys):
        occurrence = seen[key] = seen.get(key, -1) + 1
        if len(rounds) <= occurrence:
            rounds.append([])
        rounds[occurrence].append(position)
    return rounds


def _build_batch_edges(dialect: str) -> Any:
    """`_build_run_edges` for many runs at once (each of another job: their edges are other rows)."""
    upstream, downstream = _RUN_ASSETS.alias("upstream"), _RUN_ASSETS.alias("downstream")
    run = _RUNS.alias("run")
    pairs = (
        select(
            upstream.c.asset_id,
            downstream.c.asset_id,
            run.c.job_id,
            bindparam("edge_origin", type_=_EDGES.c.origin.type),
            run.c.first_event_time,
            run.c.event_time,
            run.c.id,
        )
        .where(
            in_list(dialect, run.c.id, "run_pks"),
            upstream.c.run_id == run.c.id,
            upstream.c.role == "input",
            downstream.c.run_id == run.c.id,
            downstream.c.role == "output",
            upstream.c.asset_id != downstream.c.asset_id,
        )
        .order_by(upstream.c.asset_id, downstream.c.asset_id, run.c.job_id)
    )
    statement = insert_for(dialect, _EDGES).from_select(list(_EDGE_COLUMNS), pairs)
    return statement.on_conflict_do_update(
        index_elements=["upstream_id", "downstream_id", "job_id"],
        index_where=_EDGES.c.job_id.is_not(None),
        set_=_edge_changes(_EDGES.c, statement.excluded, observed=True),
    )


def _build_batch_retire(dialect: str) -> Any:
    """`_build_retire` over the edges of many runs: those of each run's job into each run's outputs. On Postgres
    from the parallel lists `job_ids` and `asset_ids` (each run's job with each of its outputs, as read already:
    no statistics of run_assets needed), on SQLite from `run_pks`."""
    if dialect == "postgresql":
        pair = id_pairs("job_ids", "asset_ids", "scope")
        scope = [_EDGES.c.job_id == pair.c.job_ids, _EDGES.c.downstream_id == pair.c.asset_ids]
    else:
        run, output = _RUNS.alias("scope_run"), _RUN_ASSETS.alias("scope_output")
        outputs_of_runs = exists().where(
            in_list(dialect, run.c.id, "run_pks"),
            output.c.run_id == run.c.id,
            output.c.role == "output",
            output.c.asset_id == _EDGES.c.downstream_id,
            run.c.job_id == _EDGES.c.job_id,
        )
        scope = [outputs_of_runs.correlate(_EDGES)]
    later_complete = _later_complete()
    return (
        update(_EDGES)
        .where(_EDGES.c.origin == "run", *scope, _EDGES.c.retired_at.is_distinct_from(later_complete))
        .values(retired_at=later_complete)
    )


@dataclass(frozen=True)
class _Pending:
    record: ExecutionRecord
    asset_ids: Mapping[str, int]
    job_id: int
    parent_job_id: int | None


class ExecutionBatch:
    """The executions of many events, recorded as `apply_execution` records them one after the other.

    Runs are upserted, then their datasets, in rounds of one event per run (a run's events keep their order).
    Then each run settles once, from its state after its last event: its edges (in rounds of one run per job,
    in the order of the runs' last events), the retirement of the edges into its outputs, its outputs' status.
    Settling earlier would change nothing that settling then does not set again: each of them follows from the
    run and its datasets as they are then.
    """

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def add(self, record: ExecutionRecord, asset_ids: Mapping[str, int], job_ids: Mapping[tuple[str, str], int]) -> int:
        """Plan a validated record whose asset ids (by dataset key) and job ids are known; its position."""
        parent = record.parent
        parent_job_id = None
        if parent is not None and parent.run_id != record.run_id:
            parent_job_id = job_ids[parent.job_namespace, parent.job_name]
        job_id = job_ids[record.job_namespace, record.job_name]
        self._pending.append(_Pending(record, asset_ids, job_id, parent_job_id))
        return len(self._pending) - 1

    async def apply(self, session: AsyncSession, now: datetime) -> list[RecordedRun]:
        """Record every planned execution; the run each one left, by position."""
        pending = self._pending
        ids: dict[str, int] = {}
        by_position: dict[int, RecordedRun] = {}
        placeholders = cached(session, ("run upsert", True), lambda dialect: _build_run_upsert(dialect, True))
        upsert = cached(session, ("run upsert", False), lambda dialect: _build_run_upsert(dialect, False))
        for parents, positions in self._run_rounds(now):
            # Rows in run id order: concurrent transactions lock the runs they share in the same order.
            if parents:
                parents.sort(key=lambda values: str(values["run_id"]))
                for run_pk, run_id in await session.execute(placeholders, parents if len(parents) > 1 else parents[0]):
                    ids[run_id] = run_pk
            if not positions:
                continue
            positions.sort(key=lambda position: pending[position].record.run_id)
            rows = []
            for position in positions:
                item = pending[position]
                parent = item.record.parent
                parent_id = ids[parent.run_id] if parent is not None and item.parent_job_id is not None else None
                rows.append(_run_values(item.record, item.job_id, parent_id, now))
            returned = {row[1]: row for row in await session.execute(upsert, rows if len(rows) > 1 else rows[0])}
            changes: list[dict[str, Any]] = []
            for position in positions:
                record = pending[position].record
                run = by_position[position] = _recorded(record, returned[record.run_id], changes)
                ids[run.run_id] = run.id
            await _change_facets(session, _RUNS, changes)
        runs = [by_position[position] for position in range(len(pending))]
        await self._upsert_datasets(session, runs)
        await self._settle(session, runs, now)
        return runs

    def _run_rounds(self, now: datetime) -> list[tuple[list[dict[str, Any]], list[int]]]:
        """Rounds of (parents to upsert as placeholders, positions of the events whose runs to upsert next).

        Each run's upserts keep their order, and a run comes after the parent it names; a run's first upsert
        creates it, with its job (a placeholder's, should a child name it first). Placeholders of one run before
        its own first event merge into one (their times are a minimum and a maximum); after it they change
        nothing (a placeholder never moves a real run), and are left out."""
        rounds: list[tuple[list[dict[str, Any]], list[int]]] = []
        last: dict[str, int] = {}
        first: dict[str, int] = {}
        real: set[str] = set()
        placeholders: dict[str, dict[str, Any]] = {}

        def place(run_id: str, earliest: int) -> int:
            number = max(last.get(run_id, -1) + 1, earliest)
            while len(rounds) <= number:
                rounds.append(([], []))
            last[run_id] = number
            first.setdefault(run_id, number)
            return number

        for position, item in enumerate(self._pending):
            record, parent = item.record, item.record.parent
            named = parent is not None and item.parent_job_id is not None
            if parent is not None and item.parent_job_id is not None and parent.run_id not in real:
                merged = placeholders.get(parent.run_id)
                if merged is None:
                    values = _placeholder_values(parent, item.parent_job_id, record.event_time, now)
                    placeholders[parent.run_id] = values
                    rounds[place(parent.run_id, 0)][0].append(values)
                else:
                    merged["first_event_time"] = merged["state_time"] = min(merged["state_time"], record.event_time)
                    merged["event_time"] = max(merged["event_time"], record.event_time)
            earliest = first[parent.run_id] + 1 if parent is not None and named else 0
            rounds[place(record.run_id, earliest)][1].append(position)
            real.add(record.run_id)
        return rounds

    async def _upsert_datasets(self, session: AsyncSession, runs: list[RecordedRun]) -> None:
        touching = [
            position for position, item in enumerate(self._pending) if item.record.inputs or item.record.outputs
        ]
        upsert = cached(session, "run assets upsert", _build_run_assets_upsert)
        for positions in _rounds([runs[position].id for position in touching]):
            touched = {}
            rows: list[dict[str, Any]] = []
            for position in (touching[index] for index in positions):
                item, run = self._pending[position], runs[position]
                touched[run.id] = (item.record, _touched(item.record, item.asset_ids))
                rows += _run_asset_rows(run.id, item.record, touched[run.id][1])
            rows.sort(key=lambda values: (values["run_id"], values["asset_id"], values["role"]))
            changes: list[dict[str, Any]] = []
            for chunk in _chunks(rows):
                for row in await session.execute(upsert, chunk if len(chunk) > 1 else chunk[0]):
                    record, facets = touched[row[1]]
                    _merge_run_asset(record, facets, row, changes)
            await _change_facets(session, _RUN_ASSETS, changes)

    async def _settle(self, session: AsyncSession, runs: list[RecordedRun], now: datetime) -> None:
        last: dict[int, int] = {}
        reading: set[int] = set()
        writing: set[int] = set()
        for position, (item, run) in enumerate(zip(self._pending, runs, strict=True)):
            last[run.id] = position
            if run.had_inputs or item.record.inputs:
                reading.add(run.id)
            if run.had_outputs or item.record.outputs:
                writing.add(run.id)
        settling = [runs[position] for position in sorted(last.values()) if runs[position].id in writing]
        if not settling:
            return
        feeding = [run for run in settling if run.id in reading]
        edges = cached(session, "batch edges", _build_batch_edges)
        for positions in _rounds([run.job_id for run in feeding]):
            await session.execute(
                edges, {"run_pks": [feeding[position].id for position in positions], "edge_origin": "run"}
            )
        outputs: dict[int, list[int]] = {run.id: [] for run in settling}
        found = await session.execute(cached(session, "outputs of", _build_outputs_of), {"run_pks": list(outputs)})
        for run_pk, asset_id in found:
            outputs[run_pk].append(asset_id)
        scope = sorted({(run.job_id, asset_id) for run in settling for asset_id in outputs[run.id]})
        retire = cached(session, "batch retire", _build_batch_retire)
        await session.execute(
            retire,
            {
                "run_pks": [run.id for run in settling],
                "job_ids": [job_id for job_id, _ in scope],
                "asset_ids": [asset_id for _, asset_id in scope],
            },
        )
        # Runs with outputs in common set their status in the order of their last events; others at once.
        rounds: list[list[int]] = []
        last_round: dict[int, int] = {}
        for run in settling:
            number = max(
                (last_round[asset_id] + 1 for asset_id in outputs[run.id] if asset_id in last_round), default=0
            )
            for asset_id in outputs[run.id]:
                last_round[asset_id] = number
            while len(rounds) <= number:
                rounds.append([])
            rounds[number].append(run.id)
        change = cached(session, "batch output assets", _build_batch_output_assets)
        for run_pks in rounds:
            pairs = [(run_pk, asset_id) for run_pk in run_pks for asset_id in outputs[run_pk]]
            await session.execute(
                change,
                {"run_pks": [pair[0] for pair in pairs], "asset_ids": [pair[1] for pair in pairs], "now": now},
            )
