"""The `openlineage` shipper: every event it emits is valid under the official schema (strict: no leniency,
formats checked, run ids UUIDs), declared lineage and job changes arrive as they are, the same state gives the
same events, and openlineage-python's transports carry them (`file` here, `async_http` to a real gateway).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.database import Database
from gateway.settings import Settings
from tests.ingest.corpus import CORPUS, Filler, OfficialSchema, inventory_rows, read_events, require_corpus
from tests.ingest.support import APPLES, DBT_RUN, fill_templates, load_documents, running_gateway
from tests.shippers import (
    Receiver,
    catalog,
    corpus_batches,
    differences,
    ingest,
    make_runner,
    ol_run_id,
    settled,
    without_placeholder_times,
)

# Marquez accepts these though the strict schema does not (no schemaURL, times without a zone, nanoseconds).
LENIENT = (
    "marquez/api-test-resources/open_lineage/event_without_schema_url.json",
    "marquez/api-test-resources/open_lineage/event_required_no_timezone.json",
    "marquez/api-test-resources/open_lineage/event_required_nanoseconds.json",
    "marquez/api-test-resources/open_lineage/event_required_only.json",
)
DBT_LISTS = (
    "openlineage-dbt/build/result.json",
    "openlineage-dbt/snapshot/result.json",
    "openlineage-dbt/spark/thrift/result.json",
    "openlineage-dbt/structured_logs/postgres/run/results/failed_run_ol_events.json",
    "openlineage-dbt/structured_logs/snowflake/seed/results/seed_ol_events.json",
)
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$")


def strict_schema() -> OfficialSchema:
    """The official schema without the gateway's leniencies; formats checked (date-time, uuid and uri too)."""
    require_corpus()
    schema = OfficialSchema(lenient=False)
    checker = schema.core.format_checker
    assert checker is not None
    checker.checks("uri")(lambda value: not isinstance(value, str) or bool(URI.match(value)))
    return schema


def problems(schema: OfficialSchema, event: dict[str, Any]) -> list[str]:
    """Every reason the official schema refuses the event: the core (one of its branches) and each facet by key."""
    found = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in schema.core.iter_errors(event)]
    found += [f"{problem.where}: {problem.message}" for problem in schema.facet_problems(event)]
    return found


def broad_state() -> list[list[dict[str, Any]]]:
    """The round trip's slice, Marquez's lenient events and more dbt lists, and every complete corpus file that
    posts as it is (sampled), so that stored facets of many producers go out again."""
    batches = corpus_batches()
    batches += [load_documents(path) for path in LENIENT]
    batches += [Filler(path).fill(read_events(CORPUS / path)) for path in DBT_LISTS]
    postable = inventory_rows(lambda row: row.postable_as_is and not row.path.startswith("openlineage-dbt/"))
    batches += [read_events(row.file) for row in postable[::3]]
    return batches


