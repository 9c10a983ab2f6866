"""Recording executions (runs of jobs) and reading them back: order independence, status, audit log."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from gateway.database import Database
from gateway.errors import InvalidInput
from gateway.orm import Base, Job, Run, RunAsset
from gateway.store.asset_filters import AssetFilter
from gateway.store.catalog import AssetOrder, list_assets
from gateway.store.executions import DatasetTouch, ExecutionRecord, record_execution
from gateway.store.jobs import (
    list_jobs,
    read_jobs_by_ids,
    read_jobs_by_names,
    read_latest_runs_by_job_ids,
    upsert_job,
)
from gateway.store.runs import (
    AuditEntry,
    RunFilter,
    RunRecord,
    list_asset_executions,
    list_runs,
    read_children_by_run_ids,
    read_producer_consumer_job_ids,
    read_run_assets_by_run_ids,
    read_runs_by_ids,
    read_runs_by_run_ids,
)
from tests.store.factories import JOB_NAMESPACE, asset, asset_ids, at, declare, edge_pairs, edges, parent_ref, record


async def _run(db: Database, run_id: str) -> Run:
    async with db.session() as session:
        return (await read_runs_by_run_ids(session, [run_id]))[run_id]


async def _snapshot(db: Database, skip: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every row of every fact table, for comparing whole database states. The change feed is left out:
    it records writes (an event arriving again later does rewrite `updated_at`), not facts."""
    state: dict[str, list[dict[str, Any]]] = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == "changes":
                continue
            rows = (await session.execute(select(table).order_by(*table.primary_key.columns))).mappings()
            state[table.name] = [{k: v for k, v in row.items() if k not in skip} for row in rows]
    return state


async def test_record_execution_creates_job_run_run_assets_and_edges(db: Database, now: datetime) -> None:
    execution = ExecutionRecord(
        job_namespace="dagster",
        job_name="build_orders",
        run_id="run-1",
        state="COMPLETE",
        event_time=at(10),
        started_at=at(1),
        ended_at=at(9),
        inputs=[DatasetTouch("w/a", {"size": {"rows": 1}}), DatasetTouch("w/b")],
        outputs=[DatasetTouch("w/c"), DatasetTouch("w/d"), DatasetTouch("w/a")],
        facets={"nominalTime": {"start": "x"}},
        job_type="BATCH",
        job_description="builds orders",
    )
    async with db.transaction() as session:
        run = await record_execution(session, execution, now)

    async with db.session() as session:
        (job,) = (await session.scalars(select(Job))).all()
        run_assets = (await read_run_assets_by_run_ids(session, [run.id]))[run.id]
    assert (job.namespace, job.name, job.type, job.description) == ("dagster", "build_orders", "BATCH", "builds orders")
    assert (run.run_id, run.job_id, run.state, run.parent_id) == ("run-1", job.id, "COMPLETE", None)
    assert (run.started_at, run.ended_at, run.event_time, run.first_event_time) == (at(1), at(9), at(10), at(10))
    assert run.facets == {"nominalTime": {"start": "x"}}

    a, b, c, d = await asset_ids(db, "w/a", "w/b", "w/c", "w/d")
    assert [(row.asset_id, row.role) for row in run_assets] == [
        (a, "input"),
        (b, "input"),
        (a, "output"),
        (c, "output"),
        (d, "output"),
    ]
    assert run_assets[0].facets == {"size": {"rows": 1}}
    assert {row.event_time for row in run_assets} == {at(10)}

    # Every input feeds every output, except an asset feeding itself.
    assert await edge_pairs(db) == {
        ("w/a", "w/c"),
        ("w/a", "w/d"),
        ("w/b", "w/a"),
        ("w/b", "w/c"),
        ("w/b", "w/d"),
    }
    stored = await edges(db)
    assert {(edge.job_id, edge.origin, edge.last_run_id) for edge in stored} == {(job.id, "run", run.id)}
    assert {(edge.first_seen_at, edge.last_seen_at, edge.retired_at) for edge in stored} == {(at(10), at(10), None)}

    for key in ("w/a", "w/c", "w/d"):
        output = await asset(db, key)
        assert (output.last_status, output.last_run_id, output.last_materialized_at) == ("COMPLETE", run.id, at(10))
    source = await asset(db, "w/b")
    assert (source.last_status, source.last_run_id, source.last_materialized_at) == (None, None, None)
    assert source.namespace == "w"


