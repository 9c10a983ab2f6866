"""Descriptions that change nothing leave the asset's row as it is (no rewrite, no change in the feed), and still
name the asset: on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from gateway.orm import Change, RunAsset
from gateway.store.descriptions import AssetDescription, _upsert_described, _values
from tests.store.factories import asset

START = datetime(2026, 3, 1, tzinfo=UTC)


def _run_event(run_id: str, minute: int, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    def dataset(key: str) -> dict[str, str]:
        namespace, name = key.split("/", 1)
        return {"namespace": namespace, "name": name}

    return {
        "eventType": "COMPLETE",
        "eventTime": (START + timedelta(minutes=minute)).isoformat(),
        "producer": "https://github.com/example/asset-gateway-tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "tests", "name": "load"},
        "inputs": [dataset(key) for key in inputs],
        "outputs": [dataset(key) for key in outputs],
    }


async def _changes_of(db: Database, asset_id: int) -> int:
    async with db.session() as session:
        of_the_asset = (Change.entity == "asset", Change.entity_id == asset_id)
        statement = select(func.count()).select_from(Change).where(*of_the_asset)
        return int((await session.execute(statement)).scalar_one())


async def test_an_older_mention_leaves_the_asset_as_it_was(db: Database) -> None:
    first = datetime(2026, 4, 1, tzinfo=UTC)
    report = await ingest_documents(db, [_run_event("r1", 10, ["w/raw"], ["w/out"])], first)
    assert report.accepted == 1
    raw = await asset(db, "w/raw")
    assert (raw.described_at, raw.updated_at) == (START + timedelta(minutes=10), first)
    changes = await _changes_of(db, raw.id)
    assert changes > 0

    # A run that read it earlier, reported late: nothing about the asset is new.
    for batch in ([_run_event("r0", 5, ["w/raw"], ["w/other"])], [_run_event("r2", 4, ["w/raw"], ["w/third"])]):
        report = await ingest_documents(db, batch, first + timedelta(hours=1))
        assert report.accepted == 1

    again = await asset(db, "w/raw")
    assert (again.id, again.described_at, again.updated_at) == (raw.id, raw.described_at, first)
    assert await _changes_of(db, raw.id) == changes
    async with db.session() as session:
        readers = (await session.execute(select(RunAsset.run_id).where(RunAsset.asset_id == raw.id))).all()
    assert len(readers) == 3, "each run's input names the same asset"

    # A newer mention moves its time, as before.
    await ingest_documents(db, [_run_event("r3", 20, ["w/raw"], ["w/out"])], first + timedelta(hours=2))
    newer = await asset(db, "w/raw")
    assert (newer.described_at, newer.updated_at) == (START + timedelta(minutes=20), first + timedelta(hours=2))


async def test_an_unchanged_asset_is_named_even_when_its_id_was_not_read_before(db: Database) -> None:
    """Another transaction may create an asset between the lookup and the upsert: the row is locked but not
    returned, and its id is read."""
    now = datetime(2026, 4, 1, tzinfo=UTC)
    await ingest_documents(db, [_run_event("r1", 10, ["w/raw"], ["w/out"])], now)
    stored = await asset(db, "w/raw")
    row = _values("w/raw", AssetDescription(key="w/raw"), START, now + timedelta(hours=1))
    async with db.transaction() as session:
        assert await _upsert_described(session, [row], known_ids={}) == {"w/raw": stored.id}
    assert (await asset(db, "w/raw")).updated_at == now
