"""Shippers in the GraphQL API (`shippers`, `runShipper`) and on the command line (`asset-gateway ship`), and
third-party shippers registered through the `asset_gateway.shippers` entry-point group."""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import re
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.app import create_app
from gateway.database import Database
from gateway.settings import Settings
from gateway.store import changes as feed
from shippers import base
from shippers.base import AssetShipper, ShipperConfig, ShipperSpec, create_shipper, register_shipper, shipper_kinds
from shippers.records import ChangeBatch
from tests.helpers import error_codes, graphql, graphql_data
from tests.ingest.support import (
    APPLES,
    gateway_environment,
    gateway_executable,
    load_documents,
    run_gateway_command,
)
from tests.shippers import catalog, change_count, ingest, make_runner, read_lines, settled

SHIPPERS = """{ shippers { name kind intervalSeconds cron cursor lagChanges lagSeconds shipped lastRunAt
  lastSuccessAt lastError failedRuns parkedBatches { fromCursor toCursor changes attempts error parkedAt } } }"""
RUN = """mutation($name: String!, $full: Boolean!) {
  runShipper(name: $name, full: $full) { shipped batches parked error full } }"""


def shipper_settings(tmp_path: Path) -> list[dict[str, Any]]:
    """A file shipper that works, one whose target always fails (its path is a folder) and is parked at once,
    and one that fails without being parked yet."""
    return [
        {"name": "to-file", "kind": "file", "interval": "1h", "config": {"path": str(tmp_path / "out.ndjson")}},
        {
            "name": "parked",
            "kind": "file",
            "cron": "0 * * * *",
            "batch_size": 10_000,
            "max_attempts": 1,
            "park_after_runs": 1,
            "config": {"path": str(tmp_path)},
        },
        {"name": "failing", "kind": "file", "max_attempts": 1, "config": {"path": str(tmp_path)}},
    ]