async def test_a_run_without_datasets_or_parent_records_only_the_run(db: Database, now: datetime) -> None:
    # A parent reference to the run itself is no parent.
    run = await record(db, "noop", "r1", "START", at(1), parent=parent_ref("r1", job="noop"))
    assert (run.state, run.started_at, run.ended_at, run.parent_id) == ("START", at(1), None, None)
    assert await edges(db) == []
    async with db.session() as session:
        assert (await read_run_assets_by_run_ids(session, [run.id])) == {}
        assert len((await session.scalars(select(Run))).all()) == 1


EVENTS = [
    ("START", at(1), {"start": {"v": 1}}),
    ("RUNNING", at(2), {"running": {"v": 2}}),
    ("COMPLETE", at(3), {"complete": {"v": 3}}),
]


async def _run_state(db: Database, run_id: str) -> tuple[Any, ...]:
    run = await _run(db, run_id)
    return (run.state, run.started_at, run.ended_at, run.first_event_time, run.event_time, run.state_time, run.facets)


async def test_run_state_does_not_depend_on_event_order(db: Database) -> None:
    """Every order of START, RUNNING and COMPLETE leaves the same run, edges and asset state."""
    results = {}
    for number, order in enumerate(itertools.permutations(EVENTS)):
        job = f"job-{number}"
        for state, event_time, facets in order:
            await record(
                db,
                job,
                f"run-{number}",
                state,
                event_time,
                inputs=[f"in/{number}"],
                outputs=[f"out/{number}"],
                facets=facets,
            )
        output = await asset(db, f"out/{number}")
        (edge,) = [edge for edge in await edges(db) if edge.downstream_id == output.id]
        results[tuple(state for state, _, _ in order)] = (
            await _run_state(db, f"run-{number}"),
            (output.last_status, output.last_materialized_at),
            (edge.first_seen_at, edge.last_seen_at, edge.retired_at),
        )
    expected = (
        ("COMPLETE", at(1), at(3), at(1), at(3), at(3), {"start": {"v": 1}, "running": {"v": 2}, "complete": {"v": 3}}),
        ("COMPLETE", at(3)),
        (at(1), at(3), None),
    )
    assert {order: result for order, result in results.items() if result != expected} == {}


async def test_start_then_complete_equals_complete_then_start(db: Database) -> None:
    await record(db, "forward", "fwd", "START", at(1), inputs=["f/in"], outputs=["f/out"])
    await record(db, "forward", "fwd", "COMPLETE", at(5))
    await record(db, "reverse", "rev", "COMPLETE", at(5))
    await record(db, "reverse", "rev", "START", at(1), inputs=["r/in"], outputs=["r/out"])
    forward, reverse = await _run_state(db, "fwd"), await _run_state(db, "rev")
    assert forward == reverse
    assert forward[:3] == ("COMPLETE", at(1), at(5))
    assert (await asset(db, "f/out")).last_materialized_at == (await asset(db, "r/out")).last_materialized_at == at(5)

    # Times the producer states win over event times.
    await record(db, "job", "r1", "COMPLETE", at(10), started_at=at(2), ended_at=at(8))
    await record(db, "job", "r1", "START", at(3), started_at=at(2))
    run = await _run(db, "r1")
    assert (run.started_at, run.ended_at, run.first_event_time, run.event_time) == (at(2), at(8), at(3), at(10))


async def test_a_duplicate_event_changes_nothing(db: Database, now: datetime) -> None:
    async def send() -> None:
        await record(
            db,
            "load",
            "r1",
            "COMPLETE",
            at(10),
            inputs=["w/a"],
            outputs=["w/b"],
            facets={"f": {"x": 1}},
            parent=parent_ref("p1"),
            now=now,
        )

    await send()
    before = await _snapshot(db)
    await send()
    assert await _snapshot(db) == before
    # A later arrival of the same event changes no recorded fact either.
    await record(
        db,
        "load",
        "r1",
        "COMPLETE",
        at(10),
        inputs=["w/a"],
        outputs=["w/b"],
        facets={"f": {"x": 1}},
        parent=parent_ref("p1"),
        now=at(60),
    )
    assert await _snapshot(db, skip=("updated_at",)) == _without(before, "updated_at")


