"""OpenLineage gives no ordering guarantee: whatever order (and repetition) events arrive in, the derived
tables must end up as they are when the events arrive sorted by eventTime. On both dialects.

The comparison is "the same rows in every derived table, surrogate ids and insertion times aside"
(tests/ingest/support.py: snapshot).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from tests.ingest.support import (
    APPLES,
    DBT_RUN,
    Snapshot,
    assert_same_state,
    by_event_time,
    clear_database,
    fill_templates,
    load_documents,
    raw_event_count,
    snapshot,
)

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PRODUCER = "https://github.com/example/asset-gateway-tests"

HYPOTHESIS = settings(
    max_examples=15,
    deadline=None,
    database=None,
    # No shrinking: every failure message names the arrival order already, and shrinking costs seconds per failure.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def sequence(name: str) -> list[dict[str, Any]]:
    if name == "apples":
        return load_documents(APPLES)
    return fill_templates(load_documents(DBT_RUN))


async def ingest_batches(db: Database, batches: Sequence[Sequence[dict[str, Any]]]) -> tuple[int, int]:
    """Each batch in its own call (one request, one transaction); returns (accepted, duplicates)."""
    accepted = duplicates = 0
    for batch in batches:
        report = await ingest_documents(db, list(batch), NOW)
        assert report.rejected == [], report.rejected
        accepted += report.accepted
        duplicates += report.duplicates
    return accepted, duplicates


async def state_after(db: Database, batches: Sequence[Sequence[dict[str, Any]]]) -> Snapshot:
    await clear_database(db)
    await ingest_batches(db, batches)
    return await snapshot(db)


async def sorted_state(db: Database, documents: Sequence[dict[str, Any]]) -> Snapshot:
    """The reference: every event on its own, in eventTime order."""
    return await state_after(db, [[document] for document in by_event_time(documents)])


_REFERENCE: dict[tuple[str, str], Snapshot] = {}


async def reference(db: Database, dialect: str, name: str, fresh: bool = False) -> Snapshot:
    """The sorted state of a corpus sequence, computed once per dialect (each test's database is a fresh one)."""
    if fresh or (dialect, name) not in _REFERENCE:
        _REFERENCE[dialect, name] = await sorted_state(db, sequence(name))
    return _REFERENCE[dialect, name]


@st.composite
def arrivals(draw: st.DrawFn, count: int) -> list[list[int]]:
    """Indexes of `count` events: a permutation, some of them again at random places, cut into batches."""
    order = list(draw(st.permutations(range(count))))
    for again in draw(st.lists(st.integers(0, count - 1), max_size=count // 3)):
        order.insert(draw(st.integers(0, len(order))), again)
    batches: list[list[int]] = [[]]
    for index in order:
        if batches[-1] and draw(st.booleans()):
            batches.append([])
        batches[-1].append(index)
    return batches


# --- the corpus sequences, in any order ---------------------------------------------------------------------


async def test_sorted_apples_give_the_graph_the_events_describe(db: Database, dialect: str) -> None:
    """The reference state is not vacuous: 8 complete runs, 9 edges, one retired by a later run of its job."""
    state = await reference(db, dialect, "apples", fresh=True)

    assert sorted(run["state"] for run in state["runs"]) == ["COMPLETE"] * 8
    edges = {(edge["job_id"], edge["upstream_id"], edge["downstream_id"]): edge for edge in state["lineage_edges"]}
    assert len(edges) == 9
    retired = {key: edge["retired_at"] for key, edge in edges.items() if edge["retired_at"] is not None}
    # gather_apples picked crab apples on 2020-10-15 13:00 +10:00, so red delicious no longer feeds apples.
    assert retired == {
        (
            "grandmas.kitchen/gather_apples",
            "laurents-orchard/red.delicious",
            "grandmas.kitchen/apples",
        ): "2020-10-15T03:00:00+00:00"
    }
    assert await raw_event_count(db) == 8


async def test_sorted_dbt_run_gives_the_graph_the_events_describe(db: Database, dialect: str) -> None:
    state = await reference(db, dialect, "dbt", fresh=True)

    models = [run for run in state["runs"] if run["job_id"].startswith("job-namespace/")]
    assert [run["state"] for run in models] == ["COMPLETE"] * 5
    # The dbt invocation is the parent of every model run; it sent no event of its own.
    parents = {run["parent_id"] for run in models}
    assert parents == {"f99310b4-3c3c-1a1a-2b2b-c1b95c24ff11"}
    edges = sorted(
        (edge["upstream_id"].rsplit(".", 1)[1], edge["downstream_id"].rsplit(".", 1)[1])
        for edge in state["lineage_edges"]
    )
    assert edges == [
        ("stg_customers", "customers"),
        ("stg_orders", "customers"),
        ("stg_orders", "orders"),
        ("stg_payments", "customers"),
        ("stg_payments", "orders"),
    ]


@pytest.mark.parametrize("name", ["apples", "dbt"])
@HYPOTHESIS
@given(data=st.data())
async def test_any_arrival_order_gives_the_sorted_state(
    db: Database, dialect: str, name: str, data: st.DataObject
) -> None:
    documents = sequence(name)
    expected = await reference(db, dialect, name)
    batches = data.draw(arrivals(len(documents)), label="batches of event indexes")

    await clear_database(db)
    accepted, duplicates = await ingest_batches(db, [[documents[i] for i in batch] for batch in batches])

    sent = sum(len(batch) for batch in batches)
    assert (accepted, duplicates) == (len(documents), sent - len(documents))
    assert await raw_event_count(db) == len(documents)
    assert_same_state(expected, await snapshot(db), f"{name} arriving as {batches}")


# --- one run, every order ------------------------------------------------------------------------------------


def run_event(
    seconds: int,
    event_type: str,
    *,
    run_id: str = "0190c2a0-0000-7000-8000-000000000001",
    job: str = "load_orders",
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    run_facets: dict[str, Any] | None = None,
    job_facets: dict[str, Any] | None = None,
    output_facets: dict[str, Any] | None = None,
    parent: tuple[str, str] | None = None,
) -> dict[str, Any]:
    facets = dict(run_facets or {})
    if parent is not None:
        facets["parent"] = {"run": {"runId": parent[0]}, "job": {"namespace": "tests", "name": parent[1]}}
    return {
        "eventType": event_type,
        "eventTime": f"2026-03-01T10:00:{seconds:02d}.000Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": facets},
        "job": {"namespace": "tests", "name": job, "facets": job_facets or {}},
        "inputs": [{"namespace": "postgres://db:5432", "name": name} for name in inputs],
        "outputs": [
            {"namespace": "postgres://db:5432", "name": name, "outputFacets": output_facets or {}} for name in outputs
        ],
    }


def orders_of(documents: Sequence[dict[str, Any]], sample: int | None = None) -> list[list[list[dict[str, Any]]]]:
    """Every permutation, one event per call, and each once more with its first event repeated at the end;
    with `sample`, that many of those orders (always the same ones)."""
    orders = []
    for permutation in itertools.permutations(documents):
        orders.append([[document] for document in permutation])
        orders.append([[document] for document in (*permutation, permutation[0])])
    return orders if sample is None else random.Random(len(documents)).sample(orders, sample)


async def assert_order_independent(
    db: Database, documents: Sequence[dict[str, Any]], sample: int | None = None
) -> Snapshot:
    expected = await sorted_state(db, documents)
    for order in orders_of(documents, sample):
        arrived = [batch[0]["eventType"] + "@" + batch[0]["eventTime"][17:19] for batch in order]
        assert_same_state(expected, await state_after(db, order), f"arrival order {arrived}")
    return expected


def key(name: str) -> str:
    return f"postgres://db:5432/{name}"


async def test_start_running_complete_in_any_order(db: Database) -> None:
    """Inputs come at START, outputs at COMPLETE: every order gives one COMPLETE run and both edges."""
    documents = [
        run_event(
            1,
            "START",
            inputs=["shop.orders", "shop.customers"],
            run_facets={"nominalTime": {"nominalStartTime": "2026-03-01T10:00:00Z"}},
        ),
        run_event(2, "RUNNING"),
        run_event(3, "COMPLETE", outputs=["mart.orders_daily"], output_facets={"outputStatistics": {"rowCount": 42}}),
    ]

    state = await assert_order_independent(db, documents)

    (run,) = state["runs"]
    assert (run["state"], run["started_at"], run["ended_at"]) == (
        "COMPLETE",
        "2026-03-01T10:00:01+00:00",
        "2026-03-01T10:00:03+00:00",
    )
    assert sorted(
        (edge["upstream_id"], edge["downstream_id"], edge["retired_at"]) for edge in state["lineage_edges"]
    ) == [
        (key("shop.customers"), key("mart.orders_daily"), None),
        (key("shop.orders"), key("mart.orders_daily"), None),
    ]
    output = next(asset for asset in state["assets"] if asset["key"] == key("mart.orders_daily"))
    assert (output["last_status"], output["last_materialized_at"]) == ("COMPLETE", "2026-03-01T10:00:03+00:00")
    (written,) = [row for row in state["run_assets"] if row["role"] == "output"]
    assert written["facets"] == {"outputStatistics": {"rowCount": 42}}


async def test_start_then_fail_in_any_order(db: Database) -> None:
    """A failed run: its state and error hold in every order, and its output is not materialized."""
    error = {"message": "relation mart.orders_daily is locked", "programmingLanguage": "SQL"}
    documents = [
        run_event(1, "START", inputs=["shop.orders"]),
        run_event(2, "FAIL", outputs=["mart.orders_daily"], run_facets={"errorMessage": error}),
    ]

    state = await assert_order_independent(db, documents)

    (run,) = state["runs"]
    assert (run["state"], run["error_message"]) == ("FAIL", "relation mart.orders_daily is locked")
    output = next(asset for asset in state["assets"] if asset["key"] == key("mart.orders_daily"))
    assert (output["last_status"], output["last_materialized_at"]) == ("FAIL", None)


def completed_then_failed() -> list[dict[str, Any]]:
    """START (inputs), COMPLETE (outputs), then a FAIL for the same run: a post-commit hook failed."""
    return [
        run_event(1, "START", inputs=["shop.orders"]),
        run_event(2, "COMPLETE", outputs=["mart.orders_daily"]),
        run_event(3, "FAIL", run_facets={"errorMessage": {"message": "hook failed", "programmingLanguage": "python"}}),
    ]


async def test_fail_after_complete_gives_one_state_in_any_order(db: Database) -> None:
    """The later terminal event wins the state; the run, its datasets and edges agree in every order."""
    documents = completed_then_failed()
    expected = await sorted_state(db, documents)
    tables = ("jobs", "runs", "run_assets", "lineage_edges")
    for order in orders_of(documents):
        state = await state_after(db, order)
        assert {name: state[name] for name in tables} == {name: expected[name] for name in tables}, order

    (run,) = expected["runs"]
    assert (run["state"], run["error_message"], run["ended_at"]) == ("FAIL", "hook failed", "2026-03-01T10:00:03+00:00")
    assert [(edge["upstream_id"], edge["downstream_id"]) for edge in expected["lineage_edges"]] == [
        (key("shop.orders"), key("mart.orders_daily"))
    ]
    output = next(asset for asset in expected["assets"] if asset["key"] == key("mart.orders_daily"))
    assert output["last_status"] == "FAIL"


async def test_complete_of_another_run_retires_edges_in_any_order(db: Database) -> None:
    """Two runs of one job; the later one reads a different input, so the first run's edge retires."""
    first, second = "0190c2a0-0000-7000-8000-00000000000a", "0190c2a0-0000-7000-8000-00000000000b"
    documents = [
        run_event(1, "START", run_id=first, inputs=["shop.orders"]),
        run_event(2, "COMPLETE", run_id=first, outputs=["mart.orders_daily"]),
        run_event(3, "START", run_id=second, inputs=["shop.orders_v2"]),
        run_event(4, "COMPLETE", run_id=second, outputs=["mart.orders_daily"]),
    ]

    # 48 orders in all; 12 of them keep the suite quick.
    state = await assert_order_independent(db, documents, sample=12)

    retired = {edge["upstream_id"]: edge["retired_at"] for edge in state["lineage_edges"]}
    assert retired == {key("shop.orders"): "2026-03-01T10:00:04+00:00", key("shop.orders_v2"): None}


async def test_run_facets_of_three_events_in_any_order(db: Database) -> None:
    """Each run facet keeps the value of the newest event that carried it (START x=1, RUNNING x=2, COMPLETE y)."""
    await assert_order_independent(
        db,
        [
            run_event(1, "START", run_facets={"spark_jobDetails": {"jobId": 1}}),
            run_event(2, "RUNNING", run_facets={"spark_jobDetails": {"jobId": 2}}),
            run_event(3, "COMPLETE", run_facets={"processing_engine": {"name": "spark", "version": "3.5.1"}}),
        ],
    )


async def test_output_facets_of_three_events_in_any_order(db: Database) -> None:
    """Per-dataset facets too: outputStatistics of RUNNING (the newest that has it) wins in every order."""
    await assert_order_independent(
        db,
        [
            run_event(1, "START", outputs=["mart.t"], output_facets={"outputStatistics": {"rowCount": 1}}),
            run_event(2, "RUNNING", outputs=["mart.t"], output_facets={"outputStatistics": {"rowCount": 2}}),
            run_event(3, "COMPLETE", outputs=["mart.t"]),
        ],
    )


async def test_parent_edges_with_a_late_child_in_any_order(db: Database) -> None:
    """A child event later than its parent's last one must not move the parent job's edges."""
    dag = "0190c2a0-0000-7000-8000-0000000000d1"
    await assert_order_independent(
        db,
        [
            run_event(1, "START", run_id=dag, job="dag", inputs=["shop.orders"], outputs=["mart.orders_daily"]),
            run_event(2, "COMPLETE", run_id=dag, job="dag"),
            run_event(
                3, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000d2", job="dag.task", parent=(dag, "dag")
            ),
        ],
    )


# --- order dependence the store once had (each test names the case) ----------------------------------------


async def test_fail_after_complete_gives_the_sorted_state_in_any_order(db: Database) -> None:
    await assert_order_independent(db, completed_then_failed())


async def test_dataset_description_in_any_order(db: Database) -> None:
    def described(seconds: int, run: str, description: str | None) -> dict[str, Any]:
        document = run_event(seconds, "COMPLETE", run_id=run, outputs=["mart.t"])
        if description is not None:
            document["outputs"][0]["facets"] = {"documentation": {"description": description}}
        return document

    await assert_order_independent(
        db,
        [
            described(1, "0190c2a0-0000-7000-8000-0000000000c1", "daily orders"),
            described(2, "0190c2a0-0000-7000-8000-0000000000c2", "orders per day, UTC"),
            described(3, "0190c2a0-0000-7000-8000-0000000000c3", None),
        ],
    )


async def test_job_type_in_any_order(db: Database) -> None:
    documents = load_documents("ol-diff/examples/success/prev/event_01_START.json") + load_documents(
        "ol-diff/examples/success/prev/event_03_COMPLETE.json"
    )
    await assert_order_independent(db, documents)


async def test_symlinked_dataset_identity_in_any_order(db: Database) -> None:
    path = {"namespace": "file", "name": "/opt/spark/warehouse/t1"}
    table = {"identifiers": [{"namespace": "hive://metastore:9083", "name": "default.t1", "type": "TABLE"}]}
    written = run_event(1, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000e1", job="write_t1")
    written["outputs"] = [path]
    read = run_event(2, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000e2", job="read_t1")
    read["inputs"] = [{**path, "facets": {"symlinks": table}}]

    await assert_order_independent(db, [written, read])


async def test_parent_known_only_from_its_children_in_any_order(db: Database) -> None:
    dag = ("0190c2a0-0000-7000-8000-0000000000f0", "dag")
    await assert_order_independent(
        db,
        [
            run_event(1, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000f1", job="dag.extract", parent=dag),
            run_event(2, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000f2", job="dag.load", parent=dag),
        ],
    )


async def test_run_writing_another_output_keeps_the_edge(db: Database) -> None:
    first, second = "0190c2a0-0000-7000-8000-00000000001a", "0190c2a0-0000-7000-8000-00000000001b"
    documents = [
        run_event(1, "START", run_id=first, inputs=["shop.orders"]),
        run_event(2, "COMPLETE", run_id=first, outputs=["mart.orders_daily"]),
        run_event(3, "START", run_id=second, inputs=["shop.refunds"]),
        run_event(4, "COMPLETE", run_id=second, outputs=["mart.refunds_daily"]),
    ]

    state = await sorted_state(db, documents)

    retired = {(edge["upstream_id"], edge["downstream_id"]): edge["retired_at"] for edge in state["lineage_edges"]}
    assert retired == {
        (key("shop.orders"), key("mart.orders_daily")): None,
        (key("shop.refunds"), key("mart.refunds_daily")): None,
    }


async def test_declared_edge_later_than_its_retirement_lives_in_any_order(db: Database) -> None:
    """A JobEvent declaring, after the run that retired it, an edge a run of the job had shown: the edge lives,
    whether the declaration comes before the runs or after them (only the time of its last run may differ)."""
    declared = {
        "eventTime": "2026-03-01T10:00:10.000Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "tests", "name": "load_orders"},
        "inputs": [{"namespace": "postgres://db:5432", "name": "shop.orders"}],
        "outputs": [{"namespace": "postgres://db:5432", "name": "mart.orders_daily"}],
    }
    documents = [
        run_event(1, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000a1", inputs=["shop.orders"]),
        run_event(5, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000a2", inputs=["shop.orders_v2"]),
        declared,
    ]
    for document in documents[:2]:
        document["outputs"] = [{"namespace": "postgres://db:5432", "name": "mart.orders_daily"}]

    for order in orders_of(documents):
        state = await state_after(db, order)
        retired = {edge["upstream_id"]: edge["retired_at"] for edge in state["lineage_edges"]}
        assert retired == {key("shop.orders"): None, key("shop.orders_v2"): None}, order
