"""The executions of many events, recorded as one after the other would record them, in a few statements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import TERMINAL_STATES, Run, RunAsset
from gateway.store.executions import ExecutionRecord, placeholder_values
from gateway.store.run_rows import (
    RUN_ASSET_COLUMNS,
    RUN_COLUMNS,
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
from gateway.store.run_settle import (
    batch_edges_parameters,
    build_batch_edges,
    build_batch_output_assets,
    build_batch_retire,
    build_outputs_of,
)
from gateway.store.sql import bind_rows, cached, dialect_name

_RUNS: Any = Run.__table__
_RUN_ASSETS: Any = RunAsset.__table__


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
        placeholders = cached(
            session, ("run upsert", True, "rows"), lambda dialect: build_run_upsert(dialect, True, RUN_COLUMNS)
        )
        upsert = cached(
            session, ("run upsert", False, "rows"), lambda dialect: build_run_upsert(dialect, False, RUN_COLUMNS)
        )
        dialect = dialect_name(session)
        for parents, positions in self._run_rounds(now):
            # Rows in run id order: concurrent transactions lock the runs they share in the same order.
            if parents:
                parents.sort(key=lambda values: str(values["run_id"]))
                for run_pk, run_id in await session.execute(placeholders, bind_rows(dialect, parents, RUN_COLUMNS)):
                    ids[run_id] = run_pk
            if not positions:
                continue
            positions.sort(key=lambda position: pending[position].record.run_id)
            rows = []
            for position in positions:
                item = pending[position]
                parent = item.record.parent
                parent_id = ids[parent.run_id] if parent is not None and item.parent_job_id is not None else None
                rows.append(run_values(item.record, item.job_id, parent_id, now))
            returned = {row[1]: row for row in await session.execute(upsert, bind_rows(dialect, rows, RUN_COLUMNS))}
            changes: list[dict[str, Any]] = []
            for position in positions:
                record = pending[position].record
                run = by_position[position] = recorded_run(record, returned[record.run_id], changes)
                ids[run.run_id] = run.id
            await change_facets(session, _RUNS, changes)
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
                    values = placeholder_values(parent, item.parent_job_id, record.event_time, now)
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
        upsert = cached(
            session, ("run assets upsert", "rows"), lambda dialect: build_run_assets_upsert(dialect, RUN_ASSET_COLUMNS)
        )
        dialect = dialect_name(session)
        for positions in _rounds([runs[position].id for position in touching]):
            touched = {}
            rows: list[dict[str, Any]] = []
            for position in (touching[index] for index in positions):
                item, run = self._pending[position], runs[position]
                touched[run.id] = (item.record, touched_datasets(item.record, item.asset_ids))
                rows += run_asset_rows(run.id, item.record, touched[run.id][1])
            rows.sort(key=lambda values: (values["run_id"], values["asset_id"], values["role"]))
            changes: list[dict[str, Any]] = []
            for chunk in chunks(rows):
                for row in await session.execute(upsert, bind_rows(dialect, chunk, RUN_ASSET_COLUMNS)):
                    record, facets = touched[row[1]]
                    merge_run_asset(record, facets, row, changes)
            await change_facets(session, _RUN_ASSETS, changes)

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
        if feeding:
            edges = cached(session, "batch edges", build_batch_edges)
            await session.execute(edges, batch_edges_parameters(dialect_name(session), [run.id for run in feeding]))
        outputs: dict[int, list[int]] = {run.id: [] for run in settling}
        found = await session.execute(cached(session, "outputs of", build_outputs_of), {"run_pks": list(outputs)})
        for run_pk, asset_id in found:
            outputs[run_pk].append(asset_id)
        scope = sorted({(run.job_id, asset_id) for run in settling for asset_id in outputs[run.id]})
        retire = cached(session, "batch retire", build_batch_retire)
        await session.execute(
            retire,
            {
                "run_pks": [run.id for run in settling],
                "job_ids": [job_id for job_id, _ in scope],
                "asset_ids": [asset_id for _, asset_id in scope],
            },
        )
        # Each output's status follows from the runs of the batch that wrote it (see build_batch_output_assets): the
        # newest of them by event time may take it, in rounds where several share that time.
        newest: dict[int, list[RecordedRun]] = {}
        overturned: set[int] = set()
        completed: dict[int, datetime] = {}
        for run in settling:
            for asset_id in outputs[run.id]:
                tied = newest.setdefault(asset_id, [run])
                if run.event_time > tied[0].event_time:
                    newest[asset_id] = [run]
                elif run.event_time == tied[0].event_time and run is not tied[0]:
                    tied.append(run)
                if run.state == "COMPLETE":
                    completed[asset_id] = max(completed.get(asset_id, run.state_time), run.state_time)
                elif run.state in TERMINAL_STATES and run.had_outputs:
                    # Only a run that was settled with outputs before this batch can have set their last success
                    # (a batch settles each run once, from its last state): recomputing it elsewhere changes nothing.
                    overturned.add(asset_id)
        change = cached(session, "batch output assets", build_batch_output_assets)
        for number in range(max((len(tied) for tied in newest.values()), default=0)):
            # Assets in id order: concurrent transactions lock the assets they share in the same order.
            rows = sorted((asset_id, tied[number].id) for asset_id, tied in newest.items() if len(tied) > number)
            await session.execute(change, _output_parameters(dialect_name(session), rows, overturned, completed, now))


def _output_parameters(
    dialect: str, rows: list[tuple[int, int]], overturned: set[int], completed: dict[int, datetime], now: datetime
) -> Any:
    """The parameters of `build_batch_output_assets` for (asset id, run pk) pairs."""
    if dialect == "postgresql":
        return {
            "run_pks": [run_pk for _, run_pk in rows],
            "asset_ids": [asset_id for asset_id, _ in rows],
            "overturned": [asset_id in overturned for asset_id, _ in rows],
            "completed_ats": [completed.get(asset_id) for asset_id, _ in rows],
            "now": now,
        }
    return [
        {
            "run_pk": run_pk,
            "asset_id": asset_id,
            "overturned": asset_id in overturned,
            "completed_at": completed.get(asset_id),
            "now": now,
        }
        for asset_id, run_pk in rows
    ]