def _without(state: dict[str, list[dict[str, Any]]], column: str) -> dict[str, list[dict[str, Any]]]:
    return {table: [{k: v for k, v in row.items() if k != column} for row in rows] for table, rows in state.items()}


async def test_a_failure_keeps_the_last_materialization(db: Database) -> None:
    good = await record(db, "load", "r1", "COMPLETE", at(10), outputs=["w/out"])
    failed = await record(db, "load", "r2", "FAIL", at(20), outputs=["w/out"], error_message="boom")
    stored = await asset(db, "w/out")
    assert (stored.last_status, stored.last_run_id, stored.last_materialized_at) == ("FAIL", failed.id, at(10))
    assert failed.error_message == "boom"
    assert failed.ended_at == at(20)
    assert good.id != failed.id

    # An older success arriving late changes neither the status nor the materialization time.
    await record(db, "load", "r0", "COMPLETE", at(5), outputs=["w/out"])
    stored = await asset(db, "w/out")
    assert (stored.last_status, stored.last_run_id, stored.last_materialized_at) == ("FAIL", failed.id, at(10))

    fixed = await record(db, "load", "r3", "COMPLETE", at(30), outputs=["w/out"])
    stored = await asset(db, "w/out")
    assert (stored.last_status, stored.last_run_id, stored.last_materialized_at) == ("COMPLETE", fixed.id, at(30))


async def test_the_newest_run_sets_the_status_whatever_the_arrival_order(db: Database) -> None:
    await record(db, "load", "r2", "FAIL", at(20), outputs=["w/out"])
    await record(db, "load", "r1", "COMPLETE", at(10), outputs=["w/out"])
    stored = await asset(db, "w/out")
    assert (stored.last_status, stored.last_materialized_at) == ("FAIL", at(10))
    assert stored.last_run_id == (await _run(db, "r2")).id

    # A run that has only started marks its outputs, and completing it materializes them.
    run = await record(db, "load", "r3", "START", at(30), outputs=["w/out"])
    stored = await asset(db, "w/out")
    assert (stored.last_status, stored.last_run_id, stored.last_materialized_at) == ("START", run.id, at(10))
    await record(db, "load", "r3", "COMPLETE", at(35))
    stored = await asset(db, "w/out")
    assert (stored.last_status, stored.last_materialized_at) == ("COMPLETE", at(35))


async def test_parent_and_children_link_whatever_arrives_first(db: Database) -> None:
    # The first child arrives before its parent has said anything.
    await record(db, "child", "c1", "START", at(5), parent=parent_ref("p1"))
    await record(db, "parent", "p1", "START", at(1))
    await record(db, "child", "c2", "START", at(7), parent=parent_ref("p1"))
    await record(db, "parent", "p1", "COMPLETE", at(10))
    # A later event of a child that does not repeat the parent keeps the link.
    await record(db, "child", "c1", "COMPLETE", at(8))
    await record(db, "other", "o1", "START", at(2))

    parent = await _run(db, "p1")
    assert (parent.state, parent.started_at, parent.ended_at) == ("COMPLETE", at(1), at(10))
    async with db.session() as session:
        children = await read_children_by_run_ids(session, [parent.id, (await _run(db, "o1")).id])
        jobs = await read_jobs_by_ids(session, [parent.job_id])
        page = await list_runs(session, RunFilter(parent_id=parent.id), first=10, after=None)
    assert [child.run_id for child in children[parent.id]] == ["c1", "c2"]
    assert {child.parent_id for child in children[parent.id]} == {parent.id}
    assert (await _run(db, "o1")).id not in children
    assert (jobs[parent.job_id].namespace, jobs[parent.job_id].name) == (JOB_NAMESPACE, "parent")
    assert sorted(run.run_id for run in page.items) == ["c1", "c2"]


