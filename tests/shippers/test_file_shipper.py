"""The `file` shipper: NDJSON of `asset-gateway.changes/1` records, each the current state of one entity with a
version that grows with every change of it; a consumer keeping the greatest version per (type, id) holds the
gateway's current state, whatever the replays, duplicates and order of the lines."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.database import Database
from gateway.orm import Change, ShipperState
from gateway.store import changes as feed
from shippers.file import FORMAT
from tests.ingest.support import APPLES, DBT_RUN, fill_templates, load_documents
from tests.shippers import catalog, greatest_versions, ingest, make_runner, read_lines, settled

PRODUCER = "https://example.com/tests"
RUN_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def run_event(
    job: str, run_id: str, at: datetime, inputs: list[str], outputs: list[str], **facets: Any
) -> dict[str, Any]:
    return {
        "eventType": "COMPLETE",
        "eventTime": at.isoformat(),
        "producer": PRODUCER,
        "schemaURL": RUN_SCHEMA,
        "run": {"runId": run_id, "facets": facets},
        "job": {"namespace": "etl", "name": job},
        "inputs": [dict(zip(("namespace", "name"), key.split("/", 1), strict=True)) for key in inputs],
        "outputs": [dict(zip(("namespace", "name"), key.split("/", 1), strict=True)) for key in outputs],
    }


def current_state(lines: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    return {key: line["data"] for key, line in greatest_versions(lines).items()}


async def test_every_line_is_a_versioned_record_and_the_consumer_holds_the_current_state(
    db: Database, now: datetime, tmp_path: Path
) -> None:
    await ingest(db, [load_documents(APPLES), fill_templates(load_documents(DBT_RUN))], now)
    await settled(db)
    path = tmp_path / "out" / "changes.ndjson"
    runner = make_runner(db, "file", "file", {"path": str(path)}, batch_size=50)
    report = await runner.run()
    assert report.error is None
    assert report.batches > 1

    assert path.read_bytes().endswith(b"\n")
    lines = read_lines(path)
    async with db.session() as session:
        newest = dict((await session.execute(select(Change.entity, func.max(Change.id)).group_by(Change.entity))).all())
    for line in lines:
        assert set(line) == {"format", "type", "id", "version", "changed_at", "data"}, line
        assert line["format"] == FORMAT
        assert line["type"] in ("asset", "job", "run", "edge")
        assert isinstance(line["version"], int)
        assert 0 < line["version"] <= newest[line["type"]]
        assert datetime.fromisoformat(line["changed_at"]).tzinfo is not None
        data = line["data"]
        identity = {
            "asset": lambda d: d["key"],
            "job": lambda d: [d["namespace"], d["name"]],
            "run": lambda d: d["run_id"],
            "edge": lambda d: [d["upstream"], d["downstream"], [d["job"]["namespace"], d["job"]["name"]]],
        }[line["type"]](data)
        assert line["id"] == identity

    expected = await catalog(db)
    state = current_state(lines)
    assert {key for kind, key in state if kind == "asset"} == {json.dumps(key) for key in expected["assets"]}
    assert {key for kind, key in state if kind == "run"} == {json.dumps(key) for key in expected["runs"]}
    assert {key for kind, key in state if kind == "job"} == {json.dumps(list(key)) for key in expected["jobs"]}
    for key, asset in expected["assets"].items():
        shipped = state[("asset", json.dumps(key))]
        assert (shipped["description"], shipped["owners"], shipped["tags"]) == (
            asset["description"],
            asset["owners"],
            asset["tags"],
        )
        assert sorted(shipped["aliases"]) == asset["aliases"]
    for run_id, run in expected["runs"].items():
        shipped = state[("run", json.dumps(run_id))]
        assert (shipped["state"], shipped["placeholder"]) == (run["state"], run["placeholder"])

    # The consumer's state is the gateway's current state as a full export writes it, however often and in
    # whatever order the lines come: replay the whole feed (the cursor reset) and shuffle.
    full_path = tmp_path / "full.ndjson"
    full = make_runner(db, "full", "file", {"path": str(full_path)}, batch_size=500)
    assert (await full.run(full=True)).error is None
    exported = current_state(read_lines(full_path))
    async with db.transaction() as session:
        await session.execute(ShipperState.__table__.update().values(cursor_txid=0, cursor_id=0))
    assert (await runner.run()).shipped == report.shipped
    replayed = read_lines(path)
    assert len(replayed) == 2 * len(lines)
    for seed in range(3):
        random.Random(seed).shuffle(replayed)
        assert current_state(replayed) == exported


async def test_versions_grow_where_the_entities_own_times_do_not(db: Database, now: datetime, tmp_path: Path) -> None:
    """Three changes that leave an entity's own time as it was, or move it back: a placeholder parent getting its
    own (older) event, an edge retiring, a job's description changing. A consumer keeping the greatest version
    must end with the new state, in any order of the lines."""
    path = tmp_path / "changes.ndjson"
    runner = make_runner(db, "file", "file", {"path": str(path)}, batch_size=3)
    parent_id, child_id = str(uuid.uuid4()), str(uuid.uuid4())
    parent_facet = {"parent": {"run": {"runId": parent_id}, "job": {"namespace": "etl", "name": "nightly"}}}
    steps = [
        [
            run_event(
                "nightly.load",
                child_id,
                now + timedelta(minutes=10),
                ["warehouse/raw"],
                ["warehouse/staged"],
                **parent_facet,
            )
        ],
        [run_event("nightly", parent_id, now + timedelta(minutes=3), [], [])],
        [
            run_event(
                "build",
                str(uuid.uuid4()),
                now + timedelta(minutes=20),
                ["warehouse/staged", "warehouse/lookup"],
                ["warehouse/mart"],
            )
        ],
        [run_event("build", str(uuid.uuid4()), now + timedelta(minutes=30), ["warehouse/staged"], ["warehouse/mart"])],
        [
            {
                "eventTime": (now + timedelta(minutes=40)).isoformat(),
                "producer": PRODUCER,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
                "job": {"namespace": "etl", "name": "build", "facets": {"documentation": {"description": "v2"}}},
            }
        ],
    ]
    for number, step in enumerate(steps):
        await ingest(db, [step], now + timedelta(hours=number))
        await settled(db)
        assert (await runner.run()).error is None

    lines = read_lines(path)
    parent_key = ("run", json.dumps(parent_id))
    edge_key = ("edge", json.dumps(["warehouse/lookup", "warehouse/mart", ["etl", "build"]]))
    job_key = ("job", json.dumps(["etl", "build"]))
    history = {
        key: [line for line in lines if (line["type"], json.dumps(line["id"])) == key]
        for key in (parent_key, edge_key, job_key)
    }
    # Not vacuous: the entities' own times did not grow with these changes.
    assert history[parent_key][0]["data"]["placeholder"]
    assert history[parent_key][-1]["data"]["event_time"] < history[parent_key][0]["data"]["event_time"]
    assert history[edge_key][-1]["data"]["last_seen_at"] == history[edge_key][0]["data"]["last_seen_at"]
    assert history[edge_key][0]["data"]["retired_at"] is None

    for seed in range(4):
        shuffled = list(lines)
        random.Random(seed).shuffle(shuffled)
        state = current_state(shuffled)
        assert state[parent_key]["state"] == "COMPLETE"
        assert state[parent_key]["placeholder"] is False
        assert state[edge_key]["retired_at"] is not None
        assert state[job_key]["description"] == "v2"
    expected = await catalog(db)
    assert expected["runs"][parent_id]["state"] == "COMPLETE"
    assert ("warehouse/lookup", "warehouse/mart", ("etl", "build")) in expected["retired_edges"]


async def test_incremental_run_appends_only_what_changed(db: Database, now: datetime, tmp_path: Path) -> None:
    await ingest(db, [load_documents(APPLES)], now)
    await settled(db)
    path = tmp_path / "changes.ndjson"
    runner = make_runner(db, "file", "file", {"path": str(path)}, batch_size=20)
    assert (await runner.run()).error is None
    before = read_lines(path)
    versions = {(line["type"], json.dumps(line["id"])): line["version"] for line in before}

    run_id = str(uuid.uuid4())
    await ingest(db, [[run_event("pack_apples", run_id, now, ["grandmas.kitchen/apples"], ["warehouse/crates"])]], now)
    await settled(db)
    report = await runner.run()
    assert report.error is None
    assert report.batches == 1

    after = read_lines(path)
    assert after[: len(before)] == before, "earlier lines stay as they were"
    new = after[len(before) :]
    kinds = {(line["type"], json.dumps(line["id"])) for line in new}
    assert ("run", json.dumps(run_id)) in kinds
    assert ("job", json.dumps(["etl", "pack_apples"])) in kinds
    assert ("asset", json.dumps("warehouse/crates")) in kinds
    assert ("edge", json.dumps(["grandmas.kitchen/apples", "warehouse/crates", ["etl", "pack_apples"]])) in kinds
    assert len(new) == len(kinds), "one line per changed entity"
    assert all(line["version"] > versions.get((line["type"], json.dumps(line["id"])), 0) for line in new)
    assert (await runner.run()).shipped == 0
    assert read_lines(path) == after


async def test_full_export_writes_every_entity_at_its_version_and_continues_from_the_head(
    db: Database, now: datetime, tmp_path: Path
) -> None:
    await ingest(db, [load_documents(APPLES), fill_templates(load_documents(DBT_RUN))], now)
    head = await settled(db)
    path = tmp_path / "full.ndjson"
    runner = make_runner(db, "full", "file", {"path": str(path)}, batch_size=25)
    report = await runner.run(full=True)
    assert report.error is None
    assert report.full

    lines = read_lines(path)
    expected = await catalog(db)
    assert len(lines) == report.shipped == sum(len(part) for part in expected.values())
    async with db.session() as session:
        newest = {
            (entity, entity_id): change_id
            for entity, entity_id, change_id in await session.execute(
                select(Change.entity, Change.entity_id, func.max(Change.id)).group_by(Change.entity, Change.entity_id)
            )
        }
        state = await session.get(ShipperState, "full")
    assert state is not None
    assert (state.cursor_txid, state.cursor_id) == head
    assert sorted(line["version"] for line in lines) == sorted(newest.values()), "each at its newest change"

    await ingest(db, [[run_event("later", str(uuid.uuid4()), now, [], ["warehouse/later"])]], now + timedelta(hours=1))
    await settled(db)
    async with db.session() as session:
        pending = await feed.count_changes_after(session, head)
    incremental = await runner.run()
    assert incremental.shipped == pending, "only the changes after the head"
    new = read_lines(path)[len(lines) :]
    assert {line["type"] for line in new} == {"asset", "job", "run"}
    assert all(line["version"] > max(newest.values()) for line in new)
