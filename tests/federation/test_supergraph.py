"""The gateway in a real supergraph: composed by @apollo/composition with a second subgraph, served by @apollo/gateway.

The Node harness beside this file (`make test` installs it with `npm ci`): `costs.mjs` is a subgraph that extends
our `Asset @key(fields: "key")` with `monthlyCost`, `compose.mjs` composes SDLs with `composeServices` and refuses
errors and hints, `supergraph.mjs` runs the Apollo gateway on the composed supergraph. Without node the tests skip,
except under CI=true, where they fail.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    DirectiveNode,
    EnumTypeDefinitionNode,
    EnumValueNode,
    ObjectTypeDefinitionNode,
    StringValueNode,
    parse,
)

from tests.test_server_process import gateway_env, run_cli, serving

HARNESS = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() == "true"
READY = re.compile(r"ready at (http://\S+)")
READY_WITHIN_SECONDS = 20
PRODUCER = "https://github.com/example/asset-gateway-tests"

ORDERS = "postgres://shop-db:5432/shop.public.orders"
CUSTOMERS = "postgres://shop-db:5432/shop.public.customers"
STG_ORDERS = "snowflake://acme/analytics.staging.stg_orders"
FCT_ORDERS = "snowflake://acme/analytics.marts.fct_orders"
DASHBOARD = "superset://bi.acme/dashboard/revenue"
OWNERS = {
    ORDERS: ["team:checkout"],
    CUSTOMERS: ["team:checkout"],
    STG_ORDERS: ["team:data-platform"],
    FCT_ORDERS: ["team:analytics"],
    DASHBOARD: ["team:finance"],
}
LOADED_AT = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
# (job, inputs, outputs, minutes after LOADED_AT): the nightly chain orders -> staging -> mart -> dashboard.
RUNS = [
    ("load_orders", [ORDERS], [STG_ORDERS], 0),
    ("fct_orders", [STG_ORDERS, CUSTOMERS], [FCT_ORDERS], 10),
    ("refresh_revenue", [FCT_ORDERS], [DASHBOARD], 20),
]


def monthly_cost(key: str) -> float:
    """What costs.mjs answers for a key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 100_000 / 100


# --- the Node harness --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the harness installed; fails under CI=true when either is missing, skips otherwise."""
    found = shutil.which("node")
    problem = None
    if found is None:
        problem = "node is needed for the federation tests"
    elif not (HARNESS / "node_modules" / "@apollo" / "gateway").is_dir():
        problem = f"the federation harness is not installed: run `make test`, or `npm ci` in {HARNESS}"
    if problem is not None:
        if IN_CI:
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    assert found is not None
    return found


def node_env() -> dict[str, str]:
    # No APOLLO_KEY or graph ref may turn the gateway into a managed-federation client.
    return {name: value for name, value in os.environ.items() if not name.startswith("APOLLO_")}


@contextmanager
def node_service(node: str, script: str, log: Path, *args: str) -> Iterator[str]:
    """Runs a harness script until the block ends; yields the URL it prints once it listens."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [node, script, "--port", "0", *args],
            cwd=HARNESS,
            env=node_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        while (ready := READY.search(log.read_text())) is None:
            assert process.poll() is None, f"{script} exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{script} did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield ready.group(1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


def compose(node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, "compose.mjs", *args],
        cwd=HARNESS,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def post(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def _graphs(directives: Iterable[DirectiveNode] | None, name: str) -> set[str]:
    """The subgraphs named by the `graph:` arguments of the `name` directives (join__Graph values, lower-cased)."""
    return {
        argument.value.value.lower()
        for directive in directives or ()
        if directive.name.value == name
        for argument in directive.arguments or ()
        if argument.name.value == "graph" and isinstance(argument.value, EnumValueNode)
    }


def join_fields(supergraph: str, type_name: str) -> dict[str, set[str]]:
    """field -> the subgraphs that resolve it, for one object type of a supergraph."""
    for definition in parse(supergraph).definitions:
        if isinstance(definition, ObjectTypeDefinitionNode) and definition.name.value == type_name:
            in_type = _graphs(definition.directives, "join__type")
            # A field without @join__field is resolvable in every subgraph that defines the type.
            return {
                field.name.value: _graphs(field.directives, "join__field") or in_type
                for field in definition.fields or ()
            }
    raise AssertionError(f"no type {type_name} in the supergraph")


def join_graph_urls(supergraph: str) -> dict[str, str]:
    """join__Graph value -> the URL the supergraph routes that subgraph to."""
    urls: dict[str, str] = {}
    for definition in parse(supergraph).definitions:
        if isinstance(definition, EnumTypeDefinitionNode) and definition.name.value == "join__Graph":
            for value in definition.values or ():
                for directive in value.directives or ():
                    for argument in directive.arguments or ():
                        if directive.name.value == "join__graph" and argument.name.value == "url":
                            assert isinstance(argument.value, StringValueNode)
                            urls[value.name.value] = argument.value.value
    return urls


@pytest.fixture(scope="module")
def costs(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The costs subgraph (it keeps no state, so one serves every test here)."""
    with node_service(node, "costs.mjs", tmp_path_factory.mktemp("costs") / "costs.log") as url:
        yield url


