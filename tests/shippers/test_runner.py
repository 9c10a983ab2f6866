"""ShipperRunner: ships the feed after the cursor, advances only once a batch is accepted, retries with backoff,
parks a batch that failed `park_after_runs` runs, and survives an outage of its target and a crash of its own.

The outage and crash tests ship to a real gateway (a second `asset-gateway serve`) behind a receiver on loopback
that refuses or holds requests; afterwards the second gateway holds what the first holds, and posting every
delivered event once more changes nothing there.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import yaml
from sqlalchemy import select

from gateway.database import Database
from gateway.orm import Asset, ParkedBatch, ShipperState
from gateway.settings import Settings
from gateway.store import changes as feed
from shippers import base
from shippers import runner as runner_module
from shippers.base import AssetShipper, ShipperConfig, register_shipper
from shippers.records import ChangeBatch
from tests.ingest.support import (
    APPLES,
    DBT_RUN,
    fill_templates,
    gateway_environment,
    gateway_executable,
    load_documents,
    run_gateway_command,
    running_gateway,
)
from tests.shippers import (
    Receiver,
    catalog,
    change_count,
    differences,
    ingest,
    make_runner,
    ol_run_id,
    post_again,
    settled,
)

# --- a shipper the test controls ----------------------------------------------------------------------------------


class ScriptedConfig(ShipperConfig):
    fail_first: int = 0
    poison: str | None = None


class ScriptedShipper(AssetShipper):
    """Refuses its first `fail_first` batches and every batch holding the asset `poison`; keeps what it accepts."""

    kind = "test-scripted"
    config_class = ScriptedConfig
    config: ScriptedConfig
    accepted: ClassVar[list[ChangeBatch]] = []
    calls: ClassVar[int] = 0

    async def ship(self, batch: ChangeBatch) -> None:
        type(self).calls += 1
        if type(self).calls <= self.config.fail_first:
            raise ConnectionError(f"target unavailable (call {type(self).calls})")
        if self.config.poison and any(asset.key == self.config.poison for asset in batch.assets):
            raise ValueError(f"the target refuses {self.config.poison}")
        type(self).accepted.append(batch)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedShipper]:
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    register_shipper(ScriptedShipper)
    ScriptedShipper.accepted = []
    ScriptedShipper.calls = 0
    return ScriptedShipper


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays the runner asks for (it does not wait for them)."""
    asked: list[float] = []

    async def sleep(delay: float) -> None:
        asked.append(delay)

    # The runner's own view of asyncio only: everything else (the test's bounded waits) still sleeps.
    monkeypatch.setattr(runner_module, "asyncio", SimpleNamespace(sleep=sleep, Lock=asyncio.Lock))
    return asked


async def shipper_state(db: Database, name: str) -> ShipperState:
    async with db.session() as session:
        state = await session.get(ShipperState, name)
        assert state is not None
        return state


async def loaded(db: Database, now: datetime) -> feed.Cursor:
    # One event per transaction, as producers post them: the feed is spread over many transactions and pages,
    # which the parking and outage cases below rely on (a batch writes each asset once, in one go).
    documents = [*load_documents(APPLES), *fill_templates(load_documents(DBT_RUN))]
    await ingest(db, [[document] for document in documents], now)
    return await settled(db)


def shipped_keys(batches: list[ChangeBatch]) -> set[str]:
    return {asset.key for batch in batches for asset in batch.assets}


# --- retries, cursor, parking ---------------------------------------------------------------------------------------


