"""A real OpenLineage producer, unchanged: `dbt-ol run` on DuckDB emits to a served gateway.

tests/dbt_project is copied to a temporary directory, seeded with plain `dbt seed`, then run with `dbt-ol run`
(openlineage-dbt), which POSTs its events to /api/v1/lineage of an `asset-gateway serve` subprocess. The lineage
the gateway then answers over GraphQL must be the DAG of dbt's own manifest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

BIN = Path(sys.executable).parent
PROJECT = Path(__file__).parent / "dbt_project"
JOB_NAMESPACE = "dbt-test"
EXPECTED_MODELS = {"stg_orders", "stg_customers", "fct_orders", "customer_revenue"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without variables that would reconfigure the tools under test."""
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    """The URL of a real `asset-gateway serve` on a free loopback port, with its SQLite database in tmp_path."""
    data_dir = tmp_path / "gateway"
    data_dir.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gateway.log"
    env = {**_clean_env("GATEWAY_"), "GATEWAY_DATA_DIR": str(data_dir)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "asset-gateway"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the gateway exited with {process.returncode}:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not answer /healthz within 30 s:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _run(tool: str, *args: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (
        f"{tool} {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )


def _graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def _relation(node: dict[str, Any]) -> str:
    """database.schema.table, as dbt-ol names a dataset: a source's table is its identifier, a model's its alias."""
    table = node["identifier"] if node["resource_type"] == "source" else node["alias"]
    return f"{node['database']}.{node['schema']}.{table}"


def test_dbt_ol_run_lineage_matches_the_manifest(gateway: str, tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    warehouse = tmp_path / "warehouse.duckdb"
    env = {
        **_clean_env("DBT_", "OPENLINEAGE"),
        # dbt-ol runs `dbt` from the PATH.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_DUCKDB_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "OPENLINEAGE_URL": gateway,
        "OPENLINEAGE_NAMESPACE": JOB_NAMESPACE,
    }
    dirs = ("--project-dir", str(project), "--profiles-dir", str(project))
    _run("dbt", "seed", *dirs, cwd=tmp_path, env=env)
    _run("dbt-ol", "run", *dirs, cwd=tmp_path, env=env)

    manifest = json.loads((project / "target" / "manifest.json").read_text())
    nodes = {**manifest["nodes"], **manifest["sources"]}
    models = {node_id: node for node_id, node in nodes.items() if node["resource_type"] == "model"}
    assert {node["name"] for node in models.values()} == EXPECTED_MODELS

    # The keys dbt-ol's datasets got, found by the database.schema.table that ends each of them.
    assets = _graphql(gateway, "{ assets(first: 500) { totalCount nodes { key } } }")["assets"]
    assert assets["totalCount"] == len(assets["nodes"])
    key_by_relation = {node["key"].rsplit("/", 1)[-1]: node["key"] for node in assets["nodes"]}

    def key_of(node_id: str) -> str:
        relation = _relation(nodes[node_id])
        assert relation in key_by_relation, f"{node_id} ({relation}) is no asset: {sorted(key_by_relation)}"
        return key_by_relation[relation]

    model_keys = {node_id: key_of(node_id) for node_id in models}
    # OpenLineage names a DuckDB table duckdb://<file path> + database.schema.table.
    assert all(key.startswith(f"duckdb://{warehouse}/") for key in model_keys.values()), model_keys

    for node_id, key in model_keys.items():
        parents = models[node_id]["depends_on"]["nodes"]
        assert parents, f"{node_id} depends on nothing"
        lineage = _graphql(
            gateway,
            """query ($key: String!) {
                 lineage(key: $key, direction: UPSTREAM, depth: 1) { edges { upstreamKey downstreamKey } } }""",
            key=key,
        )["lineage"]
        edges = {(edge["upstreamKey"], edge["downstreamKey"]) for edge in lineage["edges"]}
        assert edges == {(key_of(parent), key) for parent in parents}, node_id

    # One COMPLETE run of the dbt invocation, the parent of one COMPLETE run per model that wrote that model.
    executions = _graphql(
        gateway,
        """query ($namespace: String!) {
             executions(filter: {jobNamespace: $namespace}, first: 500) {
               nodes { runId state job { name } parent { runId } outputs { asset { key } } } } }""",
        namespace=JOB_NAMESPACE,
    )["executions"]["nodes"]
    assert {execution["state"] for execution in executions} == {"COMPLETE"}, executions
    roots = [execution for execution in executions if execution["parent"] is None]
    assert len(roots) == 1, roots
    children = [execution for execution in executions if execution["parent"] is not None]
    assert {child["parent"]["runId"] for child in children} == {roots[0]["runId"]}
    written = sorted(output["asset"]["key"] for child in children for output in child["outputs"])
    assert written == sorted(model_keys.values())