@pytest.fixture
async def api(settings: Settings, tmp_path: Path, now: datetime) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    configured = settings.model_copy(update={"shippers": shipper_settings(tmp_path), "scheduler_enabled": False})
    app = create_app(configured)
    db: Database = app.state.db
    await ingest(db, [load_documents(APPLES)], now)
    await settled(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        yield client, db
    for runner in app.state.shippers.values():
        await runner.aclose()
    await db.dispose()


async def shippers_by_name(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {shipper["name"]: shipper for shipper in (await graphql_data(client, SHIPPERS))["shippers"]}


async def test_shippers_show_cursor_lag_runs_failures_and_parked_batches(
    api: tuple[httpx.AsyncClient, Database], tmp_path: Path
) -> None:
    client, db = api
    total = await change_count(db)
    async with db.session() as session:
        head = await feed.feed_head(session)
        first = (await feed.read_changes(session, feed.START, 1)).changes[0]

    before = await shippers_by_name(client)
    assert set(before) == {"to-file", "parked", "failing"}
    for shipper in before.values():
        assert shipper["kind"] == "file"
        assert (shipper["cursor"], shipper["lagChanges"], shipper["shipped"]) == ("0:0", total, 0)
        assert shipper["lagSeconds"] is not None
        assert shipper["lagSeconds"] >= 0
        assert (shipper["lastRunAt"], shipper["lastSuccessAt"], shipper["lastError"]) == (None, None, None)
        assert (shipper["failedRuns"], shipper["parkedBatches"]) == (0, [])
    assert (before["to-file"]["intervalSeconds"], before["to-file"]["cron"]) == (3600.0, None)
    assert (before["parked"]["intervalSeconds"], before["parked"]["cron"]) == (None, "0 * * * *")

    report = (await graphql_data(client, RUN, {"name": "to-file", "full": False}))["runShipper"]
    assert report == {"shipped": total, "batches": -(-total // 500), "parked": 0, "error": None, "full": False}
    report = (await graphql_data(client, RUN, {"name": "parked", "full": False}))["runShipper"]
    assert (report["shipped"], report["parked"], report["error"]) == (0, 1, None)
    report = (await graphql_data(client, RUN, {"name": "failing", "full": False}))["runShipper"]
    assert report["error"].startswith("IsADirectoryError")

    after = await shippers_by_name(client)
    shipped = after["to-file"]
    assert shipped["cursor"] == f"{head[0]}:{head[1]}"
    assert (shipped["lagChanges"], shipped["lagSeconds"], shipped["shipped"]) == (0, None, total)
    assert shipped["lastSuccessAt"] is not None
    assert (shipped["lastError"], shipped["failedRuns"], shipped["parkedBatches"]) == (None, 0, [])
    assert len(read_lines(tmp_path / "out.ndjson")) > 0

    parked = after["parked"]
    assert (parked["cursor"], parked["lagChanges"], parked["shipped"]) == (f"{head[0]}:{head[1]}", 0, 0)
    assert parked["lastError"].startswith("IsADirectoryError")
    assert parked["lastSuccessAt"] is None, "parking a batch is no success"
    assert parked["lastRunAt"] is not None
    (batch,) = parked["parkedBatches"]
    assert batch["fromCursor"] == f"{first.txid}:{first.id}"
    assert batch["toCursor"] == f"{head[0]}:{head[1]}"
    assert (batch["changes"], batch["attempts"]) == (total, 1)
    assert batch["error"].startswith("IsADirectoryError")
    assert batch["parkedAt"]

    failing = after["failing"]
    assert (failing["cursor"], failing["lagChanges"], failing["shipped"]) == ("0:0", total, 0)
    assert failing["failedRuns"] == 1
    assert failing["lastError"].startswith("IsADirectoryError")
    assert (failing["lastSuccessAt"], failing["parkedBatches"]) == (None, [])

    full = (await graphql_data(client, RUN, {"name": "to-file", "full": True}))["runShipper"]
    entities = await catalog(db)
    assert full["full"] is True
    assert full["error"] is None
    assert full["shipped"] == sum(len(part) for part in entities.values())


async def test_run_shipper_with_an_unknown_name_is_not_found(api: tuple[httpx.AsyncClient, Database]) -> None:
    client, _ = api
    body = await graphql(client, RUN, {"name": "nope", "full": False})
    assert error_codes(body) == ["NOT_FOUND"]
    assert "no shipper named 'nope'; configured: failing, parked, to-file" in body["errors"][0]["message"]


# --- the command line ---------------------------------------------------------------------------------------------


def write_config(path: Path, shippers: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"shippers": shippers}))
    return path


def run_with_a_terminal(arguments: list[str], environment: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI with its stderr on a pseudo-terminal (as a person sees it); (exit code, stdout, terminal)."""
    main, secondary = pty.openpty()
    try:
        finished = subprocess.run(
            [str(gateway_executable()), *arguments],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=90,
            check=False,
        )
    finally:
        os.close(secondary)
    seen = b""
    try:
        while chunk := os.read(main, 65536):
            seen += chunk
    except OSError:
        pass  # the terminal's other end is closed: all read
    finally:
        os.close(main)
    return finished.returncode, finished.stdout.decode(), seen.decode(errors="replace")


async def test_ship_command_shows_progress_and_a_summary(
    db: Database, settings: Settings, tmp_path: Path, now: datetime
) -> None:
    await ingest(db, [load_documents(APPLES)], now)
    await settled(db)
    total = await change_count(db)
    config = write_config(tmp_path / "config.yaml", shipper_settings(tmp_path))
    environment = gateway_environment(settings.data_dir, database_url=settings.resolved_database_url)

    code, output, terminal = await asyncio.to_thread(
        run_with_a_terminal, ["--config", str(config), "ship", "to-file"], environment
    )
    assert code == 0, output + terminal
    assert output.strip() == f"to-file: shipped {total} changes in 1 batches, 0 parked"
    assert "shipping to-file" in terminal
    assert "[####" in terminal
    assert "100%" in terminal
    assert len(read_lines(tmp_path / "out.ndjson")) > 0

    code, output = await run_gateway_command("--config", str(config), "ship", "to-file", environment=environment)
    assert code == 0, output
    assert "to-file: shipped 0 changes in 0 batches, 0 parked" in output

    code, output = await run_gateway_command(
        "--config", str(config), "ship", "to-file", "--full", environment=environment
    )
    entities = sum(len(part) for part in (await catalog(db)).values())
    assert code == 0, output
    assert f"to-file: shipped {entities} entities in 4 batches, 0 parked" in output, "a batch per kind of entity"

    code, output = await run_gateway_command("--config", str(config), "ship", "failing", environment=environment)
    assert code == 1, output
    assert "Error: failing stopped: IsADirectoryError" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("dialect", ["sqlite"])
@pytest.mark.parametrize(
    ("shipper", "message"),
    [
        (
            {"kind": "file", "config": {}},
            r"shipper 'bad' \(file\): 1 validation error for FileShipperConfig\npath\n  Field required",
        ),
        ({"kind": "nosuch"}, r"shipper 'bad': unknown kind 'nosuch'; known: .*file.*openlineage"),
        (
            {"kind": "openlineage", "config": {"transport": {"type": "http"}}},
            r"shipper 'bad' \(openlineage\): RuntimeError: `url` key not passed to HttpConfig",
        ),
        (
            {"kind": "openlineage", "config": {"transport": {"type": "no-such-transport"}}},
            r"shipper 'bad' \(openlineage\): ImportError: Failed to import no-such-transport",
        ),
        ({"kind": "file", "interval": "5m", "cron": "0 * * * *"}, r"shipper 'bad': give interval or cron, not both"),
        ({"kind": "file", "batch_size": 0}, r"batch_size\n  Input should be greater than or equal to 1"),
    ],
    ids=["config-missing", "unknown-kind", "transport-without-url", "unknown-transport", "two-schedules", "batch"],
)
async def test_bad_shipper_settings_are_a_usage_error(
    settings: Settings, tmp_path: Path, shipper: dict[str, Any], message: str
) -> None:
    config = write_config(tmp_path / "config.yaml", [{"name": "bad", "config": {"path": "x"}, **shipper}])
    environment = gateway_environment(settings.data_dir, database_url=settings.resolved_database_url)
    code, output = await run_gateway_command("--config", str(config), "ship", "bad", environment=environment)
    assert code == 2, output
    assert "Error: invalid shipper settings: " in output
    assert re.search(message, output), output
    assert "Traceback" not in output


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_ship_command_with_an_unknown_name_is_a_usage_error(settings: Settings, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", shipper_settings(tmp_path))
    environment = gateway_environment(settings.data_dir, database_url=settings.resolved_database_url)
    code, output = await run_gateway_command("--config", str(config), "ship", "nope", environment=environment)
    assert code == 2, output
    assert "no shipper named 'nope'; configured: failing, parked, to-file" in output


# --- third-party shippers -----------------------------------------------------------------------------------------


class EchoConfig(ShipperConfig):
    prefix: str = "echo"


class EchoShipper(AssetShipper):
    kind = "test-echo"
    config_class = EchoConfig
    config: EchoConfig

    def __init__(self, name: str, config: ShipperConfig) -> None:
        super().__init__(name, config)
        self.seen: list[str] = []

    async def ship(self, batch: ChangeBatch) -> None:
        self.seen.extend(f"{self.config.prefix}:{asset.key}" for asset in batch.assets)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))


PLUGIN = '''
from pathlib import Path

from shippers.base import AssetShipper, ShipperConfig


class CountingConfig(ShipperConfig):
    path: str


class CountingShipper(AssetShipper):
    """Writes how many changes each batch held."""

    kind = "counting"
    config_class = CountingConfig

    async def ship(self, batch):
        with Path(self.config.path).open("a") as handle:
            handle.write(f"{batch.changes}\\n")
'''


def install_plugin(folder: Path) -> Path:
    """A distribution on the path that declares shippers in the entry-point group, as an installed package does:
    one that loads and one whose module does not exist."""
    folder.mkdir()
    (folder / "agw_counting_shipper.py").write_text(PLUGIN)
    info = folder / "agw_counting_shipper-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: agw-counting-shipper\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{base.ENTRY_POINT_GROUP}]\ncounting = agw_counting_shipper:CountingShipper\n"
        "missing = agw_no_such_module:Shipper\n"
    )
    return folder


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_a_shipper_registered_in_code_runs_like_the_built_in_ones(
    db: Database, now: datetime, registry: None
) -> None:
    register_shipper(EchoShipper)
    assert shipper_kinds()["test-echo"] is EchoShipper
    spec = ShipperSpec(name="echo", kind="test-echo", config={"prefix": "seen"})
    shipper = create_shipper(spec)
    assert isinstance(shipper, EchoShipper)
    assert shipper.config == EchoConfig(prefix="seen")
    with pytest.raises(ValueError, match=r"shipper 'echo' \(test-echo\): 1 validation error for EchoConfig"):
        create_shipper(ShipperSpec(name="echo", kind="test-echo", config={"unknown": 1}))

    await ingest(db, [load_documents(APPLES)], now)
    runner = make_runner(db, "echo", "test-echo", {"prefix": "seen"})
    assert (await runner.run()).error is None
    assert isinstance(runner.shipper, EchoShipper)
    assert "seen:grandmas.kitchen/apples" in runner.shipper.seen


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_a_shipper_declared_by_an_installed_package_is_found_by_its_entry_point(
    db: Database,
    settings: Settings,
    now: datetime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins = install_plugin(tmp_path / "plugins")
    monkeypatch.syspath_prepend(str(plugins))
    with caplog.at_level(logging.ERROR, logger="gateway.shippers"):
        kinds = shipper_kinds()
    assert kinds["counting"].__module__ == "agw_counting_shipper"
    assert "missing" not in kinds
    assert "cannot load shipper plugin agw_no_such_module:Shipper" in caplog.text, "a broken plugin is reported"

    await ingest(db, [load_documents(APPLES)], now)
    total = await change_count(db)
    counts = tmp_path / "counts.txt"
    config = write_config(
        tmp_path / "config.yaml",
        [{"name": "counted", "kind": "counting", "batch_size": 10, "config": {"path": str(counts)}}],
    )
    environment = gateway_environment(settings.data_dir, database_url=settings.resolved_database_url)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugins), environment.get("PYTHONPATH")]))
    code, output = await run_gateway_command("--config", str(config), "ship", "counted", environment=environment)
    assert code == 0, output
    assert f"counted: shipped {total} changes in {-(-total // 10)} batches, 0 parked" in output
    assert sum(int(line) for line in counts.read_text().split()) == total
