"""Request ids and logs: an id on every request and every record it logs, one access record, JSON when asked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import Settings
from tests.ops.support import run_event
from tests.test_server_process import gateway_env, serving

# Ids and log formatting do not depend on the database: SQLite is enough.
SQLITE_ONLY = pytest.mark.parametrize("dialect", ["sqlite"])
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The gateway's JSON logging into a buffer; the root logger as it was afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    handler = configure_logging("info", "json", stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    assert root.handlers == handlers


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@SQLITE_ONLY
async def test_a_sane_request_id_is_kept_and_any_other_replaced(client: httpx.AsyncClient) -> None:
    for sane in ("abc-123", "0af7651916cd43dd8448eb211c80319c", "trace:1/2+3=4@lb.example_x.y"):
        response = await client.get("/healthz", headers={"X-Request-ID": sane})
        assert response.headers["x-request-id"] == sane
    generated = set()
    # Raw header bytes: a client may send any octets, not only ASCII.
    insane: list[bytes | None] = [None, b"", b"has space", b"x" * 129, b"<script>", b"semi;colon", b"\xe9t\xe9"]
    for offered in insane:
        headers = {} if offered is None else {b"X-Request-ID": offered}
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert response.status_code == 200
        assert GENERATED.fullmatch(response.headers["x-request-id"]), offered
        generated.add(response.headers["x-request-id"])
    assert len(generated) == 7
    # On refusals and unknown paths too.
    assert "x-request-id" in (await client.get("/nowhere")).headers
    assert (await client.post("/api/v1/lineage", content=b"{")).headers["x-request-id"]


@SQLITE_ONLY
async def test_one_access_record_per_request_with_its_own_id(
    client: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    async def one(number: int) -> httpx.Response:
        if number % 2:
            return await client.post("/api/v1/lineage", json=run_event(), headers={"X-Request-ID": f"ingest-{number}"})
        query = {"query": "{ assets { totalCount } }"}
        return await client.post("/graphql", json=query, headers={"X-Request-ID": f"graphql-{number}"})

    # Concurrent requests in one event loop: each keeps its own id.
    responses = await asyncio.gather(*(one(number) for number in range(10)))
    access = [line for line in json_lines(captured_logs) if line["logger"] == "gateway.access"]
    assert len(access) == 10
    by_id = {line["request_id"]: line for line in access}
    for number, response in enumerate(responses):
        record = by_id[response.headers["x-request-id"]]
        path, status = ("/api/v1/lineage", 201) if number % 2 else ("/graphql", 200)
        assert response.status_code == status
        assert (record["method"], record["path"], record["status"], record["level"]) == ("POST", path, status, "INFO")
        assert record["request_id"] == ("ingest" if number % 2 else "graphql") + f"-{number}"
        assert isinstance(record["duration_ms"], float)
        assert record["duration_ms"] >= 0
        assert record["message"].startswith(f"POST {path} {status} ")
        assert record["time"].endswith("+00:00")


async def test_every_record_of_a_request_carries_its_id(tmp_path: Path, captured_logs: io.StringIO) -> None:
    # A database that was never migrated: the request logs the fault, with its traceback, then its access record.
    app = create_app(Settings(data_dir=tmp_path, auto_migrate=False))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            response = await client.post("/graphql", json={"query": "{ assets { totalCount } }"})
    finally:
        await app.state.db.dispose()
    assert response.status_code == 503
    request_id = response.headers["x-request-id"]
    during = [line for line in json_lines(captured_logs) if line.get("request_id") == request_id]
    assert [line["logger"] for line in during] == ["gateway.faults", "gateway.access"]
    fault, access = during
    assert fault["level"] == "ERROR"
    assert "asset-gateway migrate" in fault["message"]
    assert "no such table" in fault["exception"]
    assert access["level"] == "WARNING"
    assert access["status"] == 503
    # Outside a request, records carry no id.
    logging.getLogger("gateway").info("between requests")
    assert "request_id" not in json_lines(captured_logs)[-1]


def test_the_text_format_names_the_request_id() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = configure_logging("info", "text", stream)
    try:
        logger = logging.getLogger("gateway.test")
        logger.info("plain")
        logger.info("with an id", extra={"request_id": "req-42"})
    finally:
        root.removeHandler(handler)
    plain, tagged = stream.getvalue().splitlines()
    assert plain.endswith(" INFO gateway.test plain")
    assert tagged.endswith(" INFO gateway.test with an id request_id=req-42")


def test_serve_logs_one_json_object_per_line(tmp_path: Path) -> None:
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "data"), GATEWAY_LOG_FORMAT="json")
    log = tmp_path / "server.log"
    with serving(env, log) as (base, _process):
        response = httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, headers={"X-Request-ID": "e2e-1"})
        assert response.headers["x-request-id"] == "e2e-1"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    # uvicorn's own records go through the same formatter ...
    assert "Application startup complete." in messages
    assert "Application shutdown complete." in messages
    assert not [line for line in lines if "color_message" in line]
    # ... but not its access log: ours is the one record per request, with the id.
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert {(line["path"], line["request_id"]) for line in access if line["path"] == "/graphql"} == {
        ("/graphql", "e2e-1")
    }
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