async def test_facets_merge_per_facet_and_the_newest_event_wins(db: Database) -> None:
    await record(
        db, "job", "r1", "START", at(1), facets={"spark": {"version": "3", "conf": {"a": 1}}, "keep": {"k": 1}}
    )
    await record(db, "job", "r1", "COMPLETE", at(5), facets={"spark": {"conf": {"b": 2}}, "stats": {"rows": 7}})
    # An older event arriving late fills in only what nothing newer gave.
    await record(db, "job", "r1", "RUNNING", at(3), facets={"spark": {"version": "2"}, "late": {"x": None}})
    run = await _run(db, "r1")
    # A facet is replaced whole (not merged into) by a newer event's facet of the same name.
    assert run.facets == {
        "spark": {"conf": {"b": 2}},
        "keep": {"k": 1},
        "stats": {"rows": 7},
        "late": {"x": None},
    }


async def test_json_values_survive_a_merge(db: Database, now: datetime) -> None:
    """Booleans, nulls, nested arrays and JSON-looking strings come back as they went in."""
    base = {"t": True, "f": False, "n": None, "arr": [1, {"x": False}, None], "s": '{"not": "json"}', "x": 1.5}
    overlay = {"arr": [], "u": "é ü", "obj": {"deep": {"deeper": [True]}}, "i": 10**15}
    async with db.transaction() as session:
        job_id = await upsert_job(session, "ns", "job", now, metadata=base)
        await upsert_job(session, "ns", "job", now, metadata=overlay)
    async with db.session() as session:
        job = (await read_jobs_by_ids(session, [job_id]))[job_id]
    assert job.metadata_ == {**base, **overlay}

    # A facet whose new value is null is kept as null (not deleted, as a JSON merge patch would).
    await record(db, "job", "r1", "START", at(1), facets={"gone": {"x": 1}})
    await record(db, "job", "r1", "COMPLETE", at(2), facets={"gone": None, "empty": {}})
    assert (await _run(db, "r1")).facets == {"gone": None, "empty": {}}


async def test_dataset_facets_of_one_run_merge_too(db: Database) -> None:
    execution = ExecutionRecord(
        job_namespace=JOB_NAMESPACE,
        job_name="job",
        run_id="r1",
        state="START",
        event_time=at(1),
        outputs=[DatasetTouch("w/out", {"schema": {"fields": ["a"]}, "stats": {"rows": 1}})],
    )
    async with db.transaction() as session:
        await record_execution(session, execution, at(1))
        later_event = ExecutionRecord(
            job_namespace=JOB_NAMESPACE,
            job_name="job",
            run_id="r1",
            state="COMPLETE",
            event_time=at(2),
            outputs=[DatasetTouch("w/out", {"schema": {"version": 2}})],
        )
        run = await record_execution(session, later_event, at(2))
    async with db.session() as session:
        (row,) = (await read_run_assets_by_run_ids(session, [run.id]))[run.id]
    assert row.facets == {"schema": {"version": 2}, "stats": {"rows": 1}}
    assert row.event_time == at(2)


async def test_job_metadata_merges_and_type_and_description_are_kept(db: Database, now: datetime) -> None:
    async with db.transaction() as session:
        first = await upsert_job(session, "ns", "job", now, "BATCH", "first", {"owner": {"team": "a"}, "keep": 1})
        second = await upsert_job(session, "ns", "job", at(1), None, None, {"owner": {"name": "b"}})
    assert first == second
    async with db.session() as session:
        job = (await read_jobs_by_ids(session, [first]))[first]
    assert (job.type, job.description) == ("BATCH", "first")
    assert job.metadata_ == {"owner": {"name": "b"}, "keep": 1}
    assert (job.created_at, job.updated_at) == (now, at(1))


async def _runs_for_listing(db: Database) -> None:
    await record(db, "load", "l1", "COMPLETE", at(10))
    await record(db, "load", "l2", "FAIL", at(30))
    await record(db, "load", "l3", "START", at(20))
    await record(db, "report", "r1", "COMPLETE", at(20))
    await record(db, "report", "r2", "COMPLETE", at(40), job_namespace="other")
    await record(db, "report", "r3", "RUNNING", at(5))


