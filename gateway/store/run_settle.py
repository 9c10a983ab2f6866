"""What a run settles once its datasets are stored: the lineage edges from its inputs to its outputs, the
retirement of the edges its job no longer shows, and its outputs' status; for one run, or many at once.

An edge retires at the first later COMPLETE run of its job that wrote its downstream asset without it; jobs'
declared edges (store/declared_edges.py) retire by the same rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import TERMINAL_STATES, Asset, LineageEdge, Run, RunAsset
from gateway.store.run_rows import RecordedRun
from gateway.store.sql import cached, earlier, in_list, insert_for, later, parallel_arrays

_RUNS: Any = Run.__table__
_RUN_ASSETS: Any = RunAsset.__table__
_EDGES: Any = LineageEdge.__table__
_ASSETS: Any = Asset.__table__


def edge_changes(stored: Any, new: Any, observed: bool) -> dict[str, Any]:
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


EDGE_COLUMNS = ("upstream_id", "downstream_id", "job_id", "origin", "first_seen_at", "last_seen_at", "last_run_id")


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
    statement = insert_for(dialect, _EDGES).from_select(list(EDGE_COLUMNS), pairs)
    return statement.on_conflict_do_update(
        index_elements=["upstream_id", "downstream_id", "job_id"],
        index_where=_EDGES.c.job_id.is_not(None),
        set_=edge_changes(_EDGES.c, statement.excluded, observed=True),
    )


async def upsert_run_edges(session: AsyncSession, run: RecordedRun) -> None:
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


def build_retire(dialect: str, by_run: bool) -> Any:
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


async def retire_run_edges(session: AsyncSession, run: RecordedRun) -> None:
    retire = cached(session, ("retire", True), lambda dialect: build_retire(dialect, True))
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


def build_batch_output_assets(dialect: str) -> Any:
    """The status of many assets, each from the runs of a batch that wrote it: `run_pk` the one of them that may
    take its status (the newest by event time; one round each where several share that time), `overturned`
    whether any of them ended failed (its last success is then recomputed, and no success of the batch can be
    later), `completed_at` the latest state time of those that completed. The result is the one of settling
    each run in turn (see `_build_output_assets`). On Postgres one statement over parallel arrays (`run_pks`,
    `asset_ids`, `overturned`, `completed_ats`), on SQLite an executemany of the same update, one asset a row."""
    run, holder = _RUNS.alias("settled"), _RUNS.alias("holder")
    stored = _ASSETS.c
    if dialect == "postgresql":
        arrays = {
            "run_pks": BigInteger(),
            "asset_ids": BigInteger(),
            "overturned": Boolean(),
            "completed_ats": _RUNS.c.state_time.type,
        }
        given = parallel_arrays("given", arrays)
        run_pk, asset_id = given.c.run_pks, given.c.asset_ids
        overturned, completed_at = given.c.overturned, given.c.completed_ats
        # The same ids as a condition on assets itself: the planner then reads those rows by primary key. Joined to
        # the unnest alone it may hash the whole table instead (a sequential scan of 100,000 assets, 50 ms of a
        # 150 ms statement, for 800 of them).
        named = in_list(dialect, stored.id, "asset_ids")
    else:
        run_pk = bindparam("run_pk", type_=_RUNS.c.id.type)
        asset_id = bindparam("asset_id", type_=_ASSETS.c.id.type)
        overturned = bindparam("overturned", type_=Boolean())
        completed_at = bindparam("completed_at", type_=_RUNS.c.state_time.type)
        named = true()
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
    recomputes = and_(overturned, stored.last_materialized_at.is_distinct_from(latest_success))
    materializes = and_(
        completed_at.is_not(None),
        or_(stored.last_materialized_at.is_(None), stored.last_materialized_at < completed_at),
    )
    return (
        update(_ASSETS)
        .where(run.c.id == run_pk, stored.id == asset_id, named, or_(takes_status, materializes, recomputes))
        .values(
            last_run_id=case((takes_status, run.c.id), else_=stored.last_run_id),
            last_status=case((takes_status, run.c.state), else_=stored.last_status),
            last_materialized_at=case(
                (recomputes, latest_success), (materializes, completed_at), else_=stored.last_materialized_at
            ),
            updated_at=bindparam("now", type_=_ASSETS.c.updated_at.type),
        )
    )


def build_outputs_of(dialect: str) -> Any:
    return select(_RUN_ASSETS.c.run_id, _RUN_ASSETS.c.asset_id).where(
        in_list(dialect, _RUN_ASSETS.c.run_id, "run_pks"),
        _RUN_ASSETS.c.role == "output",
    )


async def update_output_assets(session: AsyncSession, run: RecordedRun, now: datetime) -> None:
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


def build_batch_edges(dialect: str) -> Any:
    """The edges of many runs at once, as `_build_run_edges` of each in turn would leave them: `run_pks` in the
    order of the runs' last events. Runs of one job share their edges' rows: each edge takes the earliest first
    time, the latest time, and the run that saw it then (of those, the one settled last), in one statement."""
    upstream, downstream = _RUN_ASSETS.alias("upstream"), _RUN_ASSETS.alias("downstream")
    run = _RUNS.alias("run")
    if dialect == "postgresql":
        fed = (
            func.unnest(bindparam("run_pks", type_=postgresql.ARRAY(BigInteger())))
            .table_valued("run_pk", with_ordinality="position")
            .render_derived(name="fed")
        )
        run_pk, position = fed.c.run_pk, fed.c.position
    else:
        # SQLite has no arrays: the run ids as one JSON array, each with its index.
        fed = func.json_each(bindparam("run_pks_json", type_=String())).table_valued("key", "value").alias("fed")
        run_pk, position = fed.c.value, fed.c.key
    edge = (upstream.c.asset_id, downstream.c.asset_id, run.c.job_id)
    pairs = (
        select(
            upstream.c.asset_id.label("upstream_id"),
            downstream.c.asset_id.label("downstream_id"),
            run.c.job_id,
            func.min(run.c.first_event_time).over(partition_by=edge).label("first_seen_at"),
            func.max(run.c.event_time).over(partition_by=edge).label("last_seen_at"),
            run.c.id.label("last_run_id"),
            func.row_number()
            .over(partition_by=edge, order_by=(run.c.event_time.desc(), position.desc()))
            .label("newest"),
        )
        .select_from(fed)
        .where(
            run.c.id == run_pk,
            upstream.c.run_id == run.c.id,
            upstream.c.role == "input",
            downstream.c.run_id == run.c.id,
            downstream.c.role == "output",
            upstream.c.asset_id != downstream.c.asset_id,
        )
        .subquery("pairs")
    )
    rows = (
        select(
            pairs.c.upstream_id,
            pairs.c.downstream_id,
            pairs.c.job_id,
            bindparam("edge_origin", type_=_EDGES.c.origin.type),
            pairs.c.first_seen_at,
            pairs.c.last_seen_at,
            pairs.c.last_run_id,
        )
        # A WHERE clause (never a JOIN ... ON) keeps SQLite's INSERT ... SELECT ... ON CONFLICT unambiguous.
        .where(pairs.c.newest == 1)
        .order_by(pairs.c.upstream_id, pairs.c.downstream_id, pairs.c.job_id)
    )
    statement = insert_for(dialect, _EDGES).from_select(list(EDGE_COLUMNS), rows)
    return statement.on_conflict_do_update(
        index_elements=["upstream_id", "downstream_id", "job_id"],
        index_where=_EDGES.c.job_id.is_not(None),
        set_=edge_changes(_EDGES.c, statement.excluded, observed=True),
    )


def batch_edges_parameters(dialect: str, run_pks: list[int]) -> dict[str, Any]:
    """The parameters of `build_batch_edges` for runs in the order of their last events."""
    if dialect == "postgresql":
        return {"run_pks": run_pks, "edge_origin": "run"}
    return {"run_pks_json": orjson.dumps(run_pks).decode(), "edge_origin": "run"}


def build_batch_retire(dialect: str) -> Any:
    """`build_retire` over the edges of many runs: those of each run's job into each run's outputs. On Postgres
    from the parallel lists `job_ids` and `asset_ids` (each run's job with each of its outputs, as read already:
    no statistics of run_assets needed), on SQLite from `run_pks`."""
    if dialect == "postgresql":
        pair = parallel_arrays("scope", {"job_ids": BigInteger(), "asset_ids": BigInteger()})
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
