"""The read side of the GraphQL API, end to end over HTTP, on SQLite and Postgres."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.helpers import error_codes, graphql, graphql_data

UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"
RECORD = "mutation($input: RecordExecutionInput!) { recordExecution(input: $input) { runId } }"
DELETE = "mutation($key: String!) { deleteAsset(key: $key) { key } }"


async def declare(client: httpx.AsyncClient, key: str, **fields: Any) -> None:
    await graphql_data(client, UPSERT, {"input": {"key": key, **fields}})


async def record(
    client: httpx.AsyncClient,
    job: str,
    run_id: str,
    state: str,
    event_time: str,
    inputs: list[str | dict[str, Any]] | None = None,
    outputs: list[str | dict[str, Any]] | None = None,
    namespace: str = "airflow://prod",
    **fields: Any,
) -> None:
    def touches(items: list[str | dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [{"key": item} if isinstance(item, str) else item for item in items or []]

    payload = {
        "job": {"namespace": namespace, "name": job},
        "runId": run_id,
        "state": state,
        "eventTime": event_time,
        "inputs": touches(inputs),
        "outputs": touches(outputs),
        **fields,
    }
    await graphql_data(client, RECORD, {"input": payload})


def keys_of(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["key"] for edge in connection["edges"]]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- single assets ---------------------------------------------------------------------------


async def test_asset_by_key_and_by_alias(client: httpx.AsyncClient) -> None:
    await declare(
        client,
        "postgres://shop-db:5432/shop.public.orders",
        type="table",
        displayName="Orders",
        aliases=["urn:li:dataset:orders", "/mnt/exports/orders"],
    )
    query = "query($key: String!) { asset(key: $key) { key namespace name type displayName aliases } }"
    by_key = await graphql_data(client, query, {"key": "postgres://shop-db:5432/shop.public.orders"})
    assert by_key["asset"] == {
        "key": "postgres://shop-db:5432/shop.public.orders",
        "namespace": "postgres://shop-db:5432",
        "name": "shop.public.orders",
        "type": "table",
        "displayName": "Orders",
        "aliases": ["/mnt/exports/orders", "urn:li:dataset:orders"],
    }
    by_alias = await graphql_data(client, query, {"key": "urn:li:dataset:orders"})
    assert by_alias == by_key
    assert (await graphql_data(client, query, {"key": "urn:li:dataset:nothing"}))["asset"] is None


async def test_key_without_authority_splits_at_first_slash(client: httpx.AsyncClient) -> None:
    await declare(client, "warehouse/analytics.orders")
    await declare(client, "plain-name")
    query = "query($key: String!) { asset(key: $key) { namespace name } }"
    assert (await graphql_data(client, query, {"key": "warehouse/analytics.orders"}))["asset"] == {
        "namespace": "warehouse",
        "name": "analytics.orders",
    }
    assert (await graphql_data(client, query, {"key": "plain-name"}))["asset"] == {
        "namespace": "default",
        "name": "plain-name",
    }


# --- the catalog -----------------------------------------------------------------------------

ORDERS = "pg://sales-db/sales.public.orders"
ORDER_ITEMS = "pg://sales-db/sales.public.order_items"
CUSTOMERS = "pg://sales-db/sales.public.customers"
CLICKS = "s3://lake/raw/clicks"
OLD_CLICKS = "s3://lake-archive/raw/clicks_2019"
PAYMENTS = "kafka://broker/topic.payments"


async def _catalog(client: httpx.AsyncClient) -> None:
    await declare(
        client,
        ORDERS,
        type="table",
        owners=["team:sales"],
        tags=["pii", "tier:1"],
        metadata={"sla": "daily", "rows": 10, "certified": True},
        description="Orders placed ONLINE",
    )
    await declare(client, ORDER_ITEMS, type="table", owners=["team:sales"], tags=["tier:2"])
    await declare(
        client,
        CUSTOMERS,
        type="table",
        owners=["team:sales", "team:crm"],
        tags=["pii"],
        metadata={"sla": "hourly", "rows": 5, "certified": False},
    )
    await declare(client, CLICKS, type="file", owners=["team:growth"], tags=["raw"], displayName="Click Stream")
    await declare(client, OLD_CLICKS, type="file", owners=["team:growth"], tags=["raw", "archive"])
    await declare(client, PAYMENTS, type="topic", owners=["team:sales"], tags=["pii", "tier:1", "stream"])
    await graphql_data(client, DELETE, {"key": PAYMENTS})
    await record(client, "load_orders", "run-orders", "COMPLETE", "2026-11-01T10:00:00Z", outputs=[ORDERS])
    await record(client, "load_clicks", "run-clicks", "FAIL", "2026-11-01T11:00:00Z", outputs=[CLICKS])


FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, sorted([ORDERS, ORDER_ITEMS, CUSTOMERS, CLICKS, OLD_CLICKS])),
    ({"keyPrefix": "pg://sales-db/"}, sorted([ORDERS, ORDER_ITEMS, CUSTOMERS])),
    # `_` is a LIKE wildcard: a prefix ending in it must not match "orders".
    ({"keyPrefix": "pg://sales-db/sales.public.order_"}, [ORDER_ITEMS]),
    ({"keys": [ORDERS, CLICKS, "nope://x"]}, sorted([ORDERS, CLICKS])),
    ({"search": "online"}, [ORDERS]),
    ({"search": "click stream"}, [CLICKS]),
    ({"search": "clicks"}, sorted([CLICKS, OLD_CLICKS])),
    ({"search": "%"}, []),
    ({"namespace": "s3://lake"}, [CLICKS]),
    ({"namespacePrefix": "s3://lake"}, sorted([CLICKS, OLD_CLICKS])),
    ({"types": ["file", "topic"]}, sorted([CLICKS, OLD_CLICKS])),
    ({"types": ["view"]}, []),
    ({"owner": "team:crm"}, [CUSTOMERS]),
    ({"owner": "team:sales"}, sorted([ORDERS, ORDER_ITEMS, CUSTOMERS])),
    ({"owner": "team"}, []),
    ({"tags": ["pii"]}, sorted([ORDERS, CUSTOMERS])),
    ({"tags": ["pii", "tier:1"]}, [ORDERS]),
    ({"tags": ["tier"]}, []),
    ({"metadata": [{"key": "sla", "value": "daily"}]}, [ORDERS]),
    ({"metadata": [{"key": "rows", "value": 5}]}, [CUSTOMERS]),
    ({"metadata": [{"key": "rows", "value": "5"}]}, []),
    ({"metadata": [{"key": "certified", "value": True}]}, [ORDERS]),
    ({"metadata": [{"key": "certified", "value": False}]}, [CUSTOMERS]),
    ({"metadata": [{"key": "sla", "value": "daily"}, {"key": "rows", "value": 5}]}, []),
    ({"lastStatus": ["FAIL"]}, [CLICKS]),
    ({"lastStatus": ["COMPLETE", "FAIL"]}, sorted([ORDERS, CLICKS])),
    ({"includeDeleted": True}, sorted([ORDERS, ORDER_ITEMS, CUSTOMERS, CLICKS, OLD_CLICKS, PAYMENTS])),
    ({"includeDeleted": True, "tags": ["stream"]}, [PAYMENTS]),
    ({"tags": ["stream"]}, []),
    ({"namespacePrefix": "pg://", "tags": ["pii"], "owner": "team:crm"}, [CUSTOMERS]),
    ({"materializedAfter": "2026-11-01T09:00:00Z"}, [ORDERS]),
    ({"materializedBefore": "2026-11-01T10:00:00Z"}, []),
]


async def test_assets_filters(client: httpx.AsyncClient) -> None:
    await _catalog(client)
    query = """query($filter: AssetFilterInput) {
        assets(filter: $filter, first: 100) { totalCount edges { node { key } } pageInfo { hasNextPage } } }"""
    for asset_filter, expected in FILTER_CASES:
        data = (await graphql_data(client, query, {"filter": asset_filter}))["assets"]
        assert keys_of(data) == expected, asset_filter
        assert data["totalCount"] == len(expected), asset_filter
        assert data["pageInfo"]["hasNextPage"] is False


async def test_asset_status_fields_after_runs(client: httpx.AsyncClient) -> None:
    await _catalog(client)
    query = """query($key: String!) { asset(key: $key) {
        lastStatus lastMaterializedAt lastExecution { runId state job { name } } } }"""
    orders = (await graphql_data(client, query, {"key": ORDERS}))["asset"]
    assert orders["lastStatus"] == "COMPLETE"
    assert parse_time(orders["lastMaterializedAt"]) == parse_time("2026-11-01T10:00:00+00:00")
    assert orders["lastExecution"] == {"runId": "run-orders", "state": "COMPLETE", "job": {"name": "load_orders"}}
    clicks = (await graphql_data(client, query, {"key": CLICKS}))["asset"]
    assert clicks["lastStatus"] == "FAIL"
    assert clicks["lastMaterializedAt"] is None
    assert clicks["lastExecution"]["runId"] == "run-clicks"
    customers = (await graphql_data(client, query, {"key": CUSTOMERS}))["asset"]
    assert customers == {"lastStatus": None, "lastMaterializedAt": None, "lastExecution": None}


PAGE = """query($first: Int, $after: String, $order: AssetOrder!) {
    assets(first: $first, after: $after, orderBy: $order) {
        totalCount
        edges { cursor node { key name updatedAt lastMaterializedAt } }
        pageInfo { hasNextPage endCursor } } }"""


async def _walk(client: httpx.AsyncClient, order: str, first: int) -> tuple[list[dict[str, Any]], list[int]]:
    nodes: list[dict[str, Any]] = []
    sizes: list[int] = []
    after = None
    while True:
        data = (await graphql_data(client, PAGE, {"first": first, "after": after, "order": order}))["assets"]
        sizes.append(len(data["edges"]))
        nodes.extend(edge["node"] for edge in data["edges"])
        if data["edges"]:
            assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            assert data["totalCount"] == len(nodes)
            return nodes, sizes
        after = data["pageInfo"]["endCursor"]
        assert len(sizes) < 50, "pagination does not end"


async def test_assets_pagination_in_every_order(client: httpx.AsyncClient) -> None:
    created: list[str] = []
    # Names sort differently from keys: the namespace comes first in the key.
    for index in range(23):
        key = f"ns{index % 4}://host/name-{(index * 7) % 23:02d}"
        await declare(client, key)
        created.append(key)
    materialized = created[:10]
    for position, key in enumerate(materialized):
        # Times out of creation order, all distinct.
        minute = (position * 7) % 10
        await record(
            client, f"job-{position}", f"run-{position}", "COMPLETE", f"2026-10-01T10:{minute:02d}:00Z", outputs=[key]
        )

    nodes, sizes = await _walk(client, "KEY", 5)
    assert sizes == [5, 5, 5, 5, 3]
    assert [node["key"] for node in nodes] == sorted(created)

    nodes, _ = await _walk(client, "NAME", 4)
    assert [node["name"] for node in nodes] == sorted(key.rsplit("/", 1)[1] for key in created)

    nodes, _ = await _walk(client, "UPDATED_AT_DESC", 6)
    times = [parse_time(node["updatedAt"]) for node in nodes]
    assert times == sorted(times, reverse=True)
    assert sorted(node["key"] for node in nodes) == sorted(created)

    nodes, _ = await _walk(client, "MATERIALIZED_AT_DESC", 3)
    with_time = [node for node in nodes if node["lastMaterializedAt"] is not None]
    assert [node["key"] for node in nodes[: len(with_time)]] == [node["key"] for node in with_time]
    times = [parse_time(node["lastMaterializedAt"]) for node in with_time]
    assert times == sorted(times, reverse=True)
    assert len(times) == len(set(times)) == 10
    # Assets never materialized come last, newest id first: the reverse of creation order.
    assert [node["key"] for node in nodes[10:]] == list(reversed(created[10:]))


async def test_assets_pages_stay_correct_while_rows_are_inserted(client: httpx.AsyncClient) -> None:
    for letter in "bdfhj":
        await declare(client, f"cat://x/{letter}")
    first = (await graphql_data(client, PAGE, {"first": 2, "order": "KEY"}))["assets"]
    assert keys_of(first) == ["cat://x/b", "cat://x/d"]
    await declare(client, "cat://x/a")
    await declare(client, "cat://x/e")
    rest = (await graphql_data(client, PAGE, {"first": 10, "after": first["pageInfo"]["endCursor"], "order": "KEY"}))[
        "assets"
    ]
    assert keys_of(rest) == ["cat://x/e", "cat://x/f", "cat://x/h", "cat://x/j"]
    assert rest["totalCount"] == 7


async def test_nodes_shortcut_matches_edges(client: httpx.AsyncClient) -> None:
    for letter in "abc":
        await declare(client, f"cat://x/{letter}")
    data = await graphql_data(client, "{ assets(first: 2) { nodes { key } edges { node { key } } } }")
    assert data["assets"]["nodes"] == [edge["node"] for edge in data["assets"]["edges"]]


async def test_namespaces_count_live_assets_per_type(client: httpx.AsyncClient) -> None:
    await _catalog(client)
    await declare(client, "s3://lake/raw/untyped")
    data = await graphql_data(client, "{ namespaces { name assetCount types { type count } } }")
    by_name = {item["name"]: item for item in data["namespaces"]}
    assert set(by_name) == {"pg://sales-db", "s3://lake", "s3://lake-archive"}
    assert by_name["pg://sales-db"]["assetCount"] == 3
    assert by_name["pg://sales-db"]["types"] == [{"type": "table", "count": 3}]
    lake = by_name["s3://lake"]
    assert lake["assetCount"] == 2
    assert {(item["type"], item["count"]) for item in lake["types"]} == {("file", 1), (None, 1)}


# --- lineage ---------------------------------------------------------------------------------

SRC1 = "pg://db/src1"
SRC2 = "pg://db/src2"
MID = "dw://wh/mid"
OUT = "dw://wh/out"
DASH = "bi://bi/dash"
DASH2 = "bi://bi/dash2"


async def _lineage_graph(client: httpx.AsyncClient) -> None:
    """src1, src2 -(j1)-> mid -(j2)-> out -(j3)-> dash; out -(declared, at the real now)-> dash2.

    The runs happened in 2001, long before any clock this test runs under declares dash2.
    """
    await record(client, "j1", "r1", "COMPLETE", "2001-01-01T00:00:00Z", inputs=[SRC1, SRC2], outputs=[MID])
    await record(client, "j2", "r2", "COMPLETE", "2001-02-01T00:00:00Z", inputs=[MID], outputs=[OUT])
    await record(client, "j3", "r3", "COMPLETE", "2001-03-01T00:00:00Z", inputs=[OUT], outputs=[DASH])
    await declare(client, DASH2, upstream=[OUT])


LINEAGE = """query($key: String!, $direction: LineageDirection!, $depth: Int, $asOf: DateTime, $jobs: Boolean!,
                  $limit: Int) {
    lineage(key: $key, direction: $direction, depth: $depth, asOf: $asOf, includeJobs: $jobs, limit: $limit) {
        root { key }
        nodes { depth asset { key } }
        edges { upstreamKey downstreamKey declared upstream { key } downstream { key } jobs { name } }
        jobs { namespace name }
        truncated } }"""


async def lineage(client: httpx.AsyncClient, key: str, direction: str = "BOTH", **options: Any) -> dict[str, Any]:
    variables = {"key": key, "direction": direction, "jobs": False, **options}
    data: dict[str, Any] = (await graphql_data(client, LINEAGE, variables))["lineage"]
    return data


def depths(graph: dict[str, Any]) -> dict[str, int]:
    return {node["asset"]["key"]: node["depth"] for node in graph["nodes"]}


async def test_lineage_directions_and_depth(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    up = await lineage(client, MID, "UPSTREAM", depth=1)
    assert up["root"] == {"key": MID}
    assert depths(up) == {MID: 0, SRC1: -1, SRC2: -1}
    down = await lineage(client, MID, "DOWNSTREAM", depth=2)
    assert depths(down) == {MID: 0, OUT: 1, DASH: 2, DASH2: 2}
    both = await lineage(client, MID, "BOTH", depth=1)
    assert depths(both) == {MID: 0, SRC1: -1, SRC2: -1, OUT: 1}
    assert both["truncated"] is False
    # Nodes come nearest first.
    assert [abs(node["depth"]) for node in both["nodes"]] == sorted(abs(node["depth"]) for node in both["nodes"])
    everything = await lineage(client, DASH, "UPSTREAM", depth=20)
    assert depths(everything) == {DASH: 0, OUT: -1, MID: -2, SRC1: -3, SRC2: -3}
    default_depth = await lineage(client, DASH, "UPSTREAM")
    assert depths(default_depth) == depths(everything)  # the default depth (3) reaches the sources


async def test_lineage_edges_declared_and_jobs(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    graph = await lineage(client, OUT, "BOTH", depth=1, jobs=True)
    edges = {(edge["upstreamKey"], edge["downstreamKey"]): edge for edge in graph["edges"]}
    assert set(edges) == {(MID, OUT), (OUT, DASH), (OUT, DASH2)}
    assert edges[(MID, OUT)]["declared"] is False
    assert edges[(MID, OUT)]["jobs"] == [{"name": "j2"}]
    assert edges[(MID, OUT)]["upstream"] == {"key": MID}
    assert edges[(MID, OUT)]["downstream"] == {"key": OUT}
    assert edges[(OUT, DASH2)]["declared"] is True
    assert edges[(OUT, DASH2)]["jobs"] == []
    assert sorted(job["name"] for job in graph["jobs"]) == ["j2", "j3"]
    without_jobs = await lineage(client, OUT, "BOTH", depth=1)
    assert without_jobs["jobs"] == []


async def test_lineage_limit_truncates(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    graph = await lineage(client, MID, "BOTH", depth=3, limit=2)
    assert graph["truncated"] is True
    assert len(graph["nodes"]) == 2
    assert graph["nodes"][0] == {"depth": 0, "asset": {"key": MID}}
    # Edges only join nodes of the answer.
    keys = set(depths(graph))
    assert all(edge["upstreamKey"] in keys and edge["downstreamKey"] in keys for edge in graph["edges"])
    whole = await lineage(client, MID, "BOTH", depth=3, limit=6)
    assert whole["truncated"] is False
    assert len(whole["nodes"]) == 6


async def test_lineage_as_of_and_retired_edges(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    # j1 runs again without src2: the edge src2 -> mid retires at that run.
    await record(client, "j1", "r1b", "COMPLETE", "2001-04-01T00:00:00Z", inputs=[SRC1], outputs=[MID])
    now = await lineage(client, MID, "UPSTREAM", depth=1)
    assert depths(now) == {MID: 0, SRC1: -1}
    march = await lineage(client, MID, "UPSTREAM", depth=1, asOf="2001-03-15T00:00:00Z")
    assert depths(march) == {MID: 0, SRC1: -1, SRC2: -1}
    retired = {edge["upstreamKey"]: edge for edge in march["edges"]}
    assert retired[SRC2]["downstreamKey"] == MID
    before_j2 = await lineage(client, MID, "DOWNSTREAM", depth=3, asOf="2001-01-15T00:00:00Z")
    assert depths(before_j2) == {MID: 0}
    before_j3 = await lineage(client, MID, "DOWNSTREAM", depth=3, asOf="2001-02-15T00:00:00Z")
    # The declared edge to dash2 was declared "now", after every asOf here.
    assert depths(before_j3) == {MID: 0, OUT: 1}
    # j2 first ran at 2001-02-01T00:00Z: an edge counts from that moment on, and a time without a zone is UTC.
    naive = await lineage(client, MID, "DOWNSTREAM", depth=3, asOf="2001-02-01T00:00:00")
    assert depths(naive) == {MID: 0, OUT: 1}
    an_hour_east = await lineage(client, MID, "DOWNSTREAM", depth=3, asOf="2001-02-01T00:00:00+01:00")
    assert depths(an_hour_east) == {MID: 0}


async def test_lineage_hides_deleted_assets(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    await graphql_data(client, DELETE, {"key": OUT})
    graph = await lineage(client, MID, "DOWNSTREAM", depth=3)
    assert depths(graph) == {MID: 0}


PATH = """query($from: String!, $to: String!) {
    lineagePath(from: $from, to: $to) { nodes { key } edges { upstreamKey downstreamKey } } }"""


async def test_lineage_path(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    down = (await graphql_data(client, PATH, {"from": SRC1, "to": DASH}))["lineagePath"]
    assert [node["key"] for node in down["nodes"]] == [SRC1, MID, OUT, DASH]
    assert [(edge["upstreamKey"], edge["downstreamKey"]) for edge in down["edges"]] == [
        (SRC1, MID),
        (MID, OUT),
        (OUT, DASH),
    ]
    up = (await graphql_data(client, PATH, {"from": DASH2, "to": SRC2}))["lineagePath"]
    assert [node["key"] for node in up["nodes"]] == [DASH2, OUT, MID, SRC2]
    assert [(edge["upstreamKey"], edge["downstreamKey"]) for edge in up["edges"]] == [
        (OUT, DASH2),
        (MID, OUT),
        (SRC2, MID),
    ]
    same = (await graphql_data(client, PATH, {"from": MID, "to": MID}))["lineagePath"]
    assert same == {"nodes": [{"key": MID}], "edges": []}
    # Siblings: neither is upstream of the other.
    assert (await graphql_data(client, PATH, {"from": SRC1, "to": SRC2}))["lineagePath"] is None
    assert (await graphql_data(client, PATH, {"from": DASH, "to": DASH2}))["lineagePath"] is None
    missing = await graphql(client, PATH, {"from": SRC1, "to": "pg://db/nothing"})
    assert error_codes(missing) == ["NOT_FOUND"]


async def test_asset_neighbours(client: httpx.AsyncClient) -> None:
    await _lineage_graph(client)
    query = """query($key: String!) { asset(key: $key) {
        upstream { key } up2: upstream(depth: 2) { key } downstream { key } down3: downstream(depth: 3) { key }
        producers { name } consumers { name } } }"""
    mid = (await graphql_data(client, query, {"key": MID}))["asset"]
    assert sorted(item["key"] for item in mid["upstream"]) == [SRC1, SRC2]
    assert sorted(item["key"] for item in mid["up2"]) == [SRC1, SRC2]
    assert [item["key"] for item in mid["downstream"]] == [OUT]
    assert sorted(item["key"] for item in mid["down3"]) == sorted([OUT, DASH, DASH2])
    assert mid["producers"] == [{"name": "j1"}]
    assert mid["consumers"] == [{"name": "j2"}]
    out = (await graphql_data(client, query, {"key": OUT}))["asset"]
    assert sorted(item["key"] for item in out["up2"]) == sorted([MID, SRC1, SRC2])
    assert sorted(item["key"] for item in out["downstream"]) == sorted([DASH, DASH2])
    assert out["producers"] == [{"name": "j2"}]
    assert out["consumers"] == [{"name": "j3"}]


# --- executions and jobs ---------------------------------------------------------------------

EXECUTION = """query($runId: String!) { execution(runId: $runId) {
    runId state startedAt endedAt eventTime durationSeconds errorMessage facets
    job { namespace name type description }
    parent { runId state job { name } }
    children { runId }
    inputs { role facets eventTime asset { key } }
    outputs { role facets asset { key type owners } } } }"""


async def test_execution_with_job_parent_children_inputs_outputs(client: httpx.AsyncClient) -> None:
    dag = {"runId": "dag-1", "job": {"namespace": "airflow://prod", "name": "nightly"}}
    await graphql_data(
        client,
        RECORD,
        {
            "input": {
                "job": {"namespace": "dbt://acme", "name": "model.fct_orders", "type": "dbt", "description": "Facts"},
                "runId": "task-1",
                "state": "FAIL",
                "eventTime": "2026-11-01T10:05:00Z",
                "startedAt": "2026-11-01T10:00:00Z",
                "endedAt": "2026-11-01T10:05:00Z",
                "errorMessage": "division by zero",
                "facets": {"nominalTime": {"start": "2026-11-01"}},
                "parent": dag,
                "inputs": [{"key": "pg://db/orders", "facets": {"rows": 10}}],
                "outputs": [
                    {
                        "key": "dw://wh/fct_orders",
                        "facets": {"stats": {"rowCount": 7}},
                        "type": "table",
                        "owners": ["a"],
                    }
                ],
            }
        },
    )
    await record(
        client, "model.other", "task-2", "COMPLETE", "2026-11-01T10:09:00Z", namespace="dbt://acme", parent=dag
    )
    task = (await graphql_data(client, EXECUTION, {"runId": "task-1"}))["execution"]
    assert task["runId"] == "task-1"
    assert task["state"] == "FAIL"
    assert task["errorMessage"] == "division by zero"
    assert task["durationSeconds"] == 300.0
    assert parse_time(task["startedAt"]) == parse_time("2026-11-01T10:00:00+00:00")
    assert parse_time(task["endedAt"]) == parse_time("2026-11-01T10:05:00+00:00")
    assert task["facets"] == {"nominalTime": {"start": "2026-11-01"}}
    assert task["job"] == {"namespace": "dbt://acme", "name": "model.fct_orders", "type": "dbt", "description": "Facts"}
    # The parent was only named: it exists, in state OTHER, under its job.
    assert task["parent"] == {"runId": "dag-1", "state": "OTHER", "job": {"name": "nightly"}}
    assert task["children"] == []
    assert task["inputs"] == [
        {"role": "INPUT", "facets": {"rows": 10}, "eventTime": task["eventTime"], "asset": {"key": "pg://db/orders"}}
    ]
    assert task["outputs"] == [
        {
            "role": "OUTPUT",
            "facets": {"stats": {"rowCount": 7}},
            "asset": {"key": "dw://wh/fct_orders", "type": "table", "owners": ["a"]},
        }
    ]
    parent = (await graphql_data(client, EXECUTION, {"runId": "dag-1"}))["execution"]
    assert [child["runId"] for child in parent["children"]] == ["task-1", "task-2"]
    assert parent["parent"] is None
    assert (await graphql_data(client, EXECUTION, {"runId": "nope"}))["execution"] is None


async def _runs(client: httpx.AsyncClient) -> None:
    await record(client, "extract", "e1", "COMPLETE", "2026-11-01T01:00:00Z", outputs=["pg://db/a"])
    await record(client, "extract", "e2", "FAIL", "2026-11-02T01:00:00Z", outputs=["pg://db/a"])
    await record(client, "extract", "e3", "COMPLETE", "2026-11-03T01:00:00Z", outputs=["pg://db/a"])
    await record(
        client, "transform", "t1", "COMPLETE", "2026-11-01T02:00:00Z", inputs=["pg://db/a"], namespace="dbt://acme"
    )
    await record(
        client, "transform", "t2", "RUNNING", "2026-11-02T02:00:00Z", inputs=["pg://db/a"], namespace="dbt://acme"
    )


EXECUTIONS = """query($filter: ExecutionFilterInput, $first: Int, $after: String) {
    executions(filter: $filter, first: $first, after: $after) {
        edges { cursor node { runId eventTime } } pageInfo { hasNextPage endCursor } } }"""


async def run_ids(client: httpx.AsyncClient, execution_filter: dict[str, Any] | None = None) -> list[str]:
    data = (await graphql_data(client, EXECUTIONS, {"filter": execution_filter, "first": 100}))["executions"]
    return [edge["node"]["runId"] for edge in data["edges"]]


async def test_executions_newest_first_and_filtered(client: httpx.AsyncClient) -> None:
    await _runs(client)
    assert await run_ids(client) == ["e3", "t2", "e2", "t1", "e1"]
    assert await run_ids(client, {"jobNamespace": "dbt://acme"}) == ["t2", "t1"]
    assert await run_ids(client, {"jobName": "extract"}) == ["e3", "e2", "e1"]
    assert await run_ids(client, {"jobNamespace": "dbt://acme", "jobName": "extract"}) == []
    assert await run_ids(client, {"states": ["FAIL", "RUNNING"]}) == ["t2", "e2"]
    assert await run_ids(client, {"after": "2026-11-02T01:00:00Z"}) == ["e3", "t2", "e2"]
    assert await run_ids(client, {"before": "2026-11-02T01:00:00Z"}) == ["t1", "e1"]
    assert await run_ids(client, {"after": "2026-11-02T00:00:00Z", "before": "2026-11-03T00:00:00Z"}) == ["t2", "e2"]


async def test_executions_pagination(client: httpx.AsyncClient) -> None:
    await _runs(client)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = (await graphql_data(client, EXECUTIONS, {"first": 2, "after": after}))["executions"]
        pages += 1
        seen.extend(edge["node"]["runId"] for edge in data["edges"])
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == ["e3", "t2", "e2", "t1", "e1"]


async def test_job_with_latest_execution_and_executions(client: httpx.AsyncClient) -> None:
    await _runs(client)
    # An older event recorded last does not become the latest execution.
    await record(client, "extract", "e0", "COMPLETE", "2026-10-01T01:00:00Z", outputs=["pg://db/a"])
    query = """query($first: Int, $after: String) { job(namespace: "airflow://prod", name: "extract") {
        namespace name latestExecution { runId state }
        executions(first: $first, after: $after) { edges { node { runId } } pageInfo { hasNextPage endCursor } } } }"""
    job = (await graphql_data(client, query, {"first": 3}))["job"]
    assert job["namespace"] == "airflow://prod"
    assert job["name"] == "extract"
    assert job["latestExecution"] == {"runId": "e3", "state": "COMPLETE"}
    assert [edge["node"]["runId"] for edge in job["executions"]["edges"]] == ["e3", "e2", "e1"]
    assert job["executions"]["pageInfo"]["hasNextPage"] is True
    after = job["executions"]["pageInfo"]["endCursor"]
    rest = (await graphql_data(client, query, {"first": 3, "after": after}))["job"]["executions"]
    assert [edge["node"]["runId"] for edge in rest["edges"]] == ["e0"]
    assert rest["pageInfo"]["hasNextPage"] is False
    missing = await graphql_data(client, '{ job(namespace: "airflow://prod", name: "nope") { name } }')
    assert missing["job"] is None


async def test_jobs_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    await _runs(client)
    await record(client, "extract_more", "x1", "START", "2026-11-01T01:00:00Z")
    query = """query($namespace: String, $search: String, $first: Int, $after: String) {
        jobs(namespace: $namespace, search: $search, first: $first, after: $after) {
            edges { node { namespace name } } pageInfo { hasNextPage endCursor } } }"""

    async def names(**variables: Any) -> list[str]:
        data = (await graphql_data(client, query, {"first": 100, **variables}))["jobs"]
        return [f"{edge['node']['namespace']}/{edge['node']['name']}" for edge in data["edges"]]

    everything = ["airflow://prod/extract", "airflow://prod/extract_more", "dbt://acme/transform"]
    assert await names() == everything
    assert await names(namespace="dbt://acme") == ["dbt://acme/transform"]
    assert await names(search="EXTRACT") == everything[:2]
    assert await names(search="_") == ["airflow://prod/extract_more"]
    first = (await graphql_data(client, query, {"first": 2}))["jobs"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await graphql_data(client, query, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["jobs"]
    assert [edge["node"]["name"] for edge in rest["edges"]] == ["transform"]
    assert rest["pageInfo"]["hasNextPage"] is False


AUDIT = """query($key: String!, $role: Role, $first: Int, $after: String) { asset(key: $key) {
    executions(role: $role, first: $first, after: $after) {
        edges { node { role facets eventTime execution { runId job { name } } } }
        pageInfo { hasNextPage endCursor } } } }"""


async def test_asset_audit_log(client: httpx.AsyncClient) -> None:
    key = "dw://wh/orders"
    await record(client, "reader", "r1", "COMPLETE", "2026-11-01T01:00:00Z", inputs=[{"key": key, "facets": {"n": 1}}])
    await record(client, "writer", "w1", "COMPLETE", "2026-11-01T02:00:00Z", outputs=[{"key": key, "facets": {"n": 2}}])
    await record(client, "reader", "r2", "COMPLETE", "2026-11-01T03:00:00Z", inputs=[key])

    async def log(role: str | None = None, first: int = 100, after: str | None = None) -> dict[str, Any]:
        variables = {"key": key, "role": role, "first": first, "after": after}
        data: dict[str, Any] = (await graphql_data(client, AUDIT, variables))["asset"]["executions"]
        return data

    entries = (await log())["edges"]
    assert [(entry["node"]["execution"]["runId"], entry["node"]["role"]) for entry in entries] == [
        ("r2", "INPUT"),
        ("w1", "OUTPUT"),
        ("r1", "INPUT"),
    ]
    assert [entry["node"]["facets"] for entry in entries] == [{}, {"n": 2}, {"n": 1}]
    assert entries[1]["node"]["execution"]["job"] == {"name": "writer"}
    assert [entry["node"]["execution"]["runId"] for entry in (await log("OUTPUT"))["edges"]] == ["w1"]
    assert [entry["node"]["execution"]["runId"] for entry in (await log("INPUT"))["edges"]] == ["r2", "r1"]

    walked: list[str] = []
    after = None
    for _ in range(10):
        page = await log(first=1, after=after)
        walked.extend(entry["node"]["execution"]["runId"] for entry in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert walked == ["r2", "w1", "r1"]


async def test_last_execution_follows_event_time_not_arrival(client: httpx.AsyncClient) -> None:
    key = "dw://wh/orders"
    await record(client, "writer", "late", "FAIL", "2026-11-02T00:00:00Z", outputs=[key])
    await record(client, "writer", "early", "COMPLETE", "2026-11-01T00:00:00Z", outputs=[key])
    query = """query($key: String!) { asset(key: $key) {
        lastStatus lastMaterializedAt lastExecution { runId state } } }"""
    asset = (await graphql_data(client, query, {"key": key}))["asset"]
    assert asset["lastExecution"] == {"runId": "late", "state": "FAIL"}
    assert asset["lastStatus"] == "FAIL"
    # The only successful write still counts as the last materialization.
    assert parse_time(asset["lastMaterializedAt"]) == parse_time("2026-11-01T00:00:00+00:00")


async def test_start_then_complete_events_merge_into_one_execution(client: httpx.AsyncClient) -> None:
    key = "dw://wh/orders"
    await record(client, "writer", "run-1", "START", "2026-11-01T00:00:00Z", outputs=[key], facets={"a": 1})
    await record(client, "writer", "run-1", "COMPLETE", "2026-11-01T00:10:00Z", outputs=[key], facets={"b": 2})
    execution = (await graphql_data(client, EXECUTION, {"runId": "run-1"}))["execution"]
    assert execution["state"] == "COMPLETE"
    assert execution["durationSeconds"] == 600.0
    assert execution["facets"] == {"a": 1, "b": 2}
    total = await graphql_data(client, "{ executions { edges { node { runId } } } }")
    assert [edge["node"]["runId"] for edge in total["executions"]["edges"]] == ["run-1"]


async def test_first_accepts_the_bounds(client: httpx.AsyncClient) -> None:
    await declare(client, "cat://x/a")
    for first in (1, 500):
        query = "query($first: Int) { assets(first: $first) { edges { cursor } } }"
        data = await graphql_data(client, query, {"first": first})
        assert len(data["assets"]["edges"]) == 1
