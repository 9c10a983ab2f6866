"""The command line: schema, migrate, demo, settings from --config and the environment, and its errors."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from gateway.app import create_app
from gateway.cli import main
from gateway.migrate import head_revision
from gateway.settings import Settings
from schema import build_schema
from tests.helpers import free_port

CLI = Path(sys.executable).parent / "asset-gateway"


@pytest.fixture(autouse=True)
def no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings under test come from each test alone, not from the environment it runs in."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)


def succeeded(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def assert_clean_failure(result: Result, exit_code: int, *fragments: str) -> None:
    """Failed with a message: no traceback, no exception other than the exit."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


def count_rows(database: Path, table: str) -> int:
    with closing(sqlite3.connect(database)) as connection:
        (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


def readyz(settings: Settings) -> httpx.Response:
    async def ask() -> httpx.Response:
        app = create_app(settings)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                return await client.get("/readyz")
        finally:
            await app.state.db.dispose()

    return asyncio.run(ask())


def test_schema_prints_the_federated_sdl() -> None:
    result = succeeded(invoke("schema"))
    assert 'type Asset @key(fields: "key")' in result.output
    assert 'type Execution @key(fields: "runId")' in result.output
    assert 'type Job @key(fields: "namespace name")' in result.output
    assert result.output.strip() == build_schema().as_str().strip()


def test_migrate_a_fresh_sqlite_file_makes_it_ready(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "fresh.db"
    url = f"sqlite+aiosqlite:///{path}"
    settings = Settings(data_dir=tmp_path, database_url=url, auto_migrate=False)
    assert not path.exists()
    before = readyz(settings)
    assert before.status_code == 503
    assert "asset-gateway migrate" in before.json()["reason"]

    result = succeeded(invoke("--database-url", url, "migrate"))
    assert result.output.strip() == f"migrated {url}"
    after = readyz(settings)
    assert after.status_code == 200
    assert after.json() == {"status": "ready", "migration": head_revision()}
    # Migrating again is harmless.
    succeeded(invoke("--database-url", url, "migrate"))
    assert readyz(settings).status_code == 200


def test_demo_twice_keeps_assets_and_adds_runs(tmp_path: Path) -> None:
    env = {"GATEWAY_DATA_DIR": str(tmp_path)}
    first = succeeded(invoke("demo", env=env))
    assert first.output.startswith("loaded 12 assets and 30 executions into sqlite+aiosqlite:///")
    database = tmp_path / "gateway.db"
    assert (count_rows(database, "assets"), count_rows(database, "runs")) == (12, 30)
    jobs = count_rows(database, "jobs")
    edges = count_rows(database, "lineage_edges")

    second = succeeded(invoke("demo", "--days", "2", env=env))
    assert "loaded 12 assets and 20 executions" in second.output
    assert count_rows(database, "assets") == 12
    assert count_rows(database, "runs") == 50
    assert count_rows(database, "jobs") == jobs
    assert count_rows(database, "lineage_edges") == edges


def write_config(path: Path, **values: Any) -> Path:
    path.write_text("".join(f"{name}: {value}\n" for name, value in values.items()))
    return path


def test_config_file_sets_values(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gateway.yaml", data_dir=tmp_path / "from-yaml", port=4999)
    result = succeeded(invoke("--config", str(config), "migrate"))
    assert result.output.strip() == f"migrated sqlite+aiosqlite:///{tmp_path / 'from-yaml' / 'gateway.db'}"
    assert (tmp_path / "from-yaml" / "gateway.db").is_file()
    # GATEWAY_CONFIG names the file too.
    other = write_config(tmp_path / "other.yaml", data_dir=tmp_path / "from-variable")
    succeeded(invoke("migrate", env={"GATEWAY_CONFIG": str(other)}))
    assert (tmp_path / "from-variable" / "gateway.db").is_file()


def test_environment_overrides_config_file_and_options_override_both(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gateway.yaml", data_dir=tmp_path / "from-yaml")
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "from-env")}
    succeeded(invoke("--config", str(config), "migrate", env=env))
    assert (tmp_path / "from-env" / "gateway.db").is_file()
    assert not (tmp_path / "from-yaml").exists()

    explicit = tmp_path / "explicit.db"
    succeeded(invoke("--config", str(config), "--database-url", f"sqlite+aiosqlite:///{explicit}", "migrate", env=env))
    assert explicit.is_file()
    assert not (tmp_path / "from-yaml").exists()


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--database-url", "mysql://db/gateway"], {}, "database_url must start with"),
        (["--database-url", "postgresql+asyncpg://user@host:notaport/db"], {}, "notaport"),
        ([], {"GATEWAY_DATABASE_URL": "oracle://db"}, "database_url must start with"),
        ([], {"GATEWAY_PORT": "many"}, "port"),
    ],
)
def test_invalid_settings_are_a_usage_error(
    args: list[str], env: dict[str, str], fragment: str, tmp_path: Path
) -> None:
    for command in ("migrate", "demo", "schema", "serve"):
        result = invoke(*args, command, env={"GATEWAY_DATA_DIR": str(tmp_path), **env})
        assert_clean_failure(result, 2, "invalid settings", fragment)
    assert not (tmp_path / "gateway.db").exists()


def test_bad_config_files_are_a_usage_error(tmp_path: Path) -> None:
    missing = invoke("--config", str(tmp_path / "missing.yaml"), "migrate")
    assert_clean_failure(missing, 2, "config file not found")
    broken = tmp_path / "broken.yaml"
    broken.write_text("port: [1\n")
    assert_clean_failure(invoke("--config", str(broken), "migrate"), 2, "invalid settings")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    assert_clean_failure(invoke("--config", str(listed), "migrate"), 2, "YAML mapping")
    unknown = write_config(tmp_path / "unknown.yaml", colour="blue")
    assert_clean_failure(invoke("--config", str(unknown), "migrate"), 2, "colour")
    bad_level = write_config(tmp_path / "level.yaml", log_level="chatty")
    assert_clean_failure(invoke("--config", str(bad_level), "serve"), 2, "log_level")


def test_unusable_database_is_an_error_message(tmp_path: Path) -> None:
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gateway"
    for command in ("migrate", "demo"):
        result = invoke("--database-url", unreachable, command)
        assert_clean_failure(result, 1, "cannot use the database", f"{unreachable}")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke("--database-url", f"sqlite+aiosqlite:///{blocker / 'gateway.db'}", "migrate")
    assert_clean_failure(result, 1, "cannot use the database")


def test_serve_reads_the_port_from_the_environment_over_the_config_file(tmp_path: Path) -> None:
    yaml_port, env_port = free_port(), free_port()
    config = write_config(tmp_path / "gateway.yaml", data_dir=tmp_path / "from-yaml", port=yaml_port)
    env = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    env["GATEWAY_PORT"] = str(env_port)
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(CLI), "--config", str(config), "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{env_port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert response.status_code == 200, response.text
        # The data directory came from the file, the port from the environment.
        assert (tmp_path / "from-yaml" / "gateway.db").is_file()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{yaml_port}/healthz", timeout=1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
