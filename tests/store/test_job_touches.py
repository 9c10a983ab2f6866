"""A job changes only when an event describes it: the runs that name it leave its row as it is (no rewrite, no
entry in the change feed for shippers to export again). One event at a time and in batches, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from gateway.orm import Change, Job
from gateway.store import jobs
from gateway.store.jobs import JobBatch, read_job_ids

START = datetime(2026, 3, 1, tzinfo=UTC)
FIRST = datetime(2026, 4, 1, tzinfo=UTC)
PRODUCER = "https://github.com/example/asset-gateway-tests"


def _run_event(run_id: str, minute: int, job_type: str | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {"namespace": "tests", "name": "load"}
    if job_type is not None:
        facet = {"_producer": PRODUCER, "processingType": "BATCH", "integration": "DBT", "jobType": job_type}
        job["facets"] = {"jobType": facet}
    return {
        "eventType": "COMPLETE",
        "eventTime": (START + timedelta(minutes=minute)).isoformat(),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": job,
        "inputs": [{"namespace": "w", "name": "raw"}],
        "outputs": [{"namespace": "w", "name": "out"}],
    }


async def _job(db: Database) -> tuple[Job, int]:
    async with db.session() as session:
        job = (await session.scalars(select(Job).where(Job.namespace == "tests", Job.name == "load"))).one()
        of_the_job = (Change.entity == "job", Change.entity_id == job.id)
        changes = (await session.execute(select(func.count()).select_from(Change).where(*of_the_job))).scalar_one()
    return job, int(changes)


async def _ingest(db: Database, events: list[dict[str, Any]], now: datetime, batched: bool) -> None:
    for batch in [events] if batched else [[event] for event in events]:
        report = await ingest_documents(db, batch, now)
        assert (report.accepted, report.rejected) == (len(batch), [])


@pytest.mark.parametrize("batched", [False, True], ids=["one at a time", "batched"])
async def test_runs_leave_their_job_as_it_was_unless_they_describe_it(db: Database, batched: bool) -> None:
    await _ingest(db, [_run_event("r1", 10, job_type="MODEL")], FIRST, batched=False)
    job, changes = await _job(db)
    assert (job.type, job.created_at, job.updated_at) == ("MODEL", FIRST, FIRST)

    later = FIRST + timedelta(hours=1)
    await _ingest(db, [_run_event("r2", 20), _run_event("r3", 30)], later, batched)
    again, changes_after = await _job(db)
    assert (again.id, again.type, again.updated_at, changes_after) == (job.id, "MODEL", FIRST, changes)

    # An older description changes nothing either; a newer one does.
    await _ingest(db, [_run_event("r4", 5, job_type="OLDER"), _run_event("r5", 6)], later, batched)
    assert (await _job(db))[0].updated_at == FIRST
    await _ingest(db, [_run_event("r6", 40, job_type="NEWER"), _run_event("r7", 41)], later, batched)
    described, changes_described = await _job(db)
    assert (described.type, described.updated_at) == ("NEWER", later)
    assert changes_described > changes


async def test_a_job_created_meanwhile_is_named_all_the_same(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another transaction may create a job between the lookup and the upsert: the row is locked but not
    returned, and its id is read again."""
    await _ingest(db, [_run_event("r1", 10)], FIRST, batched=False)
    job, _ = await _job(db)
    lookups: list[int] = []

    async def missing_at_first(session: Any, names: Any) -> dict[tuple[str, str], int]:
        lookups.append(len(names))
        return {} if len(lookups) == 1 else await read_job_ids(session, names)

    monkeypatch.setattr(jobs, "read_job_ids", missing_at_first)
    batch = JobBatch()
    batch.touch("tests", "load", FIRST + timedelta(hours=1))
    async with db.transaction() as session:
        assert await batch.apply(session) == {("tests", "load"): job.id}
    assert lookups == [1, 1]
    assert (await _job(db))[0].updated_at == FIRST