async def _all_runs(db: Database, run_filter: RunFilter, first: int = 2) -> list[str]:
    seen: list[str] = []
    after: str | None = None
    async with db.session() as session:
        while True:
            page = await list_runs(session, run_filter, first=first, after=after)
            seen.extend(run.run_id for run in page.items)
            if not page.has_next_page:
                return seen
            after = page.cursors[-1]


async def test_list_runs_newest_first_with_filters(db: Database) -> None:
    await _runs_for_listing(db)
    # l3 and r1 tie at minute 20: the later-created run (r1) comes first.
    everything = ["r2", "l2", "r1", "l3", "l1", "r3"]
    for first in (1, 2, 4, 10):
        assert await _all_runs(db, RunFilter(), first) == everything

    async with db.session() as session:
        load_id = (await read_jobs_by_names(session, [(JOB_NAMESPACE, "load")]))[(JOB_NAMESPACE, "load")].id
    cases = {
        "job name": (RunFilter(job_name="report"), ["r2", "r1", "r3"]),
        "job namespace": (RunFilter(job_namespace="other"), ["r2"]),
        "job namespace and name": (RunFilter(job_namespace=JOB_NAMESPACE, job_name="report"), ["r1", "r3"]),
        "job ids": (RunFilter(job_ids=[load_id]), ["l2", "l3", "l1"]),
        "states": (RunFilter(states=["COMPLETE", "FAIL"]), ["r2", "l2", "r1", "l1"]),
        "after": (RunFilter(after=at(20)), ["r2", "l2", "r1", "l3"]),
        "before": (RunFilter(before=at(20)), ["l1", "r3"]),
        "range": (RunFilter(after=at(10), before=at(30)), ["r1", "l3", "l1"]),
        "everything": (RunFilter(job_name="load", states=["START"], after=at(15), before=at(25)), ["l3"]),
        "nothing": (RunFilter(job_name="missing"), []),
    }
    wrong = {}
    for name, (run_filter, expected) in cases.items():
        listed = await _all_runs(db, run_filter)
        if listed != expected:
            wrong[name] = listed
    assert wrong == {}


async def test_list_runs_rejects_a_foreign_cursor(db: Database) -> None:
    await _runs_for_listing(db)
    await declare(db, "w/a", at(0))
    async with db.session() as session:
        asset_cursor = (await list_assets(session, AssetFilter(), first=1, order=AssetOrder.UPDATED_AT_DESC)).cursors[0]
        for token in ("nonsense", "W10=", asset_cursor):
            with pytest.raises(InvalidInput):
                await list_runs(session, RunFilter(), first=2, after=token)
            with pytest.raises(InvalidInput):
                await list_asset_executions(session, 1, None, 2, token)


async def test_list_runs_pages_stay_correct_while_runs_arrive(db: Database) -> None:
    await _runs_for_listing(db)
    async with db.session() as session:
        page = await list_runs(session, RunFilter(), first=2, after=None)
    first = [run.run_id for run in page.items]
    await record(db, "load", "new-newest", "START", at(50))
    await record(db, "load", "new-oldest", "START", at(1))
    rest = await _all_runs_after(db, page.cursors[-1])
    assert first + rest == ["r2", "l2", "r1", "l3", "l1", "r3", "new-oldest"]


async def _all_runs_after(db: Database, after: str) -> list[str]:
    seen: list[str] = []
    async with db.session() as session:
        while True:
            page = await list_runs(session, RunFilter(), first=2, after=after)
            seen.extend(run.run_id for run in page.items)
            if not page.has_next_page:
                return seen
            after = page.cursors[-1]