async def test_retries_with_backoff_and_advances_only_once_accepted(
    db: Database, now: datetime, scripted: type[ScriptedShipper], sleeps: list[float]
) -> None:
    head = await loaded(db, now)
    total = await change_count(db)
    runner = make_runner(db, "scripted", "test-scripted", {"fail_first": 3}, batch_size=40, max_attempts=3)
    runner.retry_base_seconds = 0.25

    failed = await runner.run()
    state = await shipper_state(db, "scripted")
    assert failed.error is not None
    assert "target unavailable (call 3)" in failed.error
    assert (failed.shipped, failed.batches) == (0, 0)
    assert (state.cursor_txid, state.cursor_id) == feed.START, "nothing accepted: the cursor stays"
    assert state.failures == 1
    assert state.last_error == failed.error
    assert state.last_success_at is None
    assert sleeps == [0.25, 0.5], "exponential backoff between the attempts of a run"

    shipped = await runner.run()
    state = await shipper_state(db, "scripted")
    assert shipped.error is None
    assert shipped.shipped == total
    assert shipped.batches == -(-total // 40)
    assert (state.cursor_txid, state.cursor_id) == head
    assert (state.shipped, state.failures, state.last_error) == (total, 0, None)
    assert state.last_success_at is not None
    assert len(scripted.accepted) == shipped.batches
    assert sum(batch.changes for batch in scripted.accepted) == total

    assert (await runner.run()).shipped == 0, "nothing new: nothing shipped"


async def test_a_batch_failing_every_run_is_parked_and_the_feed_moves_on(
    db: Database, now: datetime, scripted: type[ScriptedShipper], sleeps: list[float]
) -> None:
    await loaded(db, now)
    total = await change_count(db)
    # The poison: an asset whose changes all lie in one page of the feed (not the first); the run is stuck before it.
    async with db.session() as session:
        pages = []
        cursor = feed.START
        while changes := (await feed.read_changes(session, cursor, 25)).changes:
            pages.append(changes)
            cursor = (changes[-1].txid, changes[-1].id)
        page_of: dict[int, set[int]] = {}
        for number, page in enumerate(pages):
            for change in page:
                if change.entity == "asset":
                    page_of.setdefault(change.entity_id, set()).add(number)
        poison_id, (page_number,) = next((i, found) for i, found in page_of.items() if len(found) == 1 and found != {0})
        poison = (await session.scalars(select(Asset.key).where(Asset.id == poison_id))).one()
    before, poisoned = pages[page_number - 1], pages[page_number]
    stuck_at = (before[-1].txid, before[-1].id)
    shipped_before = sum(len(page) for page in pages[:page_number])
    runner = make_runner(
        db, "scripted", "test-scripted", {"poison": poison}, batch_size=25, max_attempts=2, park_after_runs=3
    )

    for run in (1, 2):
        report = await runner.run()
        state = await shipper_state(db, "scripted")
        assert report.error == f"ValueError: the target refuses {poison}", run
        assert report.parked == 0
        assert report.shipped == (shipped_before if run == 1 else 0)
        assert (state.cursor_txid, state.cursor_id) == stuck_at, "stuck before the refused batch"
        assert state.failures == run
        assert state.last_error == report.error

    report = await runner.run()
    state = await shipper_state(db, "scripted")
    assert report.parked == 1
    assert report.error is None
    assert report.shipped == total - shipped_before - len(poisoned), "the rest of the feed went on"
    assert (state.cursor_txid, state.cursor_id) == (pages[-1][-1].txid, pages[-1][-1].id)
    assert state.failures == 0
    assert state.shipped == total - len(poisoned), "parked changes are not counted as shipped"
    async with db.session() as session:
        (parked,) = (await session.scalars(select(ParkedBatch))).all()
    assert (parked.from_txid, parked.from_id) == (poisoned[0].txid, poisoned[0].id)
    assert (parked.to_txid, parked.to_id) == (poisoned[-1].txid, poisoned[-1].id)
    assert (parked.changes, parked.attempts) == (len(poisoned), 3 * 2)
    assert poison in parked.error
    assert poison not in shipped_keys(scripted.accepted)


async def test_parking_is_no_success(db: Database, now: datetime, scripted: type[ScriptedShipper]) -> None:
    """A target that refuses everything, park_after_runs=1: every batch is parked, the error stays visible, and
    no success is recorded."""
    await loaded(db, now)
    runner = make_runner(
        db, "scripted", "test-scripted", {"fail_first": 1000}, batch_size=60, max_attempts=1, park_after_runs=1
    )
    report = await runner.run()
    state = await shipper_state(db, "scripted")
    assert report.parked == -(-(await change_count(db)) // 60)
    assert report.shipped == 0
    assert state.last_error is not None
    assert "target unavailable" in state.last_error
    assert state.last_success_at is None
    assert state.shipped == 0


async def test_full_export_ships_every_entity_then_continues_from_the_head(
    db: Database, now: datetime, scripted: type[ScriptedShipper]
) -> None:
    head = await loaded(db, now)
    runner = make_runner(db, "scripted", "test-scripted", {}, batch_size=30)
    expected = await catalog(db)

    report = await runner.run(full=True)
    state = await shipper_state(db, "scripted")
    assert report.error is None
    assert report.full
    entities = [expected[part] for part in ("assets", "jobs", "runs", "live_edges", "retired_edges")]
    assert report.shipped == sum(len(part) for part in entities)
    assert shipped_keys(scripted.accepted) == set(expected["assets"])
    assert {run.run_id for batch in scripted.accepted for run in batch.runs} == set(expected["runs"])
    assert {(j.namespace, j.name) for batch in scripted.accepted for j in batch.jobs} == set(expected["jobs"])
    assert (state.cursor_txid, state.cursor_id) == head, "the cursor jumps to the head read before the export"

    scripted.accepted.clear()
    await ingest(db, [[_dataset_event("test://after/full", now)]], now + timedelta(minutes=1))
    await settled(db)
    again = await runner.run()
    assert again.shipped == 1
    assert shipped_keys(scripted.accepted) == {"test://after/full"}


async def test_filters_choose_the_assets_and_the_runs_that_touch_them(
    db: Database, now: datetime, scripted: type[ScriptedShipper]
) -> None:
    await loaded(db, now)
    runner = make_runner(
        db, "scripted", "test-scripted", {}, batch_size=500, filters={"namespace_prefix": "grandmas.kitchen"}
    )
    report = await runner.run()
    assert report.error is None
    keys = shipped_keys(scripted.accepted)
    assert keys
    assert all(key.startswith("grandmas.kitchen/") for key in keys)
    for batch in scripted.accepted:
        for run in batch.runs:
            touched = [touch.key for touch in (*run.inputs, *run.outputs)]
            assert not touched or any(key.startswith("grandmas.kitchen/") for key in touched)
    shipped_runs = {run.run_id for batch in scripted.accepted for run in batch.runs}
    assert shipped_runs
    assert len(shipped_runs) < len((await catalog(db))["runs"]), "runs touching only other assets stay behind"


def _dataset_event(key: str, now: datetime, number: int = 0) -> dict[str, Any]:
    namespace, _, name = key.rpartition("/")
    return {
        "eventTime": (now + timedelta(seconds=number)).isoformat(),
        "producer": "https://example.com/tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {
            "namespace": namespace,
            "name": name,
            "facets": {
                "documentation": {"description": f"dataset number {number}"},
                "ownership": {"owners": [{"name": f"team:owners-{number % 3}"}]},
                "tags": {"tags": [{"key": "tier", "value": str(number % 2)}]},
                "schema": {"fields": [{"name": "id", "type": "int"}, {"name": f"f{number}", "type": "string"}]},
            },
        },
    }


# --- a real target: outage and crash --------------------------------------------------------------------------------


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[tuple[str, Database]]:
    """A second gateway (`asset-gateway serve` on SQLite): its URL and its database."""
    with running_gateway(tmp_path / "target", scheduler_enabled="false") as url:
        database = Database(Settings(data_dir=tmp_path / "target"))
        try:
            yield url, database
        finally:
            await database.dispose()


async def test_outage_of_the_target_loses_nothing_and_duplicates_change_nothing(
    db: Database, now: datetime, target: tuple[str, Database], sleeps: list[float]
) -> None:
    """The target answers 503 to its first 5 requests and to a few in the middle of batches; the runner retries
    (2 attempts a run) and ends failed runs; later runs go on from the cursor."""
    await loaded(db, now)
    url, target_db = target
    refused = {1, 2, 3, 4, 5, 14, 15, 37, 38, 60}
    async with Receiver(forward_to=url, refuse=lambda number: number in refused) as receiver:
        transport = {"type": "http", "url": receiver.url, "timeout": 30, "retry": {"total": 0}}
        runner = make_runner(db, "outage", "openlineage", {"transport": transport}, batch_size=40, max_attempts=2)
        reports = []
        try:
            while len(reports) < 12:
                reports.append(await runner.run())
                if reports[-1].error is None:
                    break
        finally:
            await runner.aclose()
    assert reports[-1].error is None, reports
    failed = [report for report in reports if report.error]
    assert len(failed) >= 3, "the outage should fail several runs"
    assert all("503" in str(report.error) for report in failed), failed
    assert receiver.refused == len(refused)
    assert sum(report.shipped for report in reports) == await change_count(db)
    assert len(set(receiver.accepted)) < len(receiver.accepted), "batches cut by a refusal were sent again"

    expected = await catalog(db, ol_run_id)
    assert await catalog(target_db) == expected, differences(expected, await catalog(target_db))
    reports_again = await post_again(url, receiver.accepted)
    assert all(report["accepted"] == 0 for report in reports_again)
    assert await catalog(target_db) == expected, "posting every delivered event once more changes nothing"


async def test_shipper_killed_mid_export_resumes_without_losing_a_change(
    db: Database, settings: Settings, now: datetime, target: tuple[str, Database], tmp_path: Path
) -> None:
    """`asset-gateway ship` against a target that holds the 25th request (mid-batch: 10 events a batch) is
    SIGKILLed while it waits; after a restart every asset is at the target, with the held batch sent again."""
    await ingest(db, [[_dataset_event(f"test://crash/dataset-{n:03}", now, n) for n in range(100)]], now)
    await settled(db)
    assert await change_count(db) == 100, "one change (one DatasetEvent) per asset"
    url, target_db = target
    config = tmp_path / "shippers.yaml"
    async with Receiver(forward_to=url, hold_at=25) as receiver:
        transport = {"type": "http", "url": receiver.url, "timeout": 60}
        shipper = {"name": "slow", "kind": "openlineage", "batch_size": 10, "config": {"transport": transport}}
        config.write_text(yaml.safe_dump({"shippers": [shipper]}))
        environment = gateway_environment(settings.data_dir, database_url=settings.resolved_database_url)
        process = await asyncio.create_subprocess_exec(
            str(gateway_executable()),
            "--config",
            str(config),
            "ship",
            "slow",
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            held = asyncio.create_task(receiver.held.wait())
            exited = asyncio.create_task(process.wait())
            done, _ = await asyncio.wait({held, exited}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            assert held in done, f"the shipper never reached the 25th request: {await _output(process)}"
            exited.cancel()
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
            await process.wait()
        assert process.returncode == -signal.SIGKILL
        state = await shipper_state(db, "slow")
        assert state.shipped == 20, "two batches were accepted before the crash, the third was not"
        receiver.hold_at = None
        receiver.release.set()

        code, output = await run_gateway_command("--config", str(config), "ship", "slow", environment=environment)
        assert code == 0, output
        assert "slow: shipped 80 changes in 8 batches, 0 parked" in output

    keys = [json.loads(body)["dataset"]["name"] for body in receiver.accepted]
    assert set(keys) == {f"dataset-{n:03}" for n in range(100)}, "every change arrived"
    assert len(keys) > len(set(keys)), "the batch cut by the crash was sent again"
    expected = await catalog(db)
    assert await catalog(target_db) == expected, differences(expected, await catalog(target_db))
    await post_again(url, receiver.accepted)
    assert await catalog(target_db) == expected, "posting every delivered event once more changes nothing"


async def _output(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None or process.stdout is None:
        return "(still running)"
    return (await process.stdout.read()).decode(errors="replace")
