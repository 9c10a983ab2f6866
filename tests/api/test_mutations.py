"""The write side of the GraphQL API: declarations, soft deletes, aliases, executions, and atomicity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from gateway.database import Database
from gateway.orm import Asset, AssetAlias, Job, LineageEdge, Run, RunAsset
from tests.helpers import error_codes, graphql, graphql_data

ASSET_FIELDS = """key namespace name type displayName description owners tags metadata
    schema { name type description } aliases createdAt updatedAt deletedAt"""
UPSERT = f"mutation($input: AssetInput!) {{ upsertAsset(input: $input) {{ {ASSET_FIELDS} }} }}"
RECORD = """mutation($input: RecordExecutionInput!) { recordExecution(input: $input) {
    runId state job { namespace name } } }"""
DELETE = "mutation($key: String!) { deleteAsset(key: $key) { key deletedAt } }"
ALIASES = (
    "mutation($key: String!, $aliases: [String!]!) { addAssetAliases(key: $key, aliases: $aliases) { key aliases } }"
)
ASSET = f"query($key: String!) {{ asset(key: $key) {{ {ASSET_FIELDS} }} }}"


async def upsert(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = (await graphql_data(client, UPSERT, {"input": fields}))["upsertAsset"]
    return data


async def row_counts(db: Database) -> dict[str, int]:
    """Rows per table, straight from the database."""
    counts: dict[str, int] = {}
    async with db.session() as session:
        for table in (Asset, AssetAlias, Job, Run, RunAsset, LineageEdge):
            counts[table.__tablename__] = (await session.execute(select(func.count()).select_from(table))).scalar_one()
    return counts


async def test_upsert_creates_then_updates_only_what_is_given(client: httpx.AsyncClient) -> None:
    key = "snowflake://acme/analytics.marts.fct_orders"
    created = await upsert(
        client,
        key=key,
        type="table",
        displayName="Orders",
        description="One row per order.",
        owners=["team:finance", "team:finance", " team:data "],
        tags=["mart"],
        metadata={"sla": "06:00", "rows": 12},
        schema=[{"name": "order_id", "type": "bigint", "description": "Key"}, {"name": "total"}],
    )
    assert created["key"] == key
    assert created["namespace"] == "snowflake://acme"
    assert created["name"] == "analytics.marts.fct_orders"
    assert created["owners"] == ["team:finance", "team:data"]
    assert created["schema"] == [
        {"name": "order_id", "type": "bigint", "description": "Key"},
        {"name": "total", "type": None, "description": None},
    ]
    assert created["deletedAt"] is None

    updated = await upsert(client, key=key, description="Orders, one row each.", tags=["mart", "tier:1"])
    assert updated["description"] == "Orders, one row each."
    assert updated["tags"] == ["mart", "tier:1"]
    # Attributes left out keep their values.
    for field in ("type", "displayName", "owners", "metadata", "schema", "namespace", "name", "createdAt"):
        assert updated[field] == created[field], field
    assert datetime.fromisoformat(updated["updatedAt"]) > datetime.fromisoformat(created["updatedAt"])
    assert (await graphql_data(client, ASSET, {"key": key}))["asset"] == updated


async def test_upsert_with_explicit_namespace_and_name(client: httpx.AsyncClient) -> None:
    created = await upsert(client, key="urn:custom:orders", namespace="custom", name="orders")
    assert (created["namespace"], created["name"]) == ("custom", "orders")
    again = await upsert(client, key="urn:custom:orders", description="d")
    assert (again["namespace"], again["name"]) == ("custom", "orders")


async def test_key_is_trimmed(client: httpx.AsyncClient) -> None:
    created = await upsert(client, key="  pg://db/t  ")
    assert created["key"] == "pg://db/t"


LINEAGE = """query($key: String!) { lineage(key: $key, direction: UPSTREAM, depth: 1) {
    nodes { depth asset { key } } edges { upstreamKey downstreamKey declared } } }"""


async def test_declared_upstreams_show_in_lineage_and_replace(client: httpx.AsyncClient) -> None:
    await upsert(client, key="bi://bi/dash", upstream=["dw://wh/a", "dw://wh/b"])
    graph = (await graphql_data(client, LINEAGE, {"key": "bi://bi/dash"}))["lineage"]
    assert {node["asset"]["key"]: node["depth"] for node in graph["nodes"]} == {
        "bi://bi/dash": 0,
        "dw://wh/a": -1,
        "dw://wh/b": -1,
    }
    assert sorted((edge["upstreamKey"], edge["declared"]) for edge in graph["edges"]) == [
        ("dw://wh/a", True),
        ("dw://wh/b", True),
    ]
    # The upstreams named were created as assets.
    created = await graphql_data(client, ASSET, {"key": "dw://wh/a"})
    assert created["asset"]["namespace"] == "dw://wh"

    await upsert(client, key="bi://bi/dash", upstream=["dw://wh/b", "dw://wh/c"])
    graph = (await graphql_data(client, LINEAGE, {"key": "bi://bi/dash"}))["lineage"]
    assert sorted(edge["upstreamKey"] for edge in graph["edges"]) == ["dw://wh/b", "dw://wh/c"]
    # Leaving `upstream` out keeps the declaration; an empty list clears it.
    await upsert(client, key="bi://bi/dash", description="kept")
    graph = (await graphql_data(client, LINEAGE, {"key": "bi://bi/dash"}))["lineage"]
    assert len(graph["edges"]) == 2
    await upsert(client, key="bi://bi/dash", upstream=[])
    graph = (await graphql_data(client, LINEAGE, {"key": "bi://bi/dash"}))["lineage"]
    assert graph["edges"] == []


async def test_an_asset_cannot_be_its_own_upstream(client: httpx.AsyncClient) -> None:
    body = await graphql(client, UPSERT, {"input": {"key": "dw://wh/a", "upstream": ["dw://wh/a"]}})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert (await graphql_data(client, ASSET, {"key": "dw://wh/a"}))["asset"] is None


COUNT = "query($filter: AssetFilterInput) { assets(filter: $filter) { totalCount edges { node { key deletedAt } } } }"


async def test_delete_is_soft(client: httpx.AsyncClient) -> None:
    await upsert(client, key="dw://wh/a", owners=["x"])
    await upsert(client, key="dw://wh/b", upstream=["dw://wh/a"])
    deleted = (await graphql_data(client, DELETE, {"key": "dw://wh/a"}))["deleteAsset"]
    assert deleted["key"] == "dw://wh/a"
    assert deleted["deletedAt"] is not None

    live = (await graphql_data(client, COUNT))["assets"]
    assert [edge["node"]["key"] for edge in live["edges"]] == ["dw://wh/b"]
    assert live["totalCount"] == 1
    everything = (await graphql_data(client, COUNT, {"filter": {"includeDeleted": True}}))["assets"]
    assert everything["totalCount"] == 2
    assert {edge["node"]["key"]: edge["node"]["deletedAt"] for edge in everything["edges"]} == {
        "dw://wh/a": deleted["deletedAt"],
        "dw://wh/b": None,
    }
    assert (await graphql_data(client, ASSET, {"key": "dw://wh/a"}))["asset"] is None
    graph = (await graphql_data(client, LINEAGE, {"key": "dw://wh/b"}))["lineage"]
    assert graph["edges"] == []
    assert error_codes(await graphql(client, LINEAGE, {"key": "dw://wh/a"})) == ["NOT_FOUND"]
    # Deleting again: it is gone.
    assert error_codes(await graphql(client, DELETE, {"key": "dw://wh/a"})) == ["NOT_FOUND"]

    # Declaring it again brings it back, with what it had.
    back = await upsert(client, key="dw://wh/a")
    assert back["deletedAt"] is None
    assert back["owners"] == ["x"]
    assert (await graphql_data(client, COUNT))["assets"]["totalCount"] == 2


async def test_delete_unknown_or_invalid_key(client: httpx.AsyncClient) -> None:
    assert error_codes(await graphql(client, DELETE, {"key": "dw://wh/nothing"})) == ["NOT_FOUND"]
    assert error_codes(await graphql(client, DELETE, {"key": "has space"})) == ["BAD_USER_INPUT"]


async def test_add_aliases(client: httpx.AsyncClient) -> None:
    await upsert(client, key="dw://wh/orders")
    await upsert(client, key="dw://wh/customers")
    added = await graphql_data(client, ALIASES, {"key": "dw://wh/orders", "aliases": ["urn:orders", "/exports/o"]})
    assert added["addAssetAliases"] == {"key": "dw://wh/orders", "aliases": ["/exports/o", "urn:orders"]}
    assert (await graphql_data(client, ASSET, {"key": "urn:orders"}))["asset"]["key"] == "dw://wh/orders"
    # Adding the same alias again is fine; adding it through the alias itself too.
    again = await graphql_data(client, ALIASES, {"key": "urn:orders", "aliases": ["urn:orders", "urn:o2"]})
    assert again["addAssetAliases"]["aliases"] == ["/exports/o", "urn:o2", "urn:orders"]

    # Another asset's key cannot become an alias; nor can another asset's alias.
    conflict = await graphql(client, ALIASES, {"key": "dw://wh/orders", "aliases": ["dw://wh/customers"]})
    assert error_codes(conflict) == ["CONFLICT"]
    assert "dw://wh/customers" in conflict["errors"][0]["message"]
    taken = await graphql(client, ALIASES, {"key": "dw://wh/customers", "aliases": ["urn:new", "urn:orders"]})
    assert error_codes(taken) == ["CONFLICT"]
    # ...and the whole mutation failed: urn:new was not added either.
    assert (await graphql_data(client, ASSET, {"key": "urn:new"}))["asset"] is None
    # An alias cannot be declared as an asset of its own.
    assert error_codes(await graphql(client, UPSERT, {"input": {"key": "urn:orders"}})) == ["CONFLICT"]

    assert error_codes(await graphql(client, ALIASES, {"key": "dw://wh/none", "aliases": ["x"]})) == ["NOT_FOUND"]
    assert error_codes(await graphql(client, ALIASES, {"key": "dw://wh/orders", "aliases": ["a b"]})) == [
        "BAD_USER_INPUT"
    ]


async def test_own_key_as_alias_does_not_block_the_asset(client: httpx.AsyncClient) -> None:
    await upsert(client, key="dw://wh/orders")
    added = await graphql_data(client, ALIASES, {"key": "dw://wh/orders", "aliases": ["dw://wh/orders", "urn:o"]})
    assert added["addAssetAliases"]["aliases"] == ["urn:o"]
    declared = await upsert(client, key="dw://wh/orders", aliases=["dw://wh/orders"], description="still mine")
    assert declared["description"] == "still mine"
    assert declared["aliases"] == ["urn:o"]


async def test_upsert_with_aliases(client: httpx.AsyncClient) -> None:
    created = await upsert(client, key="dw://wh/orders", aliases=["urn:orders"])
    assert created["aliases"] == ["urn:orders"]
    await upsert(client, key="dw://wh/customers")
    body = await graphql(client, UPSERT, {"input": {"key": "dw://wh/new", "aliases": ["dw://wh/customers"]}})
    assert error_codes(body) == ["CONFLICT"]
    assert (await graphql_data(client, ASSET, {"key": "dw://wh/new"}))["asset"] is None


async def test_record_execution_kestra_style(client: httpx.AsyncClient) -> None:
    flow = {"namespace": "kestra://company.team", "name": "etl_orders"}
    parent = {"runId": "exec-parent", "job": flow}
    task_input = {
        "job": {"namespace": "kestra://company.team", "name": "etl_orders.load", "type": "task", "description": "L"},
        "runId": "exec-task",
        "state": "COMPLETE",
        "eventTime": "2026-11-01T06:00:00Z",
        "startedAt": "2026-11-01T05:58:00Z",
        "parent": parent,
        "facets": {"kestra": {"flowRevision": 3}},
        "inputs": [{"key": "s3://raw/orders.csv", "facets": {"size": 2048}, "type": "file"}],
        "outputs": [
            {
                "key": "pg://dw/public.orders",
                "facets": {"outputStatistics": {"rowCount": 42}},
                "type": "table",
                "description": "Loaded orders",
                "owners": ["team:data"],
                "tags": ["kestra"],
                "metadata": {"tier": 1},
            }
        ],
    }
    recorded = (await graphql_data(client, RECORD, {"input": task_input}))["recordExecution"]
    assert recorded == {
        "runId": "exec-task",
        "state": "COMPLETE",
        "job": {"namespace": "kestra://company.team", "name": "etl_orders.load"},
    }
    await graphql_data(
        client,
        RECORD,
        {"input": {"job": flow, "runId": "exec-parent", "state": "COMPLETE", "eventTime": "2026-11-01T06:01:00Z"}},
    )

    query = """{
      execution(runId: "exec-task") {
        state facets startedAt endedAt
        job { type description latestExecution { runId } }
        parent { runId state children { runId } }
        inputs { facets asset { key type } }
        outputs { facets asset { key type description owners tags metadata lastStatus lastMaterializedAt } }
      }
      lineage(key: "pg://dw/public.orders", direction: UPSTREAM, depth: 1, includeJobs: true) {
        nodes { asset { key } } edges { declared jobs { name } } }
    }"""
    data = await graphql_data(client, query)
    execution = data["execution"]
    assert execution["state"] == "COMPLETE"
    assert execution["facets"] == {"kestra": {"flowRevision": 3}}
    assert datetime.fromisoformat(execution["startedAt"]) == datetime.fromisoformat("2026-11-01T05:58:00+00:00")
    assert datetime.fromisoformat(execution["endedAt"]) == datetime.fromisoformat("2026-11-01T06:00:00+00:00")
    assert execution["job"] == {"type": "task", "description": "L", "latestExecution": {"runId": "exec-task"}}
    assert execution["parent"] == {"runId": "exec-parent", "state": "COMPLETE", "children": [{"runId": "exec-task"}]}
    assert execution["inputs"] == [{"facets": {"size": 2048}, "asset": {"key": "s3://raw/orders.csv", "type": "file"}}]
    output = execution["outputs"][0]
    assert output["facets"] == {"outputStatistics": {"rowCount": 42}}
    asset = output["asset"]
    assert asset["key"] == "pg://dw/public.orders"
    assert (asset["type"], asset["description"], asset["owners"], asset["tags"], asset["metadata"]) == (
        "table",
        "Loaded orders",
        ["team:data"],
        ["kestra"],
        {"tier": 1},
    )
    assert asset["lastStatus"] == "COMPLETE"
    assert datetime.fromisoformat(asset["lastMaterializedAt"]) == datetime.fromisoformat("2026-11-01T06:00:00+00:00")
    assert {node["asset"]["key"] for node in data["lineage"]["nodes"]} == {
        "pg://dw/public.orders",
        "s3://raw/orders.csv",
    }
    assert data["lineage"]["edges"] == [{"declared": False, "jobs": [{"name": "etl_orders.load"}]}]


async def test_record_execution_generates_run_id_and_time(client: httpx.AsyncClient) -> None:
    body = await graphql_data(
        client,
        """mutation { recordExecution(input: {job: {namespace: "n", name: "j"}, state: START}) {
            runId state eventTime startedAt endedAt } }""",
    )
    execution = body["recordExecution"]
    assert len(execution["runId"]) == 36
    assert execution["state"] == "START"
    assert execution["startedAt"] == execution["eventTime"]
    assert execution["endedAt"] is None
    other = await graphql_data(
        client, 'mutation { recordExecution(input: {job: {namespace: "n", name: "j"}, state: START}) { runId } }'
    )
    assert other["recordExecution"]["runId"] != execution["runId"]


async def test_record_execution_rejects_what_it_cannot_store(client: httpx.AsyncClient) -> None:
    base = {"job": {"namespace": "n", "name": "j"}, "state": "COMPLETE", "runId": "r"}
    cases = [
        {**base, "facets": [1, 2]},
        {**base, "outputs": [{"key": "dw://wh/a", "facets": "text"}]},
        {**base, "outputs": [{"key": "dw://wh/a", "metadata": 3, "type": "table"}]},
        {**base, "startedAt": "2026-11-01T10:00:00Z", "endedAt": "2026-11-01T09:00:00Z"},
        {**base, "runId": "x" * 256},
        {**base, "job": {"namespace": "", "name": "j"}},
    ]
    for case in cases:
        body = await graphql(client, RECORD, {"input": case})
        assert error_codes(body) == ["BAD_USER_INPUT"], case
    assert (await graphql_data(client, "{ executions { edges { node { runId } } } }"))["executions"]["edges"] == []


async def test_failed_record_execution_changes_nothing(client: httpx.AsyncClient, db: Database) -> None:
    await upsert(client, key="dw://wh/existing", description="before")
    before = await row_counts(db)
    bad_keys = ["dw://wh/has space", "dw://wh/" + "x" * 600, "dw://wh/tab\there"]
    for bad in bad_keys:
        body = await graphql(
            client,
            RECORD,
            {
                "input": {
                    "job": {"namespace": "kestra://t", "name": "new_job"},
                    "runId": "would-be-run",
                    "state": "COMPLETE",
                    "parent": {"runId": "would-be-parent", "job": {"namespace": "kestra://t", "name": "flow"}},
                    "inputs": [{"key": "dw://wh/new_input", "type": "table", "owners": ["x"]}],
                    "outputs": [
                        {"key": "dw://wh/existing", "description": "after"},
                        {"key": "dw://wh/new_output"},
                        {"key": bad},
                    ],
                }
            },
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], bad
        assert body["data"] is None
    assert await row_counts(db) == before
    existing = (await graphql_data(client, ASSET, {"key": "dw://wh/existing"}))["asset"]
    assert existing["description"] == "before"
    for query in (
        '{ execution(runId: "would-be-run") { runId } }',
        '{ execution(runId: "would-be-parent") { runId } }',
    ):
        assert next(iter((await graphql_data(client, query)).values())) is None
    assert (await graphql_data(client, '{ job(namespace: "kestra://t", name: "new_job") { name } }'))["job"] is None


async def test_failed_upsert_changes_nothing(client: httpx.AsyncClient, db: Database) -> None:
    await upsert(client, key="dw://wh/existing", description="before", upstream=["dw://wh/up"])
    before = await row_counts(db)
    cases = [
        {"key": "dw://wh/existing", "description": "after", "upstream": ["dw://wh/new", "dw://wh/bad key"]},
        {"key": "dw://wh/existing", "description": "after", "aliases": ["urn:fine", "urn:" + "y" * 600]},
        {"key": "dw://wh/" + "z" * 600, "description": "after"},
        {"key": "dw://wh/existing", "description": "after", "owners": ["ok", "x" * 300]},
        {"key": "dw://wh/existing", "description": "after", "metadata": "not an object"},
    ]
    for case in cases:
        body = await graphql(client, UPSERT, {"input": case})
        assert error_codes(body) == ["BAD_USER_INPUT"], case
    assert await row_counts(db) == before
    existing = (await graphql_data(client, ASSET, {"key": "dw://wh/existing"}))["asset"]
    assert existing["description"] == "before"
    assert existing["aliases"] == []
    graph = (await graphql_data(client, LINEAGE, {"key": "dw://wh/existing"}))["lineage"]
    assert [edge["upstreamKey"] for edge in graph["edges"]] == ["dw://wh/up"]
