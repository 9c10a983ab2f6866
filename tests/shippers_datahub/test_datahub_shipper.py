"""The `datahub` shipper on SQLite and Postgres, checked with acryl-datahub's own readers.

The state arrives the way producers and the API put it there: OpenLineage run events (schemas, documentation,
ownership, tags, column lineage) and an API declaration (metadata, display name, aliases, a declared upstream).
The file sink's output is read back by acryl-datahub's `file` source (through a Pipeline, and directly) and loaded
into DataHub Lite with the `datahub lite` CLI (SQLite and DuckDB engines). The rest sink's real DatahubRestEmitter
talks to a local receiver on loopback that answers as GMS does (restli and OpenAPI ingestion).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.serialization_helper import pre_json_transform
from datahub.ingestion.api.common import PipelineContext
from datahub.ingestion.run.pipeline import Pipeline
from datahub.ingestion.source.file import FileSourceConfig, GenericFileSource, read_metadata_file
from datahub.lite.lite_util import get_datahub_lite
from sqlalchemy import text

from gateway.database import Database
from gateway.ingest.service import ingest_documents
from gateway.store.assets import AssetSpec, soft_delete_asset, upsert_asset
from shippers.base import ShipperSpec, create_shipper, shipper_kinds
from shippers.datahub import (
    DataHubShipper,
    DataHubShipperConfig,
    UrnMapper,
    append_records,
    field_type,
    file_obj,
)
from shippers.records import ChangeBatch
from shippers.runner import ShipperRunner, ShipReport
from tests.conftest import NOW

PRODUCER = "https://github.com/asset-gateway/tests"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

ORDERS = ("postgres://db.example.com:5432", "shop.public.orders")
CUSTOMERS = ("s3://raw-bucket", "landing/customers.parquet")
FACTS = ("snowflake://acme-xy123", "ANALYTICS.PUBLIC.ORDER_FACTS")
DASHBOARD_KEY = "superset://bi.example.com/dashboards/revenue"

URN_ORDERS = "urn:li:dataset:(urn:li:dataPlatform:postgres,shop.public.orders,PROD)"
URN_CUSTOMERS = "urn:li:dataset:(urn:li:dataPlatform:s3,raw-bucket/landing/customers.parquet,PROD)"
URN_FACTS = "urn:li:dataset:(urn:li:dataPlatform:snowflake,analytics.public.order_facts,PROD)"
URN_DASHBOARD = "urn:li:dataset:(urn:li:dataPlatform:superset,dashboards/revenue,PROD)"
ALL_URNS = {URN_ORDERS, URN_CUSTOMERS, URN_FACTS, URN_DASHBOARD}


def _key(dataset: tuple[str, str]) -> str:
    return f"{dataset[0]}/{dataset[1]}"


def _field(name: str, type_: str, description: str | None = None, **more: Any) -> dict[str, Any]:
    found = {"name": name, "type": type_, **more}
    if description:
        found["description"] = description
    return found


ORDERS_FACETS = {
    "schema": {
        "fields": [
            _field("id", "integer", "Order id"),
            _field("amount", "numeric(10,2)"),
            _field("customer_id", "integer"),
            _field("created_at", "timestamp with time zone"),
        ]
    },
    "documentation": {"description": "Orders placed in the shop"},
    "ownership": {"owners": [{"name": "team:data-platform"}, {"name": "alice@example.com"}]},
    "tags": {"tags": [{"key": "pii", "value": ""}, {"key": "tier", "value": "gold"}]},
}
CUSTOMERS_FACETS = {
    "schema": {
        "fields": [
            _field("customer_id", "long"),
            _field("name", "string"),
            {"name": "address", "type": "struct", "fields": [_field("city", "string"), _field("zip", "string")]},
        ]
    },
}
FACTS_FACETS = {
    "schema": {
        "fields": [_field("order_id", "bigint"), _field("total", "decimal(12,2)"), _field("customer_name", "varchar")]
    },
    "documentation": {"description": "One row per order"},
    "ownership": {"owners": [{"name": "team:analytics"}]},
    "columnLineage": {
        "fields": {
            "order_id": {
                "inputFields": [{"namespace": ORDERS[0], "name": ORDERS[1], "field": "id", "transformations": []}]
            },
            "total": {
                "inputFields": [
                    {
                        "namespace": ORDERS[0],
                        "name": ORDERS[1],
                        "field": "amount",
                        "transformations": [{"type": "INDIRECT", "subtype": "AGGREGATION"}],
                    }
                ]
            },
            "customer_name": {
                "inputFields": [
                    {
                        "namespace": CUSTOMERS[0],
                        "name": CUSTOMERS[1],
                        "field": "name",
                        "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}],
                    }
                ]
            },
        }
    },
}


def _dataset(dataset: tuple[str, str], facets: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"namespace": dataset[0], "name": dataset[1], "facets": facets or {}}


def _run_event(
    run_id: str, state: str, moment: datetime, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "eventType": state,
        "eventTime": moment.isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id},
        "job": {"namespace": "airflow", "name": "shop.order_facts"},
        "inputs": inputs,
        "outputs": outputs,
    }


SETTLED = "SELECT coalesce(max(txid), 0) < pg_snapshot_xmin(pg_current_snapshot())::text::bigint FROM changes"
RUN_1 = "0195d3a4-0000-7000-8000-000000000001"
RUN_2 = "0195d3a4-0000-7000-8000-000000000002"


async def build_state(db: Database) -> None:
    """Three datasets from a run (two inputs, column lineage), a declared dashboard downstream of the facts."""
    inputs = [_dataset(ORDERS, ORDERS_FACETS), _dataset(CUSTOMERS, CUSTOMERS_FACETS)]
    outputs = [_dataset(FACTS, FACTS_FACETS)]
    report = await ingest_documents(
        db,
        [
            _run_event(RUN_1, "START", NOW - timedelta(minutes=10), inputs, outputs),
            _run_event(RUN_1, "COMPLETE", NOW - timedelta(minutes=5), inputs, outputs),
        ],
        NOW,
    )
    assert not report.rejected, report.rejected
    async with db.transaction() as session:
        await upsert_asset(
            session,
            AssetSpec(
                key=DASHBOARD_KEY,
                type="dashboard",
                display_name="Revenue",
                description="Revenue by day",
                owners=["user:bob", "team:bi"],
                tags=["finance"],
                metadata={"layer": "bi", "refresh_minutes": 15, "big": 2**62, "nested": {"b": [1, 2], "a": None}},
                upstream_keys=[_key(FACTS)],
                aliases=["superset://bi.example.com/dashboards/7"],
            ),
            NOW,
        )


async def change_state(db: Database) -> None:
    """A second run reads only the orders (its edge from the customers retires); the customers asset is deleted."""
    inputs = [_dataset(ORDERS)]
    outputs = [_dataset(FACTS)]
    report = await ingest_documents(
        db,
        [
            _run_event(RUN_2, "START", NOW + timedelta(minutes=50), inputs, outputs),
            _run_event(RUN_2, "COMPLETE", NOW + timedelta(minutes=55), inputs, outputs),
        ],
        NOW + timedelta(hours=1),
    )
    assert not report.rejected, report.rejected
    async with db.transaction() as session:
        await soft_delete_asset(session, _key(CUSTOMERS), NOW + timedelta(hours=1))


def _runner(db: Database, name: str, config: dict[str, Any]) -> ShipperRunner:
    spec = ShipperSpec(name=name, kind="datahub", config=config, max_attempts=1)
    return ShipperRunner(db, spec, create_shipper(spec), retry_base_seconds=0.01)


async def ship(runner: ShipperRunner, full: bool = False) -> ShipReport:
    """One run of the shipper once the feed can hand out every change made so far. On Postgres it holds back
    changes newer than the oldest transaction running anywhere on the server (a long one in another database of a
    shared server included), so wait for those to end first."""
    if runner.db.dialect == "postgresql":
        deadline = time.monotonic() + 90
        while True:
            async with runner.db.session() as session:
                readable = (await session.execute(text(SETTLED))).scalar_one()
            if readable or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    return await runner.run(full=full)


# --- reading back with acryl-datahub ------------------------------------------------------------------------------


def read_back(path: Path) -> list[MetadataChangeProposalWrapper]:
    """Every MCP of the file, through acryl-datahub's own file source."""
    source = GenericFileSource(PipelineContext(run_id="read-back"), FileSourceConfig(path=str(path)))
    proposals = []
    for unit in source.get_workunits():
        assert isinstance(unit.metadata, MetadataChangeProposalWrapper), unit.metadata
        proposals.append(unit.metadata)
    report = source.get_report()
    assert not report.failures, report.failures
    assert not report.warnings, report.warnings
    source.close()
    return proposals


