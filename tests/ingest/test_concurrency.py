"""Many producers at once against Postgres: two `asset-gateway serve` replicas, eight concurrent clients posting
START and COMPLETE of overlapping runs that read and write the same assets. No 5xx, no deadlock left
unresolved, no event lost, and the derived state exactly what the events say: the counts and times computed
from what was sent, and the very state the same events give when applied one by one without concurrency.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from gateway.settings import Settings
from tests.ingest.support import (
    assert_same_state,
    by_event_time,
    clear_database,
    raw_event_count,
    running_gateways,
    snapshot,
)

CLIENTS = 8
RUNS_PER_CLIENT = 25
JOBS = [f"nightly_{number}" for number in range(4)]
NAMESPACE = "postgres://warehouse:5432"
SOURCES = [f"{NAMESPACE}/raw.source_{number}" for number in range(6)]
TARGETS = [f"{NAMESPACE}/mart.target_{number}" for number in range(4)]
BASE_TIME = datetime(2026, 5, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    job: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    started: datetime
    completed: datetime

    def event(self, event_type: str) -> dict[str, Any]:
        start = event_type == "START"
        datasets = self.inputs if start else self.outputs
        return {
            "eventType": event_type,
            "eventTime": (self.started if start else self.completed).isoformat(),
            "producer": "https://github.com/example/asset-gateway-tests/concurrency",
            "run": {"runId": self.run_id},
            "job": {"namespace": "concurrency", "name": self.job},
            "inputs" if start else "outputs": [
                {"namespace": NAMESPACE, "name": key.removeprefix(NAMESPACE + "/")} for key in datasets
            ],
        }


def plan(seed: int = 20260501) -> list[list[PlannedRun]]:
    """Per client, its runs: 2-3 shared inputs, 1-2 shared outputs, distinct times interleaved across clients."""
    chooser = random.Random(seed)
    clients = []
    for client in range(CLIENTS):
        runs = []
        for number in range(RUNS_PER_CLIENT):
            started = BASE_TIME + timedelta(seconds=10 * (number * CLIENTS + client))
            runs.append(
                PlannedRun(
                    run_id=str(uuid.UUID(int=chooser.getrandbits(128), version=4)),
                    job=chooser.choice(JOBS),
                    inputs=tuple(sorted(chooser.sample(SOURCES, chooser.randint(2, 3)))),
                    outputs=tuple(sorted(chooser.sample(TARGETS, chooser.randint(1, 2)))),
                    started=started,
                    completed=started + timedelta(seconds=5),
                )
            )
        clients.append(runs)
    return clients


def expected_edges(runs: list[PlannedRun]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(job, upstream, downstream) -> the min/max times of the runs that showed the edge, and the latest run."""
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run in runs:
        for upstream in run.inputs:
            for downstream in run.outputs:
                edge = edges.setdefault(
                    (f"concurrency/{run.job}", upstream, downstream),
                    {"first_seen_at": run.started, "last_seen_at": run.completed, "last_run_id": run.run_id},
                )
                edge["first_seen_at"] = min(edge["first_seen_at"], run.started)
                if run.completed > edge["last_seen_at"]:
                    edge["last_seen_at"], edge["last_run_id"] = run.completed, run.run_id
    return edges


async def produce(url: str, runs: list[PlannedRun], answers: list[httpx.Response]) -> None:
    """One producer: START then COMPLETE of each run; every fifth run as a two-event batch."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for number, run in enumerate(runs):
            if number % 5 == 4:
                batch = [run.event("START"), run.event("COMPLETE")]
                answers.append(await client.post("/api/v1/lineage", json=batch))
            else:
                for event_type in ("START", "COMPLETE"):
                    answers.append(await client.post("/api/v1/lineage", json=run.event(event_type)))


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_concurrent_producers_lose_nothing(db: Database, settings: Settings, tmp_path: Path) -> None:
    clients = plan()
    runs = [run for client in clients for run in client]
    sent = 2 * len(runs)
    answers: list[httpx.Response] = []

    replicas = [tmp_path / f"replica-{number}" for number in range(2)]
    with running_gateways(replicas, database_url=settings.resolved_database_url) as urls:
        await asyncio.gather(*(produce(urls[number % 2], client, answers) for number, client in enumerate(clients)))

    failures = [(answer.status_code, answer.text) for answer in answers if answer.status_code != 201]
    assert failures == []
    bodies = [answer.json() for answer in answers]
    assert sum(body["accepted"] for body in bodies) == sent
    assert sum(body["duplicates"] for body in bodies) == 0
    assert await raw_event_count(db) == sent

    state = await snapshot(db)

    assert len(state["runs"]) == CLIENTS * RUNS_PER_CLIENT
    assert {run["state"] for run in state["runs"]} == {"COMPLETE"}
    assert len(state["run_assets"]) == sum(len(run.inputs) + len(run.outputs) for run in runs)
    edges = expected_edges(runs)
    assert len(state["lineage_edges"]) == len(edges)
    assert {(edge["job_id"], edge["upstream_id"], edge["downstream_id"]) for edge in state["lineage_edges"]} == set(
        edges
    )
    assert len({(edge["upstream_id"], edge["downstream_id"]) for edge in state["lineage_edges"]}) == len(
        {(upstream, downstream) for _, upstream, downstream in edges}
    )
    # Edges carry the min/max times of the runs that showed them, whichever transaction committed first.
    found = {
        (edge["job_id"], edge["upstream_id"], edge["downstream_id"]): {
            name: edge[name] for name in ("first_seen_at", "last_seen_at", "last_run_id")
        }
        for edge in state["lineage_edges"]
    }
    wanted = {
        key: {name: iso(value) if name != "last_run_id" else value for name, value in edge.items()}
        for key, edge in edges.items()
    }
    assert found == wanted
    # Each target was last written by its latest COMPLETE run.
    for target in TARGETS:
        writers = [run for run in runs if target in run.outputs]
        latest = max(writers, key=lambda run: run.completed)
        (asset,) = [asset for asset in state["assets"] if asset["key"] == target]
        assert (asset["last_run_id"], asset["last_status"], asset["last_materialized_at"]) == (
            latest.run_id,
            "COMPLETE",
            iso(latest.completed),
        ), json.dumps(asset)

    # And the whole state (edge retirement included) is what the same events give when applied one by one in
    # eventTime order, without any concurrency.
    await clear_database(db)
    ordered = by_event_time([run.event(event_type) for run in runs for event_type in ("START", "COMPLETE")])
    report = await ingest_documents(db, ordered, datetime.now(UTC))
    assert (report.accepted, report.rejected) == (sent, [])
    assert_same_state(await snapshot(db), state, "concurrent ingestion against the same events applied in order")
