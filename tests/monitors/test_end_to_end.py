"""Freshness alerting end to end: a real `asset-gateway serve` process, OpenLineage over HTTP, a real webhook.

The server runs with its scheduler off; the test drives every sweep with the `runMonitor` mutation, so it
decides when sweeps happen. The webhook receiver is a raw asyncio HTTP server on loopback that records what
it is sent. Runs on SQLite and on Postgres.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
import yaml

from monitors.notifiers import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.helpers import free_port
from tests.monitors.receiver import Receiver, Request

CLI = Path(sys.executable).parent / "asset-gateway"
READY_WITHIN_SECONDS = 20
STOP_WITHIN_SECONDS = 15
SECRET = "end-to-end-secret"
MAX_AGE_SECONDS = 3
NAMESPACE = "postgres://e2e-db:5432"
NAME = "mart.orders_daily"
KEY = f"{NAMESPACE}/{NAME}"
RUN_MONITOR = "mutation { runMonitor { assetsChecked alertsOpened alertsResolved error } }"
ALERTS = """{ alerts { nodes { kind resolvedAt asset { key }
  deliveries { notifier event attempts deliveredAt lastError } } } }"""
FRESHNESS = "query($key: String!) { asset(key: $key) { freshness { status policy { name } } } }"


# --- the webhook receiver ---------------------------------------------------------------------------------------


def verify_signature(request: Request, secret: str) -> None:
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    assert abs(int(timestamp) - time.time()) < 300
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER.lower()], f"sha256={expected}")


async def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(0.05)


# --- the gateway process ----------------------------------------------------------------------------------------


def gateway_env(**variables: str) -> dict[str, str]:
    """This environment without GATEWAY_* settings or proxies (everything here is loopback), plus `variables`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and not name.lower().endswith("_proxy")
    }
    env.update(variables)
    return env


def run_cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"asset-gateway {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def output(log: Path) -> str:
    return log.read_text(errors="replace")


def open_log(log: Path) -> BinaryIO:
    return log.open("wb")


@asynccontextmanager
async def serving(env: dict[str, str], config: Path, log: Path) -> AsyncIterator[httpx.AsyncClient]:
    """`asset-gateway --config CONFIG serve` on a free port: a client once /healthz answers; SIGTERM at the end."""
    port = free_port()
    with open_log(log) as stdout:
        process = await asyncio.create_subprocess_exec(
            *(str(CLI), "--config", str(config), "serve", "--port", str(port)),
            env=env,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as client:
            deadline = time.monotonic() + READY_WITHIN_SECONDS
            while True:
                assert process.returncode is None, f"the server exited early:\n{output(log)}"
                try:
                    if (await client.get("/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no answer from /healthz:\n{output(log)}"
                await asyncio.sleep(0.1)
            yield client
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_WITHIN_SECONDS)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)
            pytest.fail(f"the server did not stop within {STOP_WITHIN_SECONDS} s of SIGTERM:\n{output(log)}")
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM), output(log)


async def graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def run_monitor(client: httpx.AsyncClient) -> dict[str, Any]:
    run: dict[str, Any] = (await graphql(client, RUN_MONITOR))["runMonitor"]
    assert run["error"] is None, run
    return run


async def complete(client: httpx.AsyncClient) -> datetime:
    """POSTs a COMPLETE RunEvent (a new run, eventTime now) that writes the asset; returns its eventTime."""
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the event states it
    event = {
        "eventType": "COMPLETE",
        "eventTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "producer": "https://github.com/example/asset-gateway-tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "e2e", "name": "build_orders_daily"},
        "inputs": [{"namespace": NAMESPACE, "name": "shop.orders"}],
        "outputs": [{"namespace": NAMESPACE, "name": NAME}],
    }
    response = await client.post("/api/v1/lineage", json=event)
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 1, response.text
    return now


async def freshness(client: httpx.AsyncClient) -> dict[str, Any]:
    found: dict[str, Any] = (await graphql(client, FRESHNESS, {"key": KEY}))["asset"]["freshness"]
    return found


# --- the test ---------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The server's environment: SQLite under the config's data_dir, or the session's Postgres, migrated."""
    if request.param == "sqlite":
        return gateway_env()
    url: str = request.getfixturevalue("clean_postgres")
    env = gateway_env(GATEWAY_DATABASE_URL=url)
    run_cli(env, "migrate")
    return env


