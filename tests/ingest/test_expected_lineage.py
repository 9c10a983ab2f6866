"""Lineage the corpus describes comes out of the gateway, on SQLite and Postgres.

(a) Integration-test expectations of Spark (create table as select) and dbt (event lists), completed with
    concrete values where they hold placeholders or leave fields out, yield exactly the edges their events
    describe: for each run, every input feeds every output (the events of a run accumulate).
(b) The compatibility-tests Airflow scenario yields every lineage link Dataplex is expected to show for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from tests.ingest.corpus import (
    CORPUS,
    Edge,
    Filler,
    InventoryRow,
    assets_by_key,
    inventory_rows,
    lineage_edges,
    params,
    post_json,
    read_events,
    require_corpus,
)

CTAS_FILE = re.compile(r"(ctas|asselect)", re.IGNORECASE)
SPARK_CTAS = inventory_rows(
    lambda row: row.path.startswith("openlineage-spark/") and bool(CTAS_FILE.search(row.path.rsplit("/", 1)[-1]))
)
DBT_LISTS = inventory_rows(lambda row: row.path.startswith("openlineage-dbt/") and row.n_events > 0)
AIRFLOW_EVENTS = "compatibility-tests/consumer/scenarios/airflow/events"
DATAPLEX_LINKS = "compatibility-tests/consumer/consumers/dataplex/scenarios/airflow/validation/links/links.json"
_ORDER = {"START": 0, "RUNNING": 1, "OTHER": 2, "COMPLETE": 3, "FAIL": 3, "ABORT": 3}


def _key(dataset: dict[str, Any]) -> str:
    return f"{dataset['namespace']}/{dataset['name']}"


async def post_all(client: httpx.AsyncClient, events: list[dict[str, Any]], origin: str) -> None:
    response = await post_json(client, events)
    assert response.status_code == 201, f"{origin}: {response.text[:2000]}"
    report = response.json()
    assert report["rejected"] == [], f"{origin}: {report['rejected'][:5]}"
    assert report["accepted"] == len(events), f"{origin}: {report}"


async def described_edges(client: httpx.AsyncClient, events: Sequence[dict[str, Any]]) -> dict[Edge, set[Any]]:
    """The edges the events describe, by asset key: for each run, each of its inputs (over all its events)
    feeds each of its outputs; an asset feeding itself is no edge. -> the jobs along each edge."""
    runs: dict[str, tuple[set[str], set[str], tuple[str, str]]] = {}
    for event in events:
        inputs, outputs, _ = runs.setdefault(
            event["run"]["runId"], (set(), set(), (event["job"]["namespace"], event["job"]["name"]))
        )
        inputs.update(_key(dataset) for dataset in event.get("inputs") or [])
        outputs.update(_key(dataset) for dataset in event.get("outputs") or [])
    # A dataset is the asset it resolves to (a TABLE symlink may name it): ask the gateway, then check below.
    keys = sorted({key for inputs, outputs, _ in runs.values() for key in inputs | outputs})
    assets = await assets_by_key(client, keys)
    missing = [key for key in keys if assets[key] is None]
    assert not missing, f"datasets with no asset: {missing}"
    resolved = {key: asset["key"] for key, asset in assets.items() if asset is not None}
    edges: dict[Edge, set[Any]] = {}
    for inputs, outputs, job in runs.values():
        for upstream in inputs:
            for downstream in outputs:
                if resolved[upstream] != resolved[downstream]:
                    edges.setdefault((resolved[upstream], resolved[downstream]), set()).add(job)
    return edges


def _check_resolution(events: Sequence[dict[str, Any]], resolved: dict[str, str]) -> None:
    for event in events:
        for dataset in _datasets(event):
            identifiers = ((dataset.get("facets") or {}).get("symlinks") or {}).get("identifiers") or []
            tables = {_key(identifier) for identifier in identifiers if identifier["type"].upper() == "TABLE"}
            assert resolved[_key(dataset)] in (tables or {_key(dataset)}), (_key(dataset), resolved[_key(dataset)])


def _describe(edges: dict[Edge, set[Any]]) -> str:
    return "\n".join(f"  {up} -> {down} by {sorted(jobs)}" for (up, down), jobs in sorted(edges.items())) or "  none"


async def resolve(client: httpx.AsyncClient, events: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Dataset key -> asset key; an asset is the dataset itself, or the table a TABLE symlink names."""
    keys = sorted({_key(dataset) for event in events for dataset in _datasets(event)})
    resolved = {key: asset["key"] for key, asset in (await assets_by_key(client, keys)).items() if asset}
    _check_resolution(events, resolved)
    return resolved


def _datasets(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(event.get("inputs") or []), *(event.get("outputs") or [])]


async def assert_lineage_is(
    client: httpx.AsyncClient, events: Sequence[dict[str, Any]], origin: str
) -> dict[Edge, set[Any]]:
    expected = await described_edges(client, events)
    await resolve(client, events)
    actual = await lineage_edges(client)
    assert actual == expected, f"{origin}\nexpected:\n{_describe(expected)}\nthe gateway shows:\n{_describe(actual)}"
    return actual


# --- (a) Spark create-table-as-select ----------------------------------------------------------------------


def _run_name(row: InventoryRow) -> str:
    """The run a Spark expectation belongs to: its file name without the Start/Running/Complete/End suffix."""
    stem = row.path.rsplit("/", 1)[-1].removesuffix(".json")
    return re.sub(r"(Start|Running|Complete|End)(Event)?$", "", stem)


