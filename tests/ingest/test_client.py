"""The real openlineage-python client, both HTTP transports, plain and gzip, against `asset-gateway serve`
running as a separate process: what it emits shows up over GraphQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    documentation_dataset,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.uuid import generate_new_uuid

from tests.ingest.support import running_gateway

PRODUCER = "https://github.com/example/asset-gateway-tests/client"
NAMESPACE = "postgres://shop-db:5432"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway process (embedded SQLite in its own data directory) for every client in this module."""
    with running_gateway(tmp_path_factory.mktemp("client-gateway")) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_openlineage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client also reads OPENLINEAGE_* variables (DISABLED, URL, OPENLINEAGE__...); the test configures it alone.
    for name in list(os.environ):
        if name.startswith("OPENLINEAGE"):
            monkeypatch.delenv(name)


def run_events(run_id: str, job: str, source: str, target: str) -> tuple[RunEvent, RunEvent]:
    """START with the input (as a scheduler knows it before the run), COMPLETE with the output."""
    started = datetime.now(UTC).replace(microsecond=0)
    run = Run(
        runId=run_id,
        facets={"nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=started.isoformat())},
    )
    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="PYTHON", jobType="JOB")
    }
    start = RunEvent(
        eventType=RunState.START,
        eventTime=started.isoformat(),
        run=run,
        job=Job(namespace="tests.client", name=job, facets=job_facets),
        producer=PRODUCER,
        inputs=[
            InputDataset(
                namespace=NAMESPACE,
                name=source,
                facets={
                    "schema": schema_dataset.SchemaDatasetFacet(
                        fields=[
                            schema_dataset.SchemaDatasetFacetFields(name="id", type="bigint"),
                            schema_dataset.SchemaDatasetFacetFields(name="amount", type="numeric"),
                        ]
                    )
                },
            )
        ],
    )
    complete = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=(started + timedelta(seconds=42)).isoformat(),
        run=Run(runId=run_id),
        job=Job(namespace="tests.client", name=job, facets=job_facets),
        producer=PRODUCER,
        outputs=[
            OutputDataset(
                namespace=NAMESPACE,
                name=target,
                facets={"documentation": documentation_dataset.DocumentationDatasetFacet(description="daily totals")},
                outputFacets={
                    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=7)
                },
            )
        ],
    )
    return start, complete


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


EXECUTION = """
query ($runId: String!, $target: String!) {
  execution(runId: $runId) {
    state
    startedAt
    endedAt
    job { namespace name type }
    inputs { asset { key schema { name } } }
    outputs { facets asset { key description lastStatus } }
  }
  lineage(key: $target, direction: UPSTREAM, depth: 1) {
    edges { upstreamKey downstreamKey declared retiredAt jobs { name } }
  }
}
"""


@pytest.mark.parametrize("compression", [None, "gzip"], ids=["plain", "gzip"])
@pytest.mark.parametrize("transport", ["http", "async_http"])
def test_client_events_show_up_over_graphql(gateway_url: str, transport: str, compression: str | None) -> None:
    suffix = f"{transport}_{compression or 'plain'}"
    run_id = str(generate_new_uuid())
    job, source, target = f"daily_totals_{suffix}", f"shop.public.orders_{suffix}", f"mart.daily_totals_{suffix}"
    config: dict[str, Any] = {"type": transport, "url": gateway_url, "endpoint": "api/v1/lineage", "timeout": 10}
    if compression:
        config["compression"] = compression
    client = OpenLineageClient(config={"transport": config})
    assert client.transport.kind == transport
    assert str(client.transport.compression) == str(compression)  # type: ignore[attr-defined]

    for event in run_events(run_id, job, source, target):
        client.emit(event)  # the http transport raises on an answer that is not 2xx
    assert client.close(timeout=30)
    if transport == "async_http":
        stats = client.transport.get_stats()  # type: ignore[attr-defined]
        assert (stats["success"], stats["failed"], stats["pending"]) == (2, 0, 0), stats

    data = graphql(gateway_url, EXECUTION, {"runId": run_id, "target": f"{NAMESPACE}/{target}"})

    execution = data["execution"]
    assert execution["state"] == "COMPLETE"
    assert execution["startedAt"] is not None
    assert execution["endedAt"] is not None
    assert execution["job"] == {"namespace": "tests.client", "name": job, "type": "JOB"}
    assert execution["inputs"] == [
        {"asset": {"key": f"{NAMESPACE}/{source}", "schema": [{"name": "id"}, {"name": "amount"}]}}
    ]
    (output,) = execution["outputs"]
    assert output["asset"] == {"key": f"{NAMESPACE}/{target}", "description": "daily totals", "lastStatus": "COMPLETE"}
    assert output["facets"]["outputStatistics"]["rowCount"] == 7
    assert data["lineage"]["edges"] == [
        {
            "upstreamKey": f"{NAMESPACE}/{source}",
            "downstreamKey": f"{NAMESPACE}/{target}",
            "declared": False,
            "retiredAt": None,
            "jobs": [{"name": job}],
        }
    ]