async def test_an_audit_log_page_reads_records_holding_what_the_rows_hold(db: Database) -> None:
    parent = parent_ref("dag-1", job="nightly")
    await record(db, "load", "l1", "START", at(10), outputs=["w/orders"], parent=parent)
    await record(db, "load", "l1", "FAIL", at(12), outputs=["w/orders"], error_message="disk full")
    await record(db, "copy", "c1", "COMPLETE", at(20), inputs=["w/orders"], outputs=["w/copy"])
    (orders,) = await asset_ids(db, "w/orders")
    async with db.session() as session:
        page = await list_asset_executions(session, orders, None, 10, None, with_runs=True, with_jobs=True)
        stored_entries = {
            row.id: row for row in await session.scalars(select(RunAsset).where(RunAsset.asset_id == orders))
        }
        stored_runs = await read_runs_by_ids(session, [entry.run_id for entry in page.items])
    assert len(page.items) == 2
    for entry, (run, job) in zip(page.items, page.columns, strict=True):
        assert isinstance(entry, AuditEntry)
        assert isinstance(run, RunRecord)
        stored = stored_entries[entry.id]
        assert [getattr(entry, name) for name in AUDIT_FIELDS] == [getattr(stored, name) for name in AUDIT_FIELDS]
        assert run.id == entry.run_id
        assert [getattr(run, name) for name in RUN_FIELDS] == [
            getattr(stored_runs[run.id], name) for name in RUN_FIELDS
        ]
        assert isinstance(job, Job)
        assert job.id == run.job_id
    load = next(run for run, _ in page.columns if run.run_id == "l1")
    # What varies is there to compare: a parent, an error, both times, facets.
    assert load.parent_id is not None
    assert load.error_message == "disk full"
    assert load.started_at is not None
    assert load.ended_at is not None


AUDIT_FIELDS = list(AuditEntry.__dataclass_fields__)
RUN_FIELDS = list(RunRecord.__dataclass_fields__)


async def test_asset_executions_are_an_audit_log_newest_first(db: Database) -> None:
    await record(db, "load", "l1", "COMPLETE", at(10), outputs=["w/orders"])
    await record(db, "report", "r1", "COMPLETE", at(15), inputs=["w/orders"], outputs=["w/report"])
    await record(db, "load", "l2", "COMPLETE", at(20), outputs=["w/orders"])
    await record(db, "copy", "c1", "COMPLETE", at(25), inputs=["w/orders"], outputs=["w/orders"])
    await record(db, "load", "l0", "COMPLETE", at(5), outputs=["w/orders"])
    (orders,) = await asset_ids(db, "w/orders")

    async def log(role: str | None, first: int) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        after: str | None = None
        async with db.session() as session:
            while True:
                page = await list_asset_executions(session, orders, role, first, after)
                runs = await read_runs_by_ids(session, [row.run_id for row in page.items])
                seen.extend((runs[row.run_id].run_id, row.role) for row in page.items)
                if not page.has_next_page:
                    return seen
                after = page.cursors[-1]

    everything = [
        ("c1", "input"),
        ("c1", "output"),
        ("l2", "output"),
        ("r1", "input"),
        ("l1", "output"),
        ("l0", "output"),
    ]
    # c1 read and wrote the asset at the same moment: its two rows tie on time, the later id first.
    assert sorted(everything[:2]) == sorted((await log(None, 10))[:2])
    assert (await log(None, 10))[2:] == everything[2:]
    assert await log(None, 1) == await log(None, 10)
    assert await log("output", 2) == [("c1", "output"), ("l2", "output"), ("l1", "output"), ("l0", "output")]
    assert await log("input", 2) == [("c1", "input"), ("r1", "input")]


async def test_latest_runs_by_job(db: Database) -> None:
    await record(db, "load", "l1", "COMPLETE", at(10))
    await record(db, "load", "l3", "START", at(30))
    await record(db, "load", "l2", "COMPLETE", at(20))
    await record(db, "report", "r1", "COMPLETE", at(5))
    await record(db, "report", "r2", "COMPLETE", at(5))
    await record(db, "idle", "i1", "START", at(1))
    async with db.session() as session:
        jobs = await read_jobs_by_names(session, [(JOB_NAMESPACE, "load"), (JOB_NAMESPACE, "report")])
        load, report = jobs[(JOB_NAMESPACE, "load")].id, jobs[(JOB_NAMESPACE, "report")].id
        latest = await read_latest_runs_by_job_ids(session, [load, report, 9999])
        assert await read_latest_runs_by_job_ids(session, []) == {}
    assert {job_id: run.run_id for job_id, run in latest.items()} == {load: "l3", report: "r2"}