def spark_ctas_events() -> list[dict[str, Any]]:
    """Every CTAS expectation, completed: one run (one run id, one job) per test of the Spark integration,
    its START before its COMPLETE."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in SPARK_CTAS:
        runs.setdefault(_run_name(row), []).extend(read_events(row.file))
    events: list[dict[str, Any]] = []
    for name, expectations in sorted(runs.items()):
        ordered = sorted(expectations, key=lambda event: _ORDER.get(event.get("eventType", "OTHER"), 2))
        events.extend(Filler(name).fill(ordered, job_name=f"spark_integration.{name}"))
    return events


async def test_spark_create_table_as_select_yields_its_edges(client: httpx.AsyncClient) -> None:
    require_corpus()
    assert len(SPARK_CTAS) >= 4, [row.path for row in SPARK_CTAS]
    events = spark_ctas_events()
    await post_all(client, events, "Spark CTAS expectations")
    edges = await assert_lineage_is(client, events, "Spark CTAS expectations")
    # Each input/output pair of each event is an edge, along the event's job.
    resolved = await resolve(client, events)
    pairs = 0
    for event in events:
        for source in event.get("inputs") or []:
            for target in event.get("outputs") or []:
                edge = (resolved[_key(source)], resolved[_key(target)])
                assert edge in edges, f"no edge {_key(source)} -> {_key(target)} ({edge})"
                assert (event["job"]["namespace"], event["job"]["name"]) in edges[edge]
                pairs += 1
    assert pairs >= 2, "the CTAS expectations should pair inputs with outputs"


# --- (a) dbt event lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize("row", params(DBT_LISTS, lambda row: row.path.removeprefix("openlineage-dbt/")))
async def test_dbt_event_list_yields_its_model_dag(client: httpx.AsyncClient, row: InventoryRow | None) -> None:
    require_corpus()
    assert row is not None
    events = Filler(row.path).fill(read_events(row.file))
    assert len(events) == row.n_events
    await post_all(client, events, row.path)
    await assert_lineage_is(client, events, row.path)


def test_dbt_run_ids_are_filled_consistently() -> None:
    """START and COMPLETE of a job share a run id; a parent facet names its parent job's run."""
    require_corpus()
    assert len(DBT_LISTS) >= 20
    for row in DBT_LISTS:
        events = Filler(row.path).fill(read_events(row.file))
        by_job: dict[tuple[str, str], set[str]] = {}
        for event in events:
            by_job.setdefault((event["job"]["namespace"], event["job"]["name"]), set()).add(event["run"]["runId"])
        assert all(len(run_ids) == 1 for run_ids in by_job.values()), row.path
        for event in events:
            parent = (event["run"].get("facets") or {}).get("parent")
            if parent and (parent["job"]["namespace"], parent["job"]["name"]) in by_job:
                assert {parent["run"]["runId"]} == by_job[(parent["job"]["namespace"], parent["job"]["name"])]
        assert "{{" not in json.dumps(events), row.path


# --- (b) the Airflow scenario against Dataplex's expected links --------------------------------------------

_FQN = re.compile(r"^(?P<system>[a-z]+):(?P<rest>.+)$")
_IN_CONTAINER = re.compile(r"^(?P<container>[^.`]+)\.`(?P<path>.+)`$")


def dataplex_dataset(fully_qualified_name: str) -> tuple[str, str]:
    """A Dataplex fully qualified name -> the OpenLineage (namespace, name) it was made from, as the
    OpenLineage naming spec and Dataplex map them: `bigquery:project.dataset.table` is BigQuery's
    (`bigquery`, `project.dataset.table`), `gcs:bucket.`path`` is (`gs://bucket`, `path`),
    `filesystem:localhost.`path`` is a local file (`file`, `/path`)."""
    matched = _FQN.match(fully_qualified_name)
    assert matched is not None, fully_qualified_name
    system, rest = matched.group("system"), matched.group("rest")
    if system == "bigquery":
        return "bigquery", rest
    located = _IN_CONTAINER.match(rest)
    assert located is not None, fully_qualified_name
    if system == "gcs":
        return f"gs://{located.group('container')}", located.group("path")
    if system == "filesystem" and located.group("container") == "localhost":
        return "file", "/" + located.group("path")
    raise AssertionError(f"no OpenLineage naming known for {fully_qualified_name}")


async def test_airflow_scenario_shows_every_dataplex_link(client: httpx.AsyncClient) -> None:
    corpus = require_corpus()
    files = sorted((corpus / AIRFLOW_EVENTS).glob("*.json"))
    assert len(files) >= 30
    events = [event for path in files for event in read_events(path)]
    named = {(dataset["namespace"], dataset["name"]) for event in events for dataset in _datasets(event)}
    links = json.loads((CORPUS / DATAPLEX_LINKS).read_text(encoding="utf-8"))
    assert len(links) >= 10
    expected: list[tuple[str, str]] = []
    for link in links:
        source = dataplex_dataset(link["source"]["fully_qualified_name"])
        target = dataplex_dataset(link["target"]["fully_qualified_name"])
        # The mapping is right only if it lands on datasets the events name.
        assert source in named, (link, source)
        assert target in named, (link, target)
        expected.append((f"{source[0]}/{source[1]}", f"{target[0]}/{target[1]}"))

    await post_all(client, events, AIRFLOW_EVENTS)
    assets = await assets_by_key(client, [key for pair in expected for key in pair])
    edges = await lineage_edges(client)
    missing = []
    for upstream, downstream in expected:
        up, down = assets[upstream], assets[downstream]
        assert up is not None, upstream
        assert down is not None, downstream
        if (up["key"], down["key"]) not in edges:
            missing.append(f"{upstream} -> {downstream}")
    assert not missing, "Dataplex links the gateway does not show:\n" + "\n".join(missing)
