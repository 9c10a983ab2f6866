"""A batch of JobEvents only declares its edges in a few statements (store/declared_edges.py): the derived tables
must end up exactly as when the same events are written one per call, in the same order. On both dialects."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.database import Database
from tests.ingest.support import assert_same_state
from tests.ingest.test_order_independence import PRODUCER, key, run_event, state_after

DATASETS = ("shop.orders", "shop.customers", "stage.orders", "mart.daily", "mart.weekly")
JOBS = ("load_orders", "build_mart", "export")


def job_event(seconds: int, job: str, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    return {
        "eventTime": f"2026-03-01T10:00:{seconds:02d}.000Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "tests", "name": job},
        "inputs": [{"namespace": "postgres://db:5432", "name": name} for name in inputs],
        "outputs": [{"namespace": "postgres://db:5432", "name": name} for name in outputs],
    }


def runs() -> list[dict[str, Any]]:
    """Runs of the jobs whose edges the declarations meet: at 20 s load_orders reads orders and customers, at
    30 s only orders (its customers edge retires then); build_mart reads stage.orders for both marts."""
    first = run_event(20, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000b1", inputs=DATASETS[:2])
    second = run_event(30, "COMPLETE", run_id="0190c2a0-0000-7000-8000-0000000000b2", inputs=DATASETS[:1])
    mart = run_event(
        25,
        "COMPLETE",
        run_id="0190c2a0-0000-7000-8000-0000000000b3",
        job="build_mart",
        inputs=["stage.orders"],
        outputs=["mart.daily", "mart.weekly"],
    )
    for document in (first, second):
        document["outputs"] = [{"namespace": "postgres://db:5432", "name": "stage.orders"}]
    return [first, second, mart]


def declarations(seed: int) -> list[dict[str, Any]]:
    """JobEvents of a few jobs over a few datasets, at times before, between and after the runs; some declare the
    same edges again at other times."""
    chooser = random.Random(seed)
    events = []
    for _ in range(chooser.randint(4, 12)):
        inputs = chooser.sample(DATASETS, chooser.randint(0, 3))
        outputs = chooser.sample(DATASETS, chooser.randint(1, 2))
        events.append(job_event(chooser.randint(0, 59), chooser.choice(JOBS), inputs, outputs))
    # The edge the second run retired, declared after it: it lives again.
    events.insert(chooser.randint(0, len(events)), job_event(40, "load_orders", ["shop.customers"], ["stage.orders"]))
    return events


@pytest.mark.parametrize("seed", range(8))
async def test_job_events_together_give_the_state_of_one_per_call(db: Database, seed: int) -> None:
    declared = declarations(seed)
    one_per_call = await state_after(db, [[run] for run in runs()] + [[event] for event in declared])
    together = await state_after(db, [[run] for run in runs()] + [declared])
    assert_same_state(one_per_call, together, f"seed {seed}")
    edges = {(edge["upstream_id"], edge["downstream_id"]): edge for edge in together["lineage_edges"]}
    revived = edges[key("shop.customers"), key("stage.orders")]
    assert revived["retired_at"] is None, revived


async def test_job_events_together_before_the_runs(db: Database) -> None:
    declared = declarations(99)
    one_per_call = await state_after(db, [[event] for event in declared] + [[run] for run in runs()])
    together = await state_after(db, [declared] + [[run] for run in runs()])
    assert_same_state(one_per_call, together, "declarations first")