async def run_file_pipeline(path: Path) -> int:
    """The `file` source into a blackhole sink, as `datahub ingest` runs it: no failure, no warning. In a thread, as
    the pipeline runs an event loop of its own (for its best-effort version check, which a thread skips)."""
    return await asyncio.to_thread(_run_file_pipeline, path)


def _run_file_pipeline(path: Path) -> int:
    pipeline = Pipeline.create(
        {
            "run_id": "asset-gateway-read-back",
            "source": {"type": "file", "config": {"path": str(path)}},
            "sink": {"type": "blackhole"},
        }
    )
    pipeline.run()
    pipeline.raise_from_status(raise_warnings=True)
    assert not pipeline.source.get_report().failures
    assert not pipeline.source.get_report().warnings
    assert not pipeline.sink.get_report().failures
    written: int = pipeline.sink.get_report().total_records_written
    return written


def latest(proposals: list[MetadataChangeProposalWrapper]) -> dict[tuple[str, str], dict[str, Any]]:
    """(urn, aspect name) -> the aspect as JSON (as sent to GMS), the last one written winning, as in DataHub."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for proposal in proposals:
        assert proposal.aspect is not None
        assert proposal.aspectName is not None
        assert proposal.validate()
        state[(proposal.entityUrn, proposal.aspectName)] = pre_json_transform(proposal.aspect.to_obj())
    return state


def check_first_state(state: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert {urn for urn, _ in state} == ALL_URNS

    orders = state[(URN_ORDERS, "datasetProperties")]
    assert orders["description"] == "Orders placed in the shop"
    assert orders["qualifiedName"] == "shop.public.orders"
    assert orders["customProperties"]["asset_gateway.key"] == _key(ORDERS)
    assert orders["customProperties"]["asset_gateway.namespace"] == ORDERS[0]
    assert state[(URN_ORDERS, "status")] == {"removed": False}
    owners = {(owner["owner"], owner["type"]) for owner in state[(URN_ORDERS, "ownership")]["owners"]}
    assert owners == {
        ("urn:li:corpGroup:data-platform", "TECHNICAL_OWNER"),
        ("urn:li:corpuser:alice@example.com", "TECHNICAL_OWNER"),
    }
    tags = [tag["tag"] for tag in state[(URN_ORDERS, "globalTags")]["tags"]]
    assert tags == ["urn:li:tag:pii", "urn:li:tag:tier:gold"]
    schema = state[(URN_ORDERS, "schemaMetadata")]
    assert schema["platform"] == "urn:li:dataPlatform:postgres"
    fields = {field["fieldPath"]: field for field in schema["fields"]}
    assert list(fields) == ["id", "amount", "customer_id", "created_at"]
    assert fields["id"]["nativeDataType"] == "integer"
    assert fields["id"]["description"] == "Order id"
    assert "NumberType" in next(iter(fields["amount"]["type"]["type"]))
    assert "TimeType" in next(iter(fields["created_at"]["type"]["type"]))

    customers = {field["fieldPath"]: field for field in state[(URN_CUSTOMERS, "schemaMetadata")]["fields"]}
    assert list(customers) == ["customer_id", "name", "address", "address.city", "address.zip"]
    assert "RecordType" in next(iter(customers["address"]["type"]["type"]))
    assert (URN_CUSTOMERS, "ownership") not in state  # the gateway knows no owner: DataHub's stay as they are

    dashboard = state[(URN_DASHBOARD, "datasetProperties")]
    assert dashboard["name"] == "Revenue"
    assert dashboard["customProperties"] == {
        "asset_gateway.aliases": "superset://bi.example.com/dashboards/7",
        "asset_gateway.key": DASHBOARD_KEY,
        "asset_gateway.namespace": "superset://bi.example.com",
        "asset_gateway.type": "dashboard",
        "big": str(2**62),
        "layer": "bi",
        "nested": '{"a":null,"b":[1,2]}',
        "refresh_minutes": "15",
    }
    assert state[(URN_DASHBOARD, "subTypes")] == {"typeNames": ["Dashboard"]}
    assert {o["owner"] for o in state[(URN_DASHBOARD, "ownership")]["owners"]} == {
        "urn:li:corpuser:bob",
        "urn:li:corpGroup:bi",
    }

    facts = state[(URN_FACTS, "upstreamLineage")]
    assert sorted(upstream["dataset"] for upstream in facts["upstreams"]) == sorted([URN_CUSTOMERS, URN_ORDERS])
    assert all(upstream["type"] == "TRANSFORMED" for upstream in facts["upstreams"])
    fine = {
        (tuple(item["downstreams"]), tuple(item["upstreams"]), item.get("transformOperation"))
        for item in facts["fineGrainedLineages"]
    }
    assert fine == {
        (
            (f"urn:li:schemaField:({URN_FACTS},order_id)",),
            (f"urn:li:schemaField:({URN_ORDERS},id)",),
            None,
        ),
        (
            (f"urn:li:schemaField:({URN_FACTS},total)",),
            (f"urn:li:schemaField:({URN_ORDERS},amount)",),
            "INDIRECT:AGGREGATION",
        ),
        (
            (f"urn:li:schemaField:({URN_FACTS},customer_name)",),
            (f"urn:li:schemaField:({URN_CUSTOMERS},name)",),
            "DIRECT:IDENTITY",
        ),
    }
    assert all(item["upstreamType"] == "FIELD_SET" for item in facts["fineGrainedLineages"])
    assert all(item["downstreamType"] == "FIELD" for item in facts["fineGrainedLineages"])
    dashboard_lineage = state[(URN_DASHBOARD, "upstreamLineage")]
    assert [upstream["dataset"] for upstream in dashboard_lineage["upstreams"]] == [URN_FACTS]
    assert "fineGrainedLineages" not in dashboard_lineage or dashboard_lineage["fineGrainedLineages"] is None


def check_second_state(state: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert state[(URN_CUSTOMERS, "status")] == {"removed": True}
    facts = state[(URN_FACTS, "upstreamLineage")]
    assert [upstream["dataset"] for upstream in facts["upstreams"]] == [URN_ORDERS]
    downstream_fields = {field for item in facts["fineGrainedLineages"] for field in item["downstreams"]}
    assert downstream_fields == {
        f"urn:li:schemaField:({URN_FACTS},order_id)",
        f"urn:li:schemaField:({URN_FACTS},total)",
    }
    # The declared dashboard edge was not touched, and keeps its lineage.
    assert [u["dataset"] for u in state[(URN_DASHBOARD, "upstreamLineage")]["upstreams"]] == [URN_FACTS]


# --- the file sink -----------------------------------------------------------------------------------------------


async def test_file_sink_is_read_back_by_datahubs_file_source(db: Database, tmp_path: Path) -> None:
    await build_state(db)
    path = tmp_path / "out" / "datahub.json"
    runner = _runner(db, "dh-file", {"sink": "file", "path": str(path)})
    report = await ship(runner)
    assert report.error is None, report.error
    assert report.shipped > 0

    first = read_back(path)
    # What the shipper writes is what the library's own serialisation (`to_obj(simplified_structure=True)`) gives.
    parsed = list(read_metadata_file(path))
    assert all(isinstance(proposal, MetadataChangeProposalWrapper) for proposal in parsed)
    library = [proposal.to_obj(simplified_structure=True) for proposal in parsed]
    assert [file_obj(proposal) for proposal in parsed if isinstance(proposal, MetadataChangeProposalWrapper)] == library
    assert json.loads(path.read_text()) == json.loads(json.dumps(library))
    assert await run_file_pipeline(path) == len(first)
    check_first_state(latest(first))

    # Shipping again from where it stopped sends nothing; the changes that follow are appended.
    assert (await ship(runner)).shipped == 0
    await change_state(db)
    report = await ship(runner)
    assert report.error is None, report.error
    proposals = read_back(path)
    assert proposals[: len(first)] == first
    assert len(proposals) > len(first)
    assert await run_file_pipeline(path) == len(proposals)
    check_second_state(latest(proposals))

    # A full export gives the same state, whatever the batch size (the upstreams of a dataset are never split).
    full_path = tmp_path / "full.json"
    spec = ShipperSpec(name="dh-full", kind="datahub", config={"sink": "file", "path": str(full_path)}, batch_size=1)
    full = await ship(ShipperRunner(db, spec, create_shipper(spec)), full=True)
    assert full.error is None, full.error
    exported = latest(read_back(full_path))
    assert exported == latest(proposals)
    await runner.aclose()


async def test_datahub_lite_loads_the_file(db: Database, tmp_path: Path) -> None:
    await build_state(db)
    path = tmp_path / "datahub.json"
    assert (await ship(_runner(db, "dh-lite", {"sink": "file", "path": str(path)}))).error is None
    expected = latest(read_back(path))
    for engine in ("sqlite", "duckdb"):
        home = tmp_path / f"home-{engine}"
        home.mkdir()
        lite = {"type": engine, "config": {"file": str(home / f"lite.{engine}")}}
        # `datahub lite` reads ~/.datahubenv, which must also name a GMS (one that is never called here).
        (home / ".datahubenv").write_text(json.dumps({"gms": {"server": "http://127.0.0.1:9"}, "lite": lite}))
        datahub_cli(home, "lite", "import", "--file", str(path))
        assert set(datahub_cli(home, "lite", "list-urns").split()) == ALL_URNS, engine
        facts = json.loads(datahub_cli(home, "lite", "get", "--urn", URN_FACTS))
        upstreams = [upstream["dataset"] for upstream in facts["upstreamLineage"]["upstreams"]]
        assert sorted(upstreams) == sorted([URN_CUSTOMERS, URN_ORDERS]), engine
        assert len(facts["upstreamLineage"]["fineGrainedLineages"]) == 3
        orders = json.loads(datahub_cli(home, "lite", "get", "--urn", URN_ORDERS))
        assert orders["datasetProperties"]["description"] == "Orders placed in the shop"
        assert [field["fieldPath"] for field in orders["schemaMetadata"]["fields"]][:2] == ["id", "amount"]
        # Every aspect Lite holds is the one in the file.
        store = get_datahub_lite(lite, read_only=True)
        try:
            for urn in ALL_URNS:
                held = store.get(urn, None)
                assert held is not None
                aspects = {name: value for name, value in held.items() if name != "urn"}
                wanted = {name: value for (u, name), value in expected.items() if u == urn}
                assert aspects == wanted, (engine, urn)
        finally:
            store.close()


def datahub_cli(home: Path, *args: str) -> str:
    env = {
        **os.environ,
        "HOME": str(home),
        "DATAHUB_TELEMETRY_ENABLED": "false",
        "DATAHUB_SUPPRESS_LOGGING_MANAGER": "1",
    }
    command = [str(Path(sys.executable).parent / "datahub"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_torn_file_is_cut_back_to_its_last_whole_record(tmp_path: Path) -> None:
    path = tmp_path / "torn.json"
    append_records(path, [b'{\n  "a": 1\n}', b'{\n  "b": {\n    "c": 2\n  }\n}'])
    assert json.loads(path.read_text()) == [{"a": 1}, {"b": {"c": 2}}]
    append_records(path, [b'{\n  "d": 3\n}'])
    whole = path.read_bytes()
    path.write_bytes(whole[: whole.index(b'"d"') + 2])  # a crash in the middle of the third record
    append_records(path, [b'{\n  "e": 4\n}'])
    assert json.loads(path.read_text()) == [{"a": 1}, {"b": {"c": 2}}, {"e": 4}]
    path.write_bytes(b'[\n{\n  "x')  # torn inside the very first record
    append_records(path, [b'{\n  "f": 5\n}'])
    assert json.loads(path.read_text()) == [{"f": 5}]
    path.write_bytes(b"[]")  # what acryl-datahub's file sink writes when it has nothing
    append_records(path, [b'{\n  "g": 6\n}'])
    assert json.loads(path.read_text()) == [{"g": 6}]
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a JSON array"):
        append_records(path, [b"{}"])


# --- the rest sink -----------------------------------------------------------------------------------------------


class Receiver:
    """GMS as the emitter sees it: /config, restli's ingestProposalBatch and OpenAPI v3 entity writes."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.fail_with: int | None = None
        self.config = {"noCode": "true", "versions": {"acryldata/datahub": {"version": "v1.3.0"}}}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                receiver.requests.append(("GET", self.path, None))
                if self.path == "/config":
                    self._answer(200, receiver.config)
                else:
                    self._answer(404, {"message": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                receiver.requests.append(("POST", self.path, body))
                if receiver.fail_with is not None:
                    self._answer(receiver.fail_with, {"message": "receiver refused"})
                elif self.path.startswith("/aspects?action=ingestProposalBatch"):
                    self._answer(200, {"value": [None] * len(body["proposals"])})
                elif self.path.startswith("/openapi/v3/entity/"):
                    self._answer(200, [{"urn": item["urn"]} for item in body])
                else:
                    self._answer(404, {"message": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def proposals(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What arrived, as (urn, aspect name) -> aspect JSON, the last one winning."""
        state: dict[tuple[str, str], dict[str, Any]] = {}
        for method, path, body in self.requests:
            if method != "POST":
                continue
            if path.startswith("/aspects"):
                for proposal in body["proposals"]:
                    assert proposal["entityType"] == "dataset"
                    assert proposal["changeType"] == "UPSERT"
                    assert proposal["aspect"]["contentType"] == "application/json"
                    state[(proposal["entityUrn"], proposal["aspectName"])] = json.loads(proposal["aspect"]["value"])
            else:
                assert urlsplit(path).path == "/openapi/v3/entity/dataset"
                for item in body:
                    for name, aspect in item.items():
                        if name != "urn":
                            state[(item["urn"], name)] = aspect["value"]
        return state


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()
    found.thread.join(5)


@pytest.mark.parametrize("endpoint", ["restli", "openapi"])
async def test_rest_sink_posts_the_proposals_to_gms(
    db: Database, tmp_path: Path, receiver: Receiver, endpoint: str
) -> None:
    await build_state(db)
    config = {"sink": "rest", "server": receiver.url, "token": "secret-token", "endpoint": endpoint}
    runner = _runner(db, f"dh-rest-{endpoint}", config)
    report = await ship(runner)
    assert report.error is None, report.error
    assert receiver.requests[0][:2] == ("GET", "/config")
    assert any(
        path.startswith("/openapi/" if endpoint == "openapi" else "/aspects") for _, path, _ in receiver.requests
    )
    arrived = receiver.proposals()
    check_first_state(arrived)

    # What GMS received is what the file sink writes for the same changes.
    path = tmp_path / "same.json"
    assert (await ship(_runner(db, f"dh-file-{endpoint}", {"sink": "file", "path": str(path)}))).error is None
    assert arrived == latest(read_back(path))

    await change_state(db)
    assert (await ship(runner)).error is None
    check_second_state(receiver.proposals())
    await runner.aclose()


async def test_rest_sink_raises_when_gms_refuses(db: Database, receiver: Receiver) -> None:
    await build_state(db)
    receiver.fail_with = 500
    config = {"sink": "rest", "server": receiver.url, "retry_max_times": 0, "endpoint": "restli"}
    runner = _runner(db, "dh-refused", config)
    report = await ship(runner)
    assert report.error is not None
    assert "OperationalError" in report.error
    assert report.shipped == 0
    receiver.fail_with = None
    report = await ship(runner)  # the same changes again, accepted this time
    assert report.error is None
    assert report.shipped > 0
    check_first_state(receiver.proposals())
    await runner.aclose()


async def test_rest_sink_refuses_a_server_that_is_not_gms(db: Database, receiver: Receiver) -> None:
    await build_state(db)
    receiver.config = {"versions": {}}  # a DataHub frontend answers /config without noCode
    report = await ship(_runner(db, "dh-frontend", {"sink": "rest", "server": receiver.url, "retry_max_times": 0}))
    assert report.error is not None
    assert "ConfigurationError" in report.error
    assert not [request for request in receiver.requests if request[0] == "POST"]


# --- configuration and mapping -----------------------------------------------------------------------------------


def test_the_kind_is_registered_and_its_config_checked() -> None:
    assert shipper_kinds()["datahub"] is DataHubShipper
    with pytest.raises(ValueError, match="needs `server`"):
        create_shipper(ShipperSpec(name="x", kind="datahub", config={"sink": "rest"}))
    with pytest.raises(ValueError, match="needs `path`"):
        create_shipper(ShipperSpec(name="x", kind="datahub", config={"sink": "file"}))
    with pytest.raises(ValueError, match="env must be one of"):
        create_shipper(ShipperSpec(name="x", kind="datahub", config={"sink": "file", "path": "x", "env": "nowhere"}))


@pytest.mark.parametrize(
    ("key", "urn"),
    [
        (
            "postgres://db:5432/shop.public.orders",
            "urn:li:dataset:(urn:li:dataPlatform:postgres,shop.public.orders,DEV)",
        ),
        (
            "postgresql://db:5432/shop.public.orders",
            "urn:li:dataset:(urn:li:dataPlatform:postgres,shop.public.orders,DEV)",
        ),
        ("mysql://db:3306/shop.orders", "urn:li:dataset:(urn:li:dataPlatform:mysql,shop.orders,DEV)"),
        ("snowflake://org-acct/DB.SCH.T", "urn:li:dataset:(urn:li:dataPlatform:snowflake,db.sch.t,DEV)"),
        ("bigquery/proj.ds.t", "urn:li:dataset:(urn:li:dataPlatform:bigquery,proj.ds.t,DEV)"),
        ("s3://bucket/a/b.parquet", "urn:li:dataset:(urn:li:dataPlatform:s3,bucket/a/b.parquet,DEV)"),
        ("s3a://bucket/a/b.parquet", "urn:li:dataset:(urn:li:dataPlatform:s3,bucket/a/b.parquet,DEV)"),
        ("gs://bucket/a/b.csv", "urn:li:dataset:(urn:li:dataPlatform:gcs,bucket/a/b.csv,DEV)"),
        (
            "abfss://container@acct.dfs.core.windows.net/a/b",
            "urn:li:dataset:(urn:li:dataPlatform:abs,container/a/b,DEV)",
        ),
        ("kafka://broker:9092/orders.v1", "urn:li:dataset:(urn:li:dataPlatform:kafka,orders.v1,DEV)"),
        ("hive://metastore:9083/raw.orders", "urn:li:dataset:(urn:li:dataPlatform:hive,raw.orders,DEV)"),
        ("file://host/tmp/x.csv", "urn:li:dataset:(urn:li:dataPlatform:file,tmp/x.csv,DEV)"),
        ("awsathena://athena.eu-west-1.amazonaws.com/c.d.t", "urn:li:dataset:(urn:li:dataPlatform:athena,c.d.t,DEV)"),
        ("warehouse/sales.orders", "urn:li:dataset:(urn:li:dataPlatform:dbt,sales.orders,DEV)"),
        ("just-a-name", "urn:li:dataset:(urn:li:dataPlatform:external,just-a-name,DEV)"),
        ("team@corp/x", "urn:li:dataset:(urn:li:dataPlatform:external,team@corp/x,DEV)"),
        ("postgres://db:5432/a,b(c)", "urn:li:dataset:(urn:li:dataPlatform:postgres,a%2Cb%28c%29,DEV)"),
        ("postgres://other:5432/shop.t", "urn:li:dataset:(urn:li:dataPlatform:postgres,eu.shop.t,DEV)"),
    ],
)
def test_dataset_urns(key: str, urn: str) -> None:
    config = DataHubShipperConfig(
        sink="file",
        path=Path("x"),
        env="dev",
        platform_map={"warehouse": "dbt"},
        platform_instance_map={"postgres://other:5432": "eu"},
    )
    assert UrnMapper(config).urn(key) == urn


def test_field_types() -> None:
    expected = {
        "INTEGER": "NumberType",
        "numeric(10,2)": "NumberType",
        "double precision": "NumberType",
        "boolean": "BooleanType",
        "date": "DateType",
        "timestamp with time zone": "TimeType",
        "character varying(20)": "StringType",
        "varchar": "StringType",
        "uuid": "StringType",
        "bytea": "BytesType",
        "array<string>": "ArrayType",
        "text[]": "ArrayType",
        "map<string,int>": "MapType",
        "struct<a:int>": "RecordType",
        "jsonb": "RecordType",
        "geometry": "NullType",
        "": "NullType",
    }
    found = {native: type(field_type(native, False).type).__name__.removesuffix("Class") for native in expected}
    assert found == expected


async def test_lineage_names_an_upstream_by_its_namespace_and_name(db: Database, tmp_path: Path) -> None:
    """An asset declared with a namespace and name its key does not spell is one dataset, in lineage too."""
    async with db.transaction() as session:
        legacy = AssetSpec(key="legacy-orders", namespace=ORDERS[0], name="legacy.public.orders", tags=["legacy"])
        await upsert_asset(session, legacy, NOW)
        await upsert_asset(session, AssetSpec(key=DASHBOARD_KEY, upstream_keys=["legacy-orders"]), NOW)
    path = tmp_path / "names.json"
    assert (await ship(_runner(db, "dh-names", {"sink": "file", "path": str(path)}))).error is None
    state = latest(read_back(path))
    legacy_urn = "urn:li:dataset:(urn:li:dataPlatform:postgres,legacy.public.orders,PROD)"
    assert state[(legacy_urn, "globalTags")] == {"tags": [{"tag": "urn:li:tag:legacy"}]}
    assert [upstream["dataset"] for upstream in state[(URN_DASHBOARD, "upstreamLineage")]["upstreams"]] == [legacy_urn]


async def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    shipper = create_shipper(
        ShipperSpec(name="x", kind="datahub", config={"sink": "file", "path": str(tmp_path / "f")})
    )
    await shipper.ship(ChangeBatch())
    assert not (tmp_path / "f").exists()
