"""A batch settles each run once: each output's status from all the runs of the batch that wrote it (the newest
of them takes the status, ties by run id; a run that ended failed has the last success recomputed), and each
edge from all the runs of its job that showed it (its earliest and latest times, the run that saw it last).
The state must be the one the events give one at a time, whatever was stored before the batch. On both
dialects.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from tests.ingest.support import assert_same_state, by_event_time, clear_database, snapshot

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCER = "https://github.com/example/asset-gateway-tests"
OUTPUTS = ("w/orders", "w/customers", "w/payments")
# Mixed case and punctuation: the database, not Python, orders run ids of runs that end at the same moment.
RUN_IDS = ("run-A", "run-b", "Run_c", "run.d", "run-e", "RUN-f", "run-g", "run-h")


def _event(
    run_id: str, state: str, minute: int, outputs: list[str], inputs: tuple[str, ...] = ("w/raw",), job: str = ""
) -> dict[str, Any]:
    return {
        "eventType": state,
        "eventTime": (START + timedelta(minutes=minute)).isoformat(),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "tests", "name": job or f"job-{run_id.lower()}"},
        "inputs": [{"namespace": "w", "name": key.split("/", 1)[1]} for key in inputs],
        "outputs": [{"namespace": "w", "name": key.split("/", 1)[1]} for key in outputs],
    }


def _events(seed: int) -> list[dict[str, Any]]:
    """Runs writing a few shared outputs, at few distinct minutes (ties are common), some ending failed after
    completing (a later terminal event overturns the success), some still running."""
    chosen = random.Random(seed)
    events = []
    for run_id in RUN_IDS:
        outputs = chosen.sample(OUTPUTS, chosen.randint(1, 2))
        first = chosen.randint(0, 4)
        story = chosen.choice([["COMPLETE"], ["FAIL"], ["START"], ["START", "COMPLETE"], ["COMPLETE", "FAIL"]])
        for step, state in enumerate(story):
            events.append(_event(run_id, state, first + 2 * step, outputs))
    return events


async def _one_at_a_time(db: Database, events: list[dict[str, Any]]) -> None:
    for event in events:
        report = await ingest_documents(db, [event], NOW)
        assert (report.accepted, report.rejected) == (1, []), report


@pytest.mark.parametrize("seed", range(8))
async def test_a_batch_gives_each_output_the_status_of_events_one_at_a_time(db: Database, seed: int) -> None:
    events = _events(seed)
    await _one_at_a_time(db, by_event_time(events))
    expected = await snapshot(db)
    statuses = {(asset["key"], asset["last_status"]) for asset in expected["assets"] if asset["key"] in OUTPUTS}
    assert len(statuses) == len(OUTPUTS), "every output has a status"

    shuffled = random.Random(seed).sample(events, len(events))
    for stored_before in (0, len(events) // 3):
        await clear_database(db)
        await _one_at_a_time(db, by_event_time(events)[:stored_before])
        rest = [event for event in shuffled if event not in by_event_time(events)[:stored_before]]
        report = await ingest_documents(db, rest, NOW)
        assert (report.accepted, report.rejected) == (len(rest), []), report
        assert_same_state(expected, await snapshot(db), f"seed {seed}, {stored_before} events stored before")


def _shared_job_events(seed: int) -> list[dict[str, Any]]:
    """Runs of two jobs reading some of three inputs at few distinct minutes: runs of one job show the same edges,
    often at the same time, some over two events."""
    chosen = random.Random(seed)
    events = []
    for run_id in RUN_IDS:
        job = chosen.choice(["load", "build"])
        outputs = chosen.sample(OUTPUTS, chosen.randint(1, 2))
        inputs = tuple(chosen.sample(["w/raw", "w/seeds", "w/lookup"], chosen.randint(1, 2)))
        first = chosen.randint(0, 3)
        for step, state in enumerate(chosen.choice([["COMPLETE"], ["START", "COMPLETE"], ["START", "FAIL"]])):
            events.append(_event(run_id, state, first + step, outputs, inputs, job))
    return chosen.sample(events, len(events))


@pytest.mark.parametrize("seed", range(8))
async def test_a_batch_gives_each_edge_what_the_runs_of_its_job_give_one_at_a_time(db: Database, seed: int) -> None:
    """The same arrival order both ways: of two runs that show an edge at the same moment, the one settled last
    is the one that saw it last, as one event at a time would have it."""
    events = _shared_job_events(seed)
    await _one_at_a_time(db, events)
    expected = await snapshot(db)
    jobs = {edge["job_id"] for edge in expected["lineage_edges"]}
    assert jobs == {"tests/load", "tests/build"} or len(jobs) == 1, jobs

    for stored_before in (0, len(events) // 3):
        await clear_database(db)
        await _one_at_a_time(db, events[:stored_before])
        report = await ingest_documents(db, events[stored_before:], NOW)
        assert (report.accepted, report.rejected) == (len(events) - stored_before, []), report
        assert_same_state(expected, await snapshot(db), f"seed {seed}, {stored_before} events stored before")
