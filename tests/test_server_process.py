"""The real thing: `asset-gateway serve` as a process, queried over TCP, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port

CLI = Path(sys.executable).parent / "asset-gateway"
READY_WITHIN_SECONDS = 20
DASHBOARD = "superset://bi.acme.internal/dashboard/revenue-overview"
CATALOG = "{ assets(first: 5) { totalCount edges { node { key } } } }"
UPSTREAM = """query($key: String!) {
  lineage(key: $key, direction: UPSTREAM, depth: 10) { nodes { depth asset { key } } truncated } }"""


def gateway_env(**variables: str) -> dict[str, str]:
    """The test process's environment without any GATEWAY_* of its own, plus `variables`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    env.update(variables)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"asset-gateway {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@contextmanager
def serving(
    env: dict[str, str], log: Path, *args: str, serve_args: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Starts `asset-gateway serve` on a free port, waits until /healthz answers, stops it with SIGTERM."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(CLI), *args, "serve", "--port", str(port), *serve_args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        while True:
            assert process.poll() is None, f"the server exited early:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no answer from {base}/healthz:\n{log.read_text()}"
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


def post(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def check_demo_lineage(base: str) -> None:
    nodes = post(base, UPSTREAM, {"key": DASHBOARD})["lineage"]["nodes"]
    depths = {node["asset"]["key"]: node["depth"] for node in nodes}
    assert depths[DASHBOARD] == 0
    assert depths["snowflake://acme.eu-west-1/analytics.marts.revenue_daily"] == -1
    assert depths["postgres://shop-db:5432/shop.public.orders"] == -4
    assert "s3://acme-raw/events/clickstream" not in depths


def assert_stopped_gracefully(process: subprocess.Popen[bytes], log: Path) -> None:
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_serve_on_sqlite_from_an_empty_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = gateway_env(GATEWAY_DATA_DIR=str(data_dir))
    log = tmp_path / "server.log"
    with serving(env, log) as (base, process):
        assert (data_dir / "gateway.db").is_file()
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert post(base, CATALOG) == {"assets": {"totalCount": 0, "edges": []}}

        demo = run_cli(env, "demo")
        assert "loaded 12 assets" in demo.stdout

        catalog = post(base, CATALOG)["assets"]
        assert catalog["totalCount"] == 12
        assert len(catalog["edges"]) == 5
        check_demo_lineage(base)
    assert_stopped_gracefully(process, log)


def test_serve_on_postgres(tmp_path: Path, clean_postgres: str) -> None:
    env = gateway_env(GATEWAY_DATABASE_URL=clean_postgres, GATEWAY_DATA_DIR=str(tmp_path / "unused"))
    migrated = run_cli(env, "migrate")
    assert "migrated postgresql+asyncpg://" in migrated.stdout
    log = tmp_path / "server.log"
    with serving(env, log) as (base, process):
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert post(base, CATALOG)["assets"]["totalCount"] == 0
        run_cli(env, "demo")
        assert post(base, CATALOG)["assets"]["totalCount"] == 12
        check_demo_lineage(base)
    assert_stopped_gracefully(process, log)
    # Postgres was never the embedded default: nothing was written to the data directory.
    assert not (tmp_path / "unused" / "gateway.db").exists()


# Answers /readyz through the ASGI interface itself (an HTTP client library would load httpx), then names what it
# loaded of the libraries a serving gateway has no use for by default.
_READY_WITHOUT = """
import asyncio, sys
from gateway.app import create_app
from gateway.settings import Settings

app = create_app(Settings())
sent = []

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    sent.append(message)

scope = {
    "type": "http", "method": "GET", "path": "/readyz", "raw_path": b"/readyz", "query_string": b"", "headers": [],
    "http_version": "1.1", "scheme": "http", "root_path": "", "server": ("gateway.test", 80), "client": ("test", 1),
}
asyncio.run(app(scope, receive, send))
print(sent[0]["status"], sorted({name.split(".")[0] for name in sys.modules} & {"alembic", "mako", "httpx"}))
"""


def test_a_gateway_on_postgres_serves_without_migration_tools_or_an_http_client(
    tmp_path: Path, clean_postgres: str
) -> None:
    # It migrates when told to (`asset-gateway migrate`), and only webhook notifiers post anywhere.
    env = gateway_env(GATEWAY_DATABASE_URL=clean_postgres, GATEWAY_DATA_DIR=str(tmp_path / "unused"))
    run_cli(env, "migrate")
    loaded = subprocess.run(
        [sys.executable, "-c", _READY_WITHOUT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["200", "[]"], loaded.stdout