async def test_one_opened_and_one_resolved_webhook_per_stale_episode(
    database_env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "scheduler_enabled": False,
                "freshness_policies": [{"name": "orders-daily", "asset": KEY, "max_age": f"{MAX_AGE_SECONDS}s"}],
                "notifiers": [
                    {"name": "hook", "kind": "webhook", "url": receiver.url("/hook"), "secret": SECRET},
                ],
            }
        )
    )
    log = tmp_path / "server.log"
    async with serving(database_env, config, log) as client:
        # The sweep a scheduler would run at startup, before any pipeline has reported the asset.
        assert await run_monitor(client) == {"assetsChecked": 0, "alertsOpened": 0, "alertsResolved": 0, "error": None}

        written = await complete(client)
        run = await run_monitor(client)
        # The output and its input; only the output has a policy.
        assert (run["assetsChecked"], run["alertsOpened"], run["alertsResolved"]) == (2, 0, 0)
        status = await freshness(client)
        assert status == {"status": "FRESH", "policy": {"name": "orders-daily"}}, (status, output(log))
        assert receiver.requests == []

        # Past the maximum age: one sweep opens the alert (poll rather than sleep for a fixed time).
        deadline = time.monotonic() + MAX_AGE_SECONDS + 10
        opened = 0
        while not opened:
            assert time.monotonic() < deadline, f"the asset never went stale:\n{output(log)}"
            await asyncio.sleep(0.2)
            run = await run_monitor(client)
            assert run["alertsResolved"] == 0
            opened = run["alertsOpened"]
        assert opened == 1
        assert (datetime.now(UTC) - written).total_seconds() >= MAX_AGE_SECONDS
        await wait_until(lambda: len(receiver.requests) >= 1, 5, "the 'opened' webhook")
        for _ in range(3):
            run = await run_monitor(client)
            assert (run["alertsOpened"], run["alertsResolved"]) == (0, 0)
        assert (await freshness(client))["status"] == "STALE"
        assert receiver.events() == ["opened"]
        [first] = receiver.requests
        assert first.path == "/hook"
        assert first.headers["content-type"] == "application/json"
        verify_signature(first, SECRET)
        with pytest.raises(AssertionError):
            verify_signature(first, "another secret")
        body = first.json()
        assert body["asset"] == {"key": KEY, "namespace": NAMESPACE}
        assert (body["alert"]["kind"], body["alert"]["resolvedAt"]) == ("stale", None)
        assert body["text"].startswith(f"STALE {KEY}")

        # A new run writes the asset: the next sweep resolves the alert, once.
        await complete(client)
        run = await run_monitor(client)
        assert (run["alertsOpened"], run["alertsResolved"]) == (0, 1)
        await wait_until(lambda: len(receiver.requests) >= 2, 5, "the 'resolved' webhook")
        for _ in range(3):  # well within the maximum age of the new run
            run = await run_monitor(client)
            assert (run["alertsOpened"], run["alertsResolved"]) == (0, 0)
        assert (await freshness(client))["status"] == "FRESH"
        assert receiver.events() == ["opened", "resolved"]
        second = receiver.requests[1]
        verify_signature(second, SECRET)
        resolved = second.json()
        assert resolved["alert"]["id"] == body["alert"]["id"]
        assert resolved["alert"]["resolvedAt"] is not None
        assert resolved["text"] == f"RESOLVED {KEY}: no longer stale"

        # The API tells the same story.
        [alert] = (await graphql(client, ALERTS))["alerts"]["nodes"]
        assert (alert["kind"], alert["asset"]["key"]) == ("STALE", KEY)
        assert alert["resolvedAt"] is not None
        assert datetime.fromisoformat(alert["resolvedAt"]) == datetime.fromisoformat(resolved["alert"]["resolvedAt"])
        deliveries = sorted(alert["deliveries"], key=lambda delivery: delivery["event"])
        assert [(d["notifier"], d["event"], d["attempts"], d["lastError"]) for d in deliveries] == [
            ("hook", "opened", 1, None),
            ("hook", "resolved", 1, None),
        ]
        assert all(delivery["deliveredAt"] is not None for delivery in deliveries)

    # The server is stopped: nothing more arrived, before or during shutdown.
    assert receiver.events() == ["opened", "resolved"]
    assert "Application shutdown complete" in output(log)