@pytest.fixture(scope="module")
def cli_sdl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our subgraph SDL as `asset-gateway schema` prints it."""
    path = tmp_path_factory.mktemp("sdl") / "gateway.graphql"
    path.write_text(run_cli(gateway_env(), "schema").stdout)
    return path


# --- the database behind our gateway -----------------------------------------------------------------------


def dataset(key: str) -> dict[str, Any]:
    namespace, name = key.rsplit("/", 1)
    owners = [{"name": owner, "type": "TEAM"} for owner in OWNERS[key]]
    facet = {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/OwnershipDatasetFacet.json"}
    return {"namespace": namespace, "name": name, "facets": {"ownership": {**facet, "owners": owners}}}


def nightly_events() -> list[dict[str, Any]]:
    return [
        {
            "eventType": "COMPLETE",
            "eventTime": (LOADED_AT + timedelta(minutes=minutes)).isoformat(),
            "producer": PRODUCER,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": f"0190c2a0-0000-7000-8000-{index:012d}"},
            "job": {"namespace": "airflow://prod", "name": job},
            "inputs": [dataset(key) for key in inputs],
            "outputs": [dataset(key) for key in outputs],
        }
        for index, (job, inputs, outputs, minutes) in enumerate(RUNS)
    ]


@pytest.fixture
def served_env(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """`asset-gateway serve`'s environment on an empty database of the dialect."""
    if dialect == "sqlite":
        return gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "data"))
    url: str = request.getfixturevalue("clean_postgres")  # created and migrated by the session fixture
    return gateway_env(GATEWAY_DATABASE_URL=url, GATEWAY_DATA_DIR=str(tmp_path / "unused"))


# --- the tests ---------------------------------------------------------------------------------------------

SUPERGRAPH_QUERY = """query($prefix: String!, $dashboard: String!, $candidates: [String!]!) {
  assets(first: 10, filter: {keyPrefix: $prefix}, orderBy: KEY) {
    totalCount
    edges { node { key owners lastMaterializedAt monthlyCost } }
  }
  asset(key: $dashboard) { key owners monthlyCost lastExecution { job { name } } }
  lineage(key: $dashboard, direction: UPSTREAM, depth: 5) {
    nodes { depth asset { key owners monthlyCost } }
    edges { upstreamKey downstreamKey }
  }
  costliest(keys: $candidates, first: 2) { key monthlyCost owners lastMaterializedAt }
}"""


