"""The rows of runs and of their datasets: how an event's values merge into what earlier events stored.

Statement builders and row values shared by the recording of one event (store/executions.py) and of many at once
(store/execution_batch.py). Each merge is a function of the set of events, whatever their order (see there).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

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

from gateway.orm import TERMINAL_STATES, Run, RunAsset
from gateway.store.sql import cached, earlier, insert_for, later

if TYPE_CHECKING:
    from gateway.store.executions import ExecutionRecord

ROWS_PER_STATEMENT = 1_000
_STATE_RANK = {"COMPLETE": 3, "FAIL": 3, "ABORT": 3, "RUNNING": 2, "START": 1, "OTHER": 0}
_RUNS: Any = Run.__table__
_RUN_ASSETS: Any = RunAsset.__table__


def _rank(column: Any) -> ColumnElement[int]:
    return case(_STATE_RANK, value=column, else_=0)


def chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
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


# The columns of `run_values`, in order.
RUN_COLUMNS = (
    "run_id",
    "job_id",
    "parent_id",
    "state",
    "started_at",
    "ended_at",
    "first_event_time",
    "event_time",
    "state_time",
    "facets",
    "facet_times",
    "error_message",
    "placeholder",
    "created_at",
    "updated_at",
)
# The columns of `run_asset_rows`, in order.
RUN_ASSET_COLUMNS = ("run_id", "asset_id", "role", "event_time", "facets", "facet_times")


def build_run_upsert(dialect: str, placeholder: bool, rows_of: tuple[str, ...] = ()) -> Any:
    """The upsert of a run's row (`rows_of`: of many, see `insert_for`)."""
    statement = insert_for(dialect, _RUNS, rows_of)
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
    # OFFSET 0 keeps each EXISTS a probe of the run's own rows: without it, Postgres may plan a batch of runs as one
    # hash of every row of run_assets with that role (a sequential scan of the table, at S 27 of a 98 ms upsert).
    datasets = select(dataset.c.id).where(dataset.c.run_id == literal_column(f"{_RUNS.name}.id")).offset(0)
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


def run_values(record: ExecutionRecord, job_id: int, parent_id: int | None, now: datetime) -> dict[str, Any]:
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


def recorded_run(record: ExecutionRecord, row: Any, changes: list[dict[str, Any]]) -> RecordedRun:
    """The run an upsert returned; a change to its facets joins `changes` when this event's facets move them."""
    run_pk, run_id, job_id, state, state_time, first_event_time, event_time, facets, times, inputs, outputs = row
    if record.facets:
        merged, merged_times = merge_facets(facets, times, record.facets, record.event_time)
        if merged != facets or merged_times != times:
            changes.append({"row_id": run_pk, "merged_facets": merged, "merged_times": merged_times})
    return RecordedRun(
        run_pk, run_id, job_id, state, state_time, first_event_time, event_time, bool(inputs), bool(outputs)
    )


async def change_facets(session: AsyncSession, table: Any, changes: list[dict[str, Any]]) -> None:
    if changes:
        change = cached(session, ("facets", table.name), lambda dialect: _build_update_facets(dialect, table))
        await session.execute(change, sorted(changes, key=lambda values: values["row_id"]))


def build_run_assets_upsert(dialect: str, rows_of: tuple[str, ...] = ()) -> Any:
    statement = insert_for(dialect, _RUN_ASSETS, rows_of)
    stored, new = _RUN_ASSETS.c, statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["run_id", "asset_id", "role"],
        set_={"event_time": later(stored.event_time, new.event_time)},
    ).returning(stored.id, stored.run_id, stored.asset_id, stored.role, stored.facets, stored.facet_times)


def touched_datasets(record: ExecutionRecord, asset_ids: Mapping[str, int]) -> dict[tuple[int, str], dict[str, Any]]:
    """(asset id, role) -> the facets the record reports for it."""
    touched: dict[tuple[int, str], dict[str, Any]] = {}
    for role, touches in (("input", record.inputs), ("output", record.outputs)):
        for touch in touches:
            facets = touched.setdefault((asset_ids[touch.key], role), {})
            facets.update(touch.facets)
    return touched


def run_asset_rows(
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


def merge_run_asset(
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
