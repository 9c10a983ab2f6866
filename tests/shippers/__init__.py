"""Helpers the shipper tests share: a corpus slice to load, a comparable view of a gateway's catalog, runners,
a file-shipper consumer, and an HTTP receiver standing in for a shipper's target (slow, failing, or forwarding
to a real gateway)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from gateway.orm import Asset, AssetAlias, Change, Job, LineageEdge, Run, RunAsset
from gateway.store import changes as feed
from shippers.base import ShipperSpec, create_shipper
from shippers.openlineage import RUN_ID_NAMESPACE
from shippers.runner import ShipperRunner
from tests.ingest.corpus import Filler, read_events
from tests.ingest.support import APPLES, DBT_RUN, corpus, documents_by_file, fill_templates, load_documents

INGESTED_AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

# --- a slice of the corpus ---------------------------------------------------------------------------------------

CORPUS_FILES = (
    APPLES,
    "marquez/seed/metadata.json",  # the food_delivery seed
    "compatibility-tests/consumer/scenarios/airflow/events/*.json",
    "compatibility-tests/consumer/scenarios/CLL/events/*.json",  # Spark SQL, column lineage
    "compatibility-tests/consumer/scenarios/simple_run_event/events/*.json",  # run id "run_id": not a UUID
    "ol-diff/examples/*/*/*.json",  # Spark, prev/next captures
    "openlineage-python-client/serde_example_*.json",  # a RunEvent, a DatasetEvent and a JobEvent
)
# Facet-split expectations of the Spark integration on Dataproc: one scenario's files together are one run.
SPARK_DATAPROC = "compatibility-tests/producer/spark_dataproc/scenarios/*/events*"
DBT_FAIL = "openlineage-dbt/fail/result.json"


def _derived_events() -> list[dict[str, Any]]:
    """Events made from corpus events, for what the corpus lacks:

    - the python client's JobEvent declares lineage once; the same job declares a second, disjoint part
      (`dataset_c` -> `dataset_d`): the job's declared edges are not the product of all its inputs and outputs;
    - the run `run_id` (not a UUID) of the simple_run_event scenario gets a child run, also without a UUID,
      that names it as its parent and root;
    - the python client's DatasetEvent is sent again with the spec's examples of ownership and tags facets (no
      corpus event carries either).
    """
    (dataset_event,) = load_documents("openlineage-python-client/serde_example_dataset_event.json")
    described = copy.deepcopy(dataset_event)
    described["eventTime"] = "2021-11-03T10:55:52.427343"
    for example in ("spec/tests/OwnershipDatasetFacet/1.json", "spec/tests/TagsDatasetFacet/1.json"):
        described["dataset"]["facets"].update(load_documents(example)[0])
    (job_event,) = load_documents("openlineage-python-client/serde_example_job_event.json")
    second = copy.deepcopy(job_event)
    second["eventTime"] = "2021-11-03T10:54:52.427343"
    second["inputs"][0]["name"] = "dataset_c"
    second["outputs"][0]["name"] = "dataset_d"
    (run_event,) = load_documents("compatibility-tests/consumer/scenarios/simple_run_event/events/*.json")
    child = copy.deepcopy(run_event)
    parent = {"run": {"runId": run_event["run"]["runId"]}, "job": dict(run_event["job"])}
    parent["job"].pop("facets", None)
    child["eventTime"] = "2023-04-04T13:22:16.098Z"
    child["job"]["name"] = "job_name.report"
    child["run"] = {"runId": "run_id.report", "facets": {"parent": {**parent, "root": copy.deepcopy(parent)}}}
    child["inputs"] = [dict(run_event["outputs"][0], inputFacets={})]
    child["outputs"] = [{"namespace": "bigquery", "name": "test.table.report", "facets": {}, "outputFacets": {}}]
    return [second, child, described]


def corpus_batches() -> list[list[dict[str, Any]]]:
    """One batch per corpus file (a Spark-on-Dataproc scenario and a dbt list as one), then the derived events."""
    batches = [documents for _, documents in documents_by_file(*CORPUS_FILES)]
    for scenario in sorted(path for path in corpus().glob(SPARK_DATAPROC) if path.is_dir()):
        name = str(scenario.relative_to(corpus()))
        events = [event for path in sorted(scenario.glob("*.json")) for event in read_events(path)]
        batches.append(Filler(name).fill(events))
    batches.append(fill_templates(load_documents(DBT_RUN)))
    batches.append(Filler(DBT_FAIL).fill(read_events(corpus() / DBT_FAIL)))
    batches.append(_derived_events())
    return batches


async def ingest(db: Database, batches: Sequence[Sequence[dict[str, Any]]], now: datetime = INGESTED_AT) -> int:
    accepted = 0
    for batch in batches:
        report = await ingest_documents(db, list(batch), now)
        assert report.rejected == [], report.rejected
        accepted += report.accepted
    return accepted


# --- what a gateway holds ----------------------------------------------------------------------------------------

Catalog = dict[str, dict[Any, Any]]


def ol_run_id(run_id: str) -> str:
    """A run id as the openlineage shipper sends it: a UUID stays (canonical form), anything else is mapped to a
    stable UUID5, as the spec wants UUIDs and the gateway accepts any string."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(RUN_ID_NAMESPACE, run_id))


