"""An asset changes only when something about it changes: a run that merely names a dataset (no facet describing
it) creates the asset or brings a deleted one back, and otherwise leaves its row as it is (no rewrite, no entry
in the change feed for shippers to export again). A description no newer than the stored one changes nothing
either. One event at a time and in batches, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from gateway.orm import Change, RunAsset
from gateway.store.assets import ensure_assets, soft_delete_asset
from gateway.store.descriptions import AssetDescription, _upsert_described, _values, lookup_identifiers
from tests.helpers import caught_statements
from tests.store.factories import asset

START = datetime(2026, 3, 1, tzinfo=UTC)
FIRST = datetime(2026, 4, 1, tzinfo=UTC)


def _minute(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def _dataset(key: str, description: str | None = None) -> dict[str, Any]:
    namespace, name = key.split("/", 1)
    dataset: dict[str, Any] = {"namespace": namespace, "name": name}
    if description is not None:
        facet = {"_producer": "https://github.com/example/asset-gateway-tests", "description": description}
        dataset["facets"] = {"documentation": facet}
    return dataset


def _run_event(run_id: str, minute: int, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    return {
        "eventType": "COMPLETE",
        "eventTime": _minute(minute).isoformat(),
        "producer": "https://github.com/example/asset-gateway-tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "tests", "name": f"load-{run_id}"},
        "inputs": [_dataset(key) for key in inputs],
        "outputs": [_dataset(key) for key in outputs],
    }


async def _ingest(db: Database, events: list[dict[str, Any]], now: datetime, batched: bool) -> None:
    for batch in [events] if batched else [[event] for event in events]:
        report = await ingest_documents(db, batch, now)
        assert (report.accepted, report.rejected) == (len(batch), [])


async def _changes_of(db: Database, asset_id: int) -> int:
    async with db.session() as session:
        of_the_asset = (Change.entity == "asset", Change.entity_id == asset_id)
        statement = select(func.count()).select_from(Change).where(*of_the_asset)
        return int((await session.execute(statement)).scalar_one())


@pytest.mark.parametrize("batched", [False, True], ids=["one at a time", "batched"])
async def test_runs_that_name_an_asset_leave_it_as_it_was(db: Database, batched: bool) -> None:
    await _ingest(db, [_run_event("r1", 10, ["w/raw"], ["w/out"])], FIRST, batched=False)
    raw = await asset(db, "w/raw")
    assert (raw.described_at, raw.created_at, raw.updated_at) == (None, FIRST, FIRST)
    changes = await _changes_of(db, raw.id)
    assert changes > 0

    later = [_run_event("r0", 5, ["w/raw"], ["w/other"]), _run_event("r2", 30, ["w/raw"], ["w/third"])]
    await _ingest(db, later, FIRST + timedelta(hours=1), batched)

    again = await asset(db, "w/raw")
    assert (again.id, again.described_at, again.updated_at) == (raw.id, None, FIRST)
    assert await _changes_of(db, raw.id) == changes
    async with db.session() as session:
        readers = (await session.execute(select(RunAsset.run_id).where(RunAsset.asset_id == raw.id))).all()
    assert len(readers) == 3, "each run's input names the same asset"
    assert (await asset(db, "w/third")).last_materialized_at == _minute(30)


@pytest.mark.parametrize("batched", [False, True], ids=["one at a time", "batched"])
async def test_a_description_changes_the_asset_and_a_mere_mention_then_does_not(db: Database, batched: bool) -> None:
    described = _run_event("r1", 10, [], ["w/out"])
    described["outputs"] = [_dataset("w/out", "orders, one row each")]
    await _ingest(db, [described], FIRST, batched=False)
    out = await asset(db, "w/out")
    assert (out.description, out.described_at) == ("orders, one row each", _minute(10))

    await _ingest(db, [_run_event("r2", 20, ["w/out"], ["w/next"])], FIRST + timedelta(hours=1), batched)
    assert (await asset(db, "w/out")).described_at == _minute(10)

    newer = _run_event("r3", 30, [], ["w/out"])
    newer["outputs"] = [_dataset("w/out", "orders, deduplicated")]
    older = _run_event("r4", 25, [], ["w/out"])
    older["outputs"] = [_dataset("w/out", "an older description")]
    await _ingest(db, [newer, older], FIRST + timedelta(hours=2), batched)
    out = await asset(db, "w/out")
    assert (out.description, out.described_at) == ("orders, deduplicated", _minute(30))


@pytest.mark.parametrize("batched", [False, True], ids=["one at a time", "batched"])
async def test_a_run_naming_a_deleted_asset_after_its_deletion_brings_it_back(db: Database, batched: bool) -> None:
    await _ingest(db, [_run_event("r1", 10, ["w/raw"], ["w/out"])], FIRST, batched=False)
    deleted_at = _minute(60)
    async with db.transaction() as session:
        await soft_delete_asset(session, "w/raw", deleted_at)

    before_deletion = [_run_event("r2", 50, ["w/raw"], ["w/out"]), _run_event("r3", 55, ["w/raw"], ["w/other"])]
    await _ingest(db, before_deletion, FIRST + timedelta(hours=1), batched)
    assert (await asset(db, "w/raw", include_deleted=True)).deleted_at == deleted_at

    after_deletion = [_run_event("r4", 70, ["w/raw"], ["w/out"]), _run_event("r5", 40, ["w/raw"], ["w/other"])]
    await _ingest(db, after_deletion, FIRST + timedelta(hours=2), batched)
    back = await asset(db, "w/raw")
    assert (back.deleted_at, back.updated_at) == (None, FIRST + timedelta(hours=2))


async def test_an_asset_is_named_even_when_it_was_not_read_before(db: Database) -> None:
    """Another transaction may create an asset between the lookup and the upsert: the row is locked but not
    returned, and its id is read."""
    await _ingest(db, [_run_event("r1", 10, ["w/raw"], ["w/out"])], FIRST, batched=False)
    stored = await asset(db, "w/raw")
    row = _values("w/raw", AssetDescription(key="w/raw"), START, FIRST + timedelta(hours=1))
    async with db.transaction() as session:
        assert await _upsert_described(session, [row], stored={}) == {"w/raw": stored.id}
    assert (await asset(db, "w/raw")).updated_at == FIRST


async def test_identifiers_are_looked_up_in_one_statement_whatever_their_number(db: Database, dialect: str) -> None:
    keys = [f"s3://lookups/file_{number:03}" for number in range(300)]
    async with db.transaction() as session:
        ids = await ensure_assets(session, keys[:150], datetime.now(UTC))
    with caught_statements(db.engine, lambda statement: "asset_aliases" in statement) as caught:
        async with db.transaction() as session:
            few = await lookup_identifiers(session, keys[:3])
            many = await lookup_identifiers(session, keys)
    assert {(found.identifier, found.asset_id) for found in few} == {(key, ids[key]) for key in keys[:3]}
    assert {(found.identifier, found.asset_id) for found in many} == {(key, ids[key]) for key in keys[:150]}
    assert len(caught) == 2
    if dialect == "postgresql":
        # One array parameter: the same statement for 3 identifiers and for 300, prepared and planned once.
        assert caught[0][0] == caught[1][0]