def emitted(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def file_transport(path: Path) -> dict[str, Any]:
    return {"transport": {"type": "file", "log_file_path": str(path), "append": True}}


async def test_every_emitted_event_is_valid_under_the_official_schema(
    db: Database, now: datetime, tmp_path: Path
) -> None:
    schema = strict_schema()
    await ingest(db, broad_state(), now)
    await settled(db)
    path = tmp_path / "events.ndjson"
    runner = make_runner(db, "ol", "openlineage", file_transport(path), batch_size=200)
    try:
        assert (await runner.run()).error is None
        assert (await runner.run(full=True)).error is None
    finally:
        await runner.aclose()
    events = emitted(path)
    kinds = {("RunEvent" if "run" in e else "DatasetEvent" if "dataset" in e else "JobEvent") for e in events}
    assert kinds == {"RunEvent", "DatasetEvent", "JobEvent"}
    assert len(events) > 500

    invalid = {}
    for number, event in enumerate(events):
        found = problems(schema, event)
        if found:
            invalid[number] = found
    shown = "\n".join(f"{json.dumps(events[n])[:600]}\n  {found[:3]}" for n, found in list(invalid.items())[:5])
    assert not invalid, f"{len(invalid)} of {len(events)} events are invalid:\n{shown}"

    # The validator is not vacuous: it refuses what the shipper must not send.
    run_event = next(event for event in events if "run" in event)
    for change in (
        lambda e: e["run"].update(runId="run_id"),
        lambda e: e.update(eventTime=e["eventTime"][:19]),
        lambda e: e.update(producer="not a uri"),
        lambda e: e["job"].pop("namespace"),
    ):
        broken = copy.deepcopy(run_event)
        change(broken)
        assert problems(schema, broken), broken

    # Run ids that are not UUIDs go out as stable UUIDs, parent links with them.
    child_events = [e for e in events if "run" in e and e["job"]["name"] == "job_name.report"]
    assert child_events
    for event in child_events:
        assert event["run"]["runId"] == ol_run_id("run_id.report")
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == parent["root"]["run"]["runId"] == ol_run_id("run_id")
    assert any(e["run"]["runId"] == ol_run_id("run_id") for e in events if "run" in e)


async def test_the_same_state_gives_the_same_events(db: Database, now: datetime, tmp_path: Path) -> None:
    """So that a target sees a replay as duplicates: event times come from the gateway's state, not the clock."""
    await ingest(db, corpus_batches()[:10], now)
    await settled(db)
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    for path in (first, second):
        runner = make_runner(db, f"ol-{path.stem}", "openlineage", file_transport(path), batch_size=10_000)
        try:
            assert (await runner.run(full=True)).error is None
        finally:
            await runner.aclose()
    assert sorted(first.read_text().splitlines()) == sorted(second.read_text().splitlines())
    assert first.read_text()


def _job_event(at: datetime, job: str, inputs: list[str], outputs: list[str], **facets: Any) -> dict[str, Any]:
    return {
        "eventTime": at.isoformat(),
        "producer": "https://example.com/tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "declared", "name": job, "facets": facets},
        "inputs": [{"namespace": "warehouse", "name": name} for name in inputs],
        "outputs": [{"namespace": "warehouse", "name": name} for name in outputs],
    }


async def test_declared_lineage_and_job_changes_arrive_as_they_are(
    db: Database, now: datetime, tmp_path: Path, sqlite_template: Path
) -> None:
    """A job declares two disjoint parts of its lineage (a -> x, then b -> y): the target must get those two
    edges, not every input feeding every output. A job's description changes with no run: the target gets it."""
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    shutil.copy(sqlite_template, target_dir / "gateway.db")
    target = Database(Settings(data_dir=target_dir, auto_migrate=False))
    path = tmp_path / "events.ndjson"
    runner = make_runner(db, "ol", "openlineage", file_transport(path), batch_size=100)
    try:
        await ingest(db, [[_job_event(now, "publish", ["a"], ["x"])], [_job_event(now, "publish", ["b"], ["y"])]])
        await settled(db)
        assert (await runner.run()).error is None
        await ingest(target, [emitted(path)])
        edges = (await catalog(target))["live_edges"]
        assert set(edges) == {
            ("warehouse/a", "warehouse/x", ("declared", "publish")),
            ("warehouse/b", "warehouse/y", ("declared", "publish")),
        }
        assert set(edges.values()) == {"declared"}

        shipped = len(emitted(path))
        described = {"documentation": {"description": "Publishes the marts"}, "jobType": _job_type("DAG")}
        await ingest(db, [[_job_event(now + timedelta(hours=1), "publish", [], [], **described)]])
        await settled(db)
        assert (await runner.run()).error is None
        new = emitted(path)[shipped:]
        assert [event["job"]["name"] for event in new] == ["publish"]
        await ingest(target, [new])
        expected = await catalog(db)
        assert (await catalog(target))["jobs"] == expected["jobs"]
        assert expected["jobs"][("declared", "publish")] == {"type": "DAG", "description": "Publishes the marts"}
        assert await catalog(target) == expected, differences(expected, await catalog(target))
    finally:
        await runner.aclose()
        await target.dispose()


def _job_type(job_type: str) -> dict[str, str]:
    return {"processingType": "BATCH", "integration": "TESTS", "jobType": job_type}


async def test_async_http_transport_delivers_to_a_gateway_and_reports_refusals(
    db: Database, now: datetime, tmp_path: Path
) -> None:
    """async_http counts an event it gave up on as processed; the shipper must still see that the target refused
    it and keep its cursor. Once the target accepts, the target holds what the gateway holds."""
    await ingest(db, [load_documents(APPLES), fill_templates(load_documents(DBT_RUN)), *corpus_batches()[-2:]], now)
    await settled(db)
    with running_gateway(tmp_path / "target", scheduler_enabled="false") as url:
        target = Database(Settings(data_dir=tmp_path / "target"))
        async with Receiver(forward_to=url, refuse=lambda number: number <= 3) as receiver:
            transport = {"type": "async_http", "url": receiver.url, "timeout": 30, "retry": {"total": 0}}
            runner = make_runner(db, "async", "openlineage", {"transport": transport}, batch_size=1000, max_attempts=1)
            try:
                refused = await runner.run()
                assert refused.error is not None
                assert "refused 3 of" in refused.error
                assert refused.shipped == 0, "the cursor stays before a batch the target did not take whole"
                accepted = await runner.run()
                assert accepted.error is None, accepted
            finally:
                await runner.aclose()
        try:
            expected = without_placeholder_times(await catalog(db, ol_run_id))
            actual = without_placeholder_times(await catalog(target))
            assert actual == expected, differences(expected, actual)
        finally:
            await target.dispose()
    assert receiver.refused == 3


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_a_run_id_that_is_a_uuid_keeps_it(db: Database, now: datetime, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    event = {
        "eventType": "COMPLETE",
        "eventTime": now.isoformat(),
        "producer": "https://example.com/tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "etl", "name": "keep"},
    }
    await ingest(db, [[event]], now)
    path = tmp_path / "events.ndjson"
    runner = make_runner(db, "ol", "openlineage", file_transport(path))
    try:
        assert (await runner.run()).error is None
    finally:
        await runner.aclose()
    assert [e["run"]["runId"] for e in emitted(path) if "run" in e] == [run_id]