async def catalog(db: Database, run_ids: Callable[[str], str] = lambda run_id: run_id) -> Catalog:
    """Assets, jobs, runs and edges by natural key, with what the shippers carry; `run_ids` renames run ids."""
    async with db.session() as session:
        asset_rows = list(await session.scalars(select(Asset)))
        keys = {asset.id: asset.key for asset in asset_rows}
        aliases: dict[str, list[str]] = {}
        for alias, asset_id in await session.execute(select(AssetAlias.alias, AssetAlias.asset_id)):
            aliases.setdefault(keys[asset_id], []).append(alias)
        job_rows = list(await session.scalars(select(Job)))
        jobs = {job.id: (job.namespace, job.name) for job in job_rows}
        run_rows = list(await session.scalars(select(Run)))
        runs = {run.id: run_ids(run.run_id) for run in run_rows}
        touches: dict[tuple[int, str], list[str]] = {}
        for touch in await session.scalars(select(RunAsset)):
            touches.setdefault((touch.run_id, touch.role), []).append(keys[touch.asset_id])
        edge_rows = list(await session.scalars(select(LineageEdge)))
    return {
        "assets": {
            asset.key: {
                "namespace": asset.namespace,
                "name": asset.name,
                "type": asset.type,
                "description": asset.description,
                "owners": asset.owners,
                "tags": asset.tags,
                "fields": asset.fields,
                "aliases": sorted(aliases.get(asset.key, [])),
                "deleted": asset.deleted_at is not None,
            }
            for asset in asset_rows
        },
        "jobs": {(job.namespace, job.name): {"type": job.type, "description": job.description} for job in job_rows},
        "runs": {
            runs[run.id]: {
                "job": jobs[run.job_id],
                "state": run.state,
                "parent": runs.get(run.parent_id) if run.parent_id else None,
                "inputs": sorted(touches.get((run.id, "input"), [])),
                "outputs": sorted(touches.get((run.id, "output"), [])),
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "state_time": run.state_time,
                "event_time": run.event_time,
                "placeholder": run.placeholder,
            }
            for run in run_rows
        },
        "live_edges": {
            (keys[edge.upstream_id], keys[edge.downstream_id], jobs.get(edge.job_id) if edge.job_id else None): (
                edge.origin
            )
            for edge in edge_rows
            if edge.retired_at is None
        },
        "retired_edges": {
            (keys[edge.upstream_id], keys[edge.downstream_id], jobs.get(edge.job_id) if edge.job_id else None): (
                edge.retired_at
            )
            for edge in edge_rows
            if edge.retired_at is not None
        },
    }


def without_placeholder_times(view: Catalog) -> Catalog:
    """The catalog with the times of placeholder runs left out (test_round_trip says why they differ)."""
    times = ("started_at", "ended_at", "state_time", "event_time")
    runs = {
        run_id: {name: value for name, value in run.items() if not (run["placeholder"] and name in times)}
        for run_id, run in view["runs"].items()
    }
    return {**view, "runs": runs}