def test_a_supergraph_joins_our_assets_with_another_subgraphs_fields(
    node: str, costs: str, cli_sdl: Path, served_env: dict[str, str], tmp_path: Path
) -> None:
    with serving(served_env, tmp_path / "gateway.log") as (base, _process):
        loaded = httpx.post(f"{base}/api/v1/lineage", json=nightly_events(), timeout=30)
        assert loaded.status_code == 201, loaded.text

        # The SDL the running subgraph serves is the one `asset-gateway schema` prints.
        served_sdl = post(f"{base}/graphql", "{ _service { sdl } }")["_service"]["sdl"]
        assert served_sdl.strip() == cli_sdl.read_text().strip()

        supergraph_file = tmp_path / "supergraph.graphql"
        composed = compose(
            node, "--subgraph", f"gateway={base}/graphql", "--subgraph", f"costs={costs}", "--out", str(supergraph_file)
        )
        assert composed.returncode == 0, composed.stderr
        assert "composition hint" not in composed.stderr
        supergraph = supergraph_file.read_text()
        assert join_graph_urls(supergraph) == {"GATEWAY": f"{base}/graphql", "COSTS": costs}
        asset_fields = join_fields(supergraph, "Asset")
        assert asset_fields["monthlyCost"] == {"costs"}
        assert asset_fields["key"] == {"gateway", "costs"}
        for ours in ("owners", "lastMaterializedAt", "lastExecution", "upstream", "executions"):
            assert asset_fields[ours] == {"gateway"}, ours
        query_fields = join_fields(supergraph, "Query")
        assert query_fields["costliest"] == {"costs"}
        assert query_fields["lineage"] == query_fields["assets"] == {"gateway"}

        with node_service(
            node, "supergraph.mjs", tmp_path / "supergraph.log", "--supergraph", str(supergraph_file)
        ) as url:
            candidates = [ORDERS, CUSTOMERS, STG_ORDERS, FCT_ORDERS, DASHBOARD]
            data = post(
                url,
                SUPERGRAPH_QUERY,
                {"prefix": "snowflake://acme/", "dashboard": DASHBOARD, "candidates": candidates},
            )

    # assets: ours (key, owners, lastMaterializedAt), then costs' monthlyCost through an entity fetch.
    assert data["assets"]["totalCount"] == 2
    nodes = [edge["node"] for edge in data["assets"]["edges"]]
    assert [node["key"] for node in nodes] == [FCT_ORDERS, STG_ORDERS]
    for found, minutes in zip(nodes, (10, 0), strict=True):
        assert found["owners"] == OWNERS[found["key"]]
        assert datetime.fromisoformat(found["lastMaterializedAt"]) == LOADED_AT + timedelta(minutes=minutes)
        assert found["monthlyCost"] == monthly_cost(found["key"])

    assert data["asset"] == {
        "key": DASHBOARD,
        "owners": OWNERS[DASHBOARD],
        "monthlyCost": monthly_cost(DASHBOARD),
        "lastExecution": {"job": {"name": "refresh_revenue"}},
    }

    depths = {node["asset"]["key"]: node["depth"] for node in data["lineage"]["nodes"]}
    assert depths == {DASHBOARD: 0, FCT_ORDERS: -1, STG_ORDERS: -2, CUSTOMERS: -2, ORDERS: -3}
    for found in data["lineage"]["nodes"]:
        key = found["asset"]["key"]
        assert found["asset"] == {"key": key, "owners": OWNERS[key], "monthlyCost": monthly_cost(key)}
    edges = {(edge["upstreamKey"], edge["downstreamKey"]) for edge in data["lineage"]["edges"]}
    assert edges == {(ORDERS, STG_ORDERS), (STG_ORDERS, FCT_ORDERS), (CUSTOMERS, FCT_ORDERS), (FCT_ORDERS, DASHBOARD)}

    # The other way round: costs picks the assets, and the gateway resolves our fields through our _entities.
    costliest = sorted(candidates, key=lambda key: (-monthly_cost(key), key))[:2]
    assert [asset["key"] for asset in data["costliest"]] == costliest
    for asset in data["costliest"]:
        assert asset["monthlyCost"] == monthly_cost(asset["key"])
        assert asset["owners"] == OWNERS[asset["key"]]
        materialized = {STG_ORDERS: 0, FCT_ORDERS: 10, DASHBOARD: 20}.get(asset["key"])
        expected = None if materialized is None else LOADED_AT + timedelta(minutes=materialized)
        found_at = asset["lastMaterializedAt"]
        assert (None if found_at is None else datetime.fromisoformat(found_at)) == expected


def test_our_printed_sdl_composes_cleanly_offline(node: str, cli_sdl: Path, tmp_path: Path) -> None:
    out = tmp_path / "supergraph.graphql"
    composed = compose(
        node,
        *("--subgraph", "gateway=http://127.0.0.1:4000/graphql", "--sdl", f"gateway={cli_sdl}"),
        *("--subgraph", "costs=http://127.0.0.1:4001/", "--sdl", f"costs={HARNESS / 'costs.graphql'}"),
        *("--out", str(out)),
    )
    assert composed.returncode == 0, composed.stderr
    assert "composition hint" not in composed.stderr
    fields = join_fields(out.read_text(), "Asset")
    assert fields["monthlyCost"] == {"costs"}
    assert fields["owners"] == {"gateway"}
    for entity in ("Execution", "Job"):
        assert join_fields(out.read_text(), entity)  # our other entities made it into the supergraph


def test_composition_refuses_errors_and_hints(node: str, cli_sdl: Path, tmp_path: Path) -> None:
    """compose.mjs is the check of the test above: it must fail when the subgraphs disagree."""
    gateway = ("--subgraph", "gateway=http://127.0.0.1:4000/graphql", "--sdl", f"gateway={cli_sdl}")
    costs_sdl = (HARNESS / "costs.graphql").read_text()

    conflicting = tmp_path / "conflicting.graphql"  # a key of another type: an error
    conflicting.write_text(costs_sdl.replace("  key: String!", "  key: Int!"))
    result = compose(node, *gateway, "--subgraph", "costs=http://127.0.0.1:4001/", "--sdl", f"costs={conflicting}")
    assert result.returncode == 1
    assert "composition error" in result.stderr
    assert "Asset.key" in result.stderr

    described = tmp_path / "described.graphql"  # another description of Asset: a hint, refused unless allowed
    described.write_text(costs_sdl.replace("type Asset @key", '"A line of the finance ledger."\ntype Asset @key'))
    costs = ("--subgraph", "costs=http://127.0.0.1:4001/", "--sdl", f"costs={described}")
    result = compose(node, *gateway, *costs)
    assert result.returncode == 1
    assert "composition hint INCONSISTENT_DESCRIPTION (refused)" in result.stderr
    result = compose(node, *gateway, *costs, "--allow-hint", "INCONSISTENT_DESCRIPTION")
    assert result.returncode == 0, result.stderr
    assert "composition hint INCONSISTENT_DESCRIPTION (allowed)" in result.stderr
    assert "type Asset" in result.stdout
