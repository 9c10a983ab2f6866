"""The openlineage-python client's `api_key` auth against a real `asset-gateway serve` that has tokens: a write
token's events are stored; a wrong key, or a namespace outside the token's grants, stores nothing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from click.testing import CliRunner
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

from gateway.cli import main
from tests.ingest.support import running_gateway

PRODUCER = "https://github.com/example/asset-gateway-tests/auth-client"
DATASETS = "postgres://auth-db:5432"
JOBS = "auth-client.jobs"
EXECUTION = """query($runId: String!) { execution(runId: $runId) {
    state job { namespace name } inputs { asset { key } } outputs { asset { key } } } }"""


@dataclass(frozen=True)
class Gateway:
    url: str
    writer: str  # write on JOBS' family and DATASETS
    auditor: str  # read on everything


def create_token(data_dir: Path, name: str, scope: str, *namespaces: str) -> str:
    grants = [argument for namespace in namespaces for argument in ("--namespace", namespace)]
    database = f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}"
    arguments = ["--database-url", database, "token", "create", "--name", name, "--scope", scope, *grants]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("api-key-gateway")
    writer = create_token(data_dir, "pipelines", "write", "auth-client.*", DATASETS)
    auditor = create_token(data_dir, "auditor", "read", "*")
    with running_gateway(data_dir, auth_cache_seconds="0", scheduler_enabled="false") as url:
        yield Gateway(url, writer, auditor)


@pytest.fixture(autouse=True)
def _no_openlineage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client also reads OPENLINEAGE_* variables (DISABLED, URL, API_KEY...); the test configures it alone.
    for name in list(os.environ):
        if name.startswith("OPENLINEAGE"):
            monkeypatch.delenv(name)


def client(gateway: Gateway, transport: str, api_key: str) -> OpenLineageClient:
    config: dict[str, Any] = {
        "type": transport,
        "url": gateway.url,
        "endpoint": "api/v1/lineage",
        "timeout": 10,
        "auth": {"type": "api_key", "apiKey": api_key},
    }
    if transport == "async_http":
        config["retry"] = {"total": 0}
    built = OpenLineageClient(config={"transport": config})
    assert built.transport.kind == transport
    return built


def run_events(run_id: str, job_namespace: str, suffix: str) -> list[RunEvent]:
    started = datetime.now(UTC).replace(microsecond=0)
    job = Job(namespace=job_namespace, name=f"load_{suffix}")
    return [
        RunEvent(
            eventType=RunState.START,
            eventTime=started.isoformat(),
            run=Run(runId=run_id),
            job=job,
            producer=PRODUCER,
            inputs=[InputDataset(namespace=DATASETS, name=f"raw.orders_{suffix}")],
        ),
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=(started + timedelta(seconds=5)).isoformat(),
            run=Run(runId=run_id),
            job=job,
            producer=PRODUCER,
            outputs=[OutputDataset(namespace=DATASETS, name=f"mart.orders_{suffix}")],
        ),
    ]


def graphql(gateway: Gateway, secret: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        f"{gateway.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def stored_run(gateway: Gateway, run_id: str, job_namespace: str, suffix: str) -> dict[str, Any]:
    """The execution as the auditor sees it, plus whether its job and output asset exist at all."""
    query = """query($runId: String!, $namespace: String!, $name: String!, $key: String!) {
        execution(runId: $runId) { state job { namespace name } inputs { asset { key } } outputs { asset { key } } }
        job(namespace: $namespace, name: $name) { name }
        asset(key: $key) { key } }"""
    variables = {
        "runId": run_id,
        "namespace": job_namespace,
        "name": f"load_{suffix}",
        "key": f"{DATASETS}/mart.orders_{suffix}",
    }
    return graphql(gateway, gateway.auditor, query, variables)


@pytest.mark.parametrize("transport", ["http", "async_http"])
def test_events_with_the_write_token_are_stored(gateway: Gateway, transport: str) -> None:
    run_id, suffix = str(uuid.uuid4()), f"ok_{transport}"
    emitter = client(gateway, transport, gateway.writer)
    for event in run_events(run_id, JOBS, suffix):
        emitter.emit(event)  # the http transport raises on an answer that is not 2xx
    assert emitter.close(timeout=30)
    if transport == "async_http":
        stats = emitter.transport.get_stats()  # type: ignore[attr-defined]
        assert (stats["success"], stats["failed"], stats["pending"]) == (2, 0, 0), stats

    stored = stored_run(gateway, run_id, JOBS, suffix)
    assert stored["execution"] == {
        "state": "COMPLETE",
        "job": {"namespace": JOBS, "name": f"load_{suffix}"},
        "inputs": [{"asset": {"key": f"{DATASETS}/raw.orders_{suffix}"}}],
        "outputs": [{"asset": {"key": f"{DATASETS}/mart.orders_{suffix}"}}],
    }
    # The writer reads what it may write.
    assert graphql(gateway, gateway.writer, EXECUTION, {"runId": run_id})["execution"]["state"] == "COMPLETE"


REFUSALS = [
    pytest.param("wrong-key", JOBS, 401, id="wrong-key"),
    pytest.param("writer", "other-team.jobs", 403, id="outside-the-grant"),
]


@pytest.mark.parametrize("transport", ["http", "async_http"])
@pytest.mark.parametrize(("key", "job_namespace", "status"), REFUSALS)
def test_refused_events_store_nothing(
    gateway: Gateway, transport: str, key: str, job_namespace: str, status: int
) -> None:
    run_id, suffix = str(uuid.uuid4()), f"refused_{status}_{transport}"
    api_key = gateway.writer if key == "writer" else "agw_" + "w" * 43
    emitter = client(gateway, transport, api_key)
    events = run_events(run_id, job_namespace, suffix)
    if transport == "http":
        for event in events:
            with pytest.raises(requests.HTTPError) as refused:
                emitter.emit(event)
            assert refused.value.response is not None
            assert refused.value.response.status_code == status
        assert emitter.close(timeout=30)
    else:
        for event in events:
            emitter.emit(event)  # the async transport counts failures rather than raising
        assert emitter.close(timeout=30)
        stats = emitter.transport.get_stats()  # type: ignore[attr-defined]
        assert (stats["success"], stats["failed"], stats["pending"]) == (0, 2, 0), stats

    assert stored_run(gateway, run_id, job_namespace, suffix) == {"execution": None, "job": None, "asset": None}