async def test_producer_and_consumer_jobs(db: Database) -> None:
    await record(db, "load", "l1", "COMPLETE", at(10), outputs=["w/orders"])
    await record(db, "load", "l2", "COMPLETE", at(11), outputs=["w/orders"])
    await record(db, "backfill", "b1", "COMPLETE", at(12), outputs=["w/orders"])
    await record(db, "report", "r1", "COMPLETE", at(13), inputs=["w/orders"], outputs=["w/report"])
    orders, report = await asset_ids(db, "w/orders", "w/report")
    async with db.session() as session:
        jobs = await read_jobs_by_names(
            session, [(JOB_NAMESPACE, "load"), (JOB_NAMESPACE, "backfill"), (JOB_NAMESPACE, "report")]
        )
        producers = await read_producer_consumer_job_ids(session, [orders, report], "output")
        consumers = await read_producer_consumer_job_ids(session, [orders, report], "input")
    load, backfill, reporter = (jobs[(JOB_NAMESPACE, name)].id for name in ("load", "backfill", "report"))
    assert dict(producers) == {orders: sorted([load, backfill]), report: [reporter]}
    assert dict(consumers) == {orders: [reporter]}


async def test_list_jobs_by_full_name_with_search_and_pages(db: Database, now: datetime) -> None:
    async with db.transaction() as session:
        for namespace, name in [("b", "load_orders"), ("a", "z"), ("a", "load%x"), ("b", "Report"), ("a", "b")]:
            await upsert_job(session, namespace, name, now)

    async def names(namespace: str | None, search: str | None) -> list[str]:
        seen: list[str] = []
        after: str | None = None
        async with db.session() as session:
            while True:
                page = await list_jobs(session, namespace, search, 2, after)
                seen.extend(f"{job.namespace}/{job.name}" for job in page.items)
                if not page.has_next_page:
                    return seen
                after = page.cursors[-1]

    assert await names(None, None) == ["a/b", "a/load%x", "a/z", "b/Report", "b/load_orders"]
    assert await names("a", None) == ["a/b", "a/load%x", "a/z"]
    assert await names(None, "LOAD") == ["a/load%x", "b/load_orders"]
    assert await names(None, "d%") == ["a/load%x"]
    assert await names(None, "d_") == ["b/load_orders"]


INVALID = {
    "state": {"state": "DONE"},
    "lower-case state": {"state": "complete"},
    "empty run id": {"run_id": ""},
    "long run id": {"run_id": "r" * 256},
    "ended before started": {"started_at": at(5), "ended_at": at(4)},
    "empty job name": {"job_name": ""},
    "long job namespace": {"job_namespace": "n" * 513},
    "bad dataset key": {"outputs": [DatasetTouch("has space")]},
}


async def test_invalid_executions_are_rejected_and_nothing_is_stored(db: Database, now: datetime) -> None:
    accepted = []
    for name, change in INVALID.items():
        values: dict[str, Any] = {
            "job_namespace": JOB_NAMESPACE,
            "job_name": "job",
            "run_id": "r1",
            "state": "COMPLETE",
            "event_time": at(10),
            "inputs": [DatasetTouch("w/in")],
            **change,
        }
        try:
            async with db.transaction() as session:
                await record_execution(session, ExecutionRecord(**values), now)
        except InvalidInput:
            continue
        accepted.append(name)
    assert accepted == []
    assert all(rows == [] for rows in (await _snapshot(db)).values())
    # The longest valid run id is fine.
    assert (await record(db, "job", "r" * 255, "START", at(1))).run_id == "r" * 255


async def test_reads_of_nothing(db: Database) -> None:
    async with db.session() as session:
        assert await read_runs_by_ids(session, []) == {}
        assert await read_runs_by_run_ids(session, ["missing"]) == {}
        assert await read_children_by_run_ids(session, []) == {}
        assert await read_producer_consumer_job_ids(session, [], "output") == {}
        assert await read_jobs_by_names(session, []) == {}
        page = await list_asset_executions(session, 12345, None, 5, None)
    assert (list(page.items), page.has_next_page) == ([], False)