def differences(expected: Catalog, actual: Catalog) -> str:
    """What differs, part by part, for an assertion message."""
    lines = []
    for part in expected.keys() | actual.keys():
        want, got = expected.get(part, {}), actual.get(part, {})
        for key in sorted(want.keys() | got.keys(), key=repr):
            if want.get(key, "<missing>") != got.get(key, "<missing>"):
                lines.append(f"{part} {key!r}:\n    expected {want.get(key, '<missing>')!r}")
                lines.append(f"    found    {got.get(key, '<missing>')!r}")
    return "\n".join(lines[:60]) or "no difference"


async def settled(db: Database, within: float = 90.0) -> feed.Cursor:
    """Wait until every committed change is readable (below the feed's horizon); the feed's head.

    On Postgres the horizon is the oldest transaction running anywhere on the server, in any database: another
    program's long transaction delays every reader (never makes it skip). Tests wait for it, within a bound.
    """
    deadline = time.monotonic() + within
    while True:
        async with db.session() as session:
            head = await feed.feed_head(session)
            last = (
                await session.execute(select(Change.txid, Change.id).order_by(Change.txid.desc(), Change.id.desc()))
            ).first()
        if last is None or head == (last[0], last[1]):
            return head
        if time.monotonic() > deadline:
            pytest.fail(f"the change feed did not settle within {within}s (a transaction held open elsewhere?)")
        await asyncio.sleep(0.05)  # bounded wait for other transactions to finish


async def change_count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Change))).scalar_one())


# --- runners -----------------------------------------------------------------------------------------------------


def make_runner(db: Database, name: str, kind: str, config: dict[str, Any], **spec: Any) -> ShipperRunner:
    shipper_spec = ShipperSpec(name=name, kind=kind, config=config, **spec)
    return ShipperRunner(db, shipper_spec, create_shipper(shipper_spec), retry_base_seconds=0.0)


# --- the file shipper's consumer ---------------------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def greatest_versions(lines: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """What a consumer keeping, per (type, id), the line of the greatest version holds (the first of equals)."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        key = (line["type"], json.dumps(line["id"]))
        if key not in kept or line["version"] > kept[key]["version"]:
            kept[key] = line
    return kept


# --- a target on loopback ----------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP/1.1 server on loopback in the test's event loop, standing in for a shipper's target.

    Request n (from 1) is answered 503 when `refuse(n)`; the request numbered `hold_at` waits for `release`
    (`held` tells that it arrived); otherwise the body goes to the gateway at `forward_to` (its answer is the
    answer) or is accepted with 201. `accepted` holds the bodies answered 2xx, in order.
    """

    forward_to: str | None = None
    refuse: Callable[[int], bool] = lambda number: False
    hold_at: int | None = None
    requests: int = 0
    refused: int = 0
    accepted: list[bytes] = field(default_factory=list)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    client: httpx.AsyncClient | None = None
    port: int = 0

    async def __aenter__(self) -> Receiver:
        self.client = httpx.AsyncClient(timeout=30.0)
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release.set()
        assert self.server is not None
        assert self.client is not None
        self.server.close()
        await self.client.aclose()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, answer = await self._answer(body, headers.get("content-type", "application/json"))
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(answer)}\r\n"
                    f"connection: keep-alive\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        self.requests += 1
        number = self.requests
        if number == self.hold_at:
            self.held.set()
            await self.release.wait()
        if self.refuse(number):
            self.refused += 1
            return 503, b'{"error": "unavailable"}'
        status, answer = 201, b"{}"
        if self.forward_to is not None:
            assert self.client is not None
            response = await self.client.post(
                f"{self.forward_to}/api/v1/lineage", content=body, headers={"content-type": content_type}
            )
            status, answer = response.status_code, response.content
        if 200 <= status < 300:
            self.accepted.append(body)
        return status, answer


async def post_again(gateway_url: str, bodies: Sequence[bytes]) -> list[dict[str, Any]]:
    """POST each body to a gateway once more; its reports."""
    reports = []
    async with httpx.AsyncClient(timeout=30.0) as client:
        for body in bodies:
            response = await client.post(
                f"{gateway_url}/api/v1/lineage", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code in (200, 201), response.text
            reports.append(response.json())
    return reports
