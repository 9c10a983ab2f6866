"""The gateway as an Apollo Federation v2 subgraph: its SDL and entity resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.database import Database
from gateway.store.assets import AssetSpec, upsert_asset
from gateway.store.executions import DatasetTouch, ExecutionRecord, record_execution
from tests.helpers import count_statements, error_codes, graphql, graphql_data

ENTITIES = """query($representations: [_Any!]!) { _entities(representations: $representations) {
    __typename
    ... on Asset { key type lastExecution { runId } }
    ... on Execution { runId state job { name } }
    ... on Job { namespace name latestExecution { runId } } } }"""


async def test_service_sdl_declares_the_entity_keys(client: httpx.AsyncClient) -> None:
    sdl = (await graphql_data(client, "{ _service { sdl } }"))["_service"]["sdl"]
    assert 'type Asset @key(fields: "key")' in sdl
    assert 'type Execution @key(fields: "runId")' in sdl
    assert 'type Job @key(fields: "namespace name")' in sdl
    assert "specs.apollo.dev/federation/v2" in sdl
    assert "union _Entity = Asset | Execution | Job" in sdl


async def _entities_fixture(db: Database, now: datetime) -> None:
    async with db.transaction() as session:
        await upsert_asset(session, AssetSpec("dw://wh/orders", type="table", aliases=("urn:orders",)), now)
        await record_execution(
            session,
            ExecutionRecord(
                "airflow://prod", "load", "run-1", "COMPLETE", now, outputs=(DatasetTouch("dw://wh/orders"),)
            ),
            now,
        )


async def test_entities_resolve_each_type(client: httpx.AsyncClient, db: Database, now: datetime) -> None:
    await _entities_fixture(db, now)
    representations: list[dict[str, Any]] = [
        {"__typename": "Asset", "key": "dw://wh/orders"},
        {"__typename": "Execution", "runId": "run-1"},
        {"__typename": "Job", "namespace": "airflow://prod", "name": "load"},
        {"__typename": "Asset", "key": "dw://wh/unknown"},
        {"__typename": "Execution", "runId": "run-unknown"},
        {"__typename": "Job", "namespace": "airflow://prod", "name": "unknown"},
        {"__typename": "Job", "namespace": "airflow://other", "name": "load"},
        # The router may send more fields than the key; they are ignored.
        {"__typename": "Asset", "key": "dw://wh/orders", "type": "ignored"},
    ]
    entities = (await graphql_data(client, ENTITIES, {"representations": representations}))["_entities"]
    assert entities == [
        {"__typename": "Asset", "key": "dw://wh/orders", "type": "table", "lastExecution": {"runId": "run-1"}},
        {"__typename": "Execution", "runId": "run-1", "state": "COMPLETE", "job": {"name": "load"}},
        {"__typename": "Job", "namespace": "airflow://prod", "name": "load", "latestExecution": {"runId": "run-1"}},
        None,
        None,
        None,
        None,
        {"__typename": "Asset", "key": "dw://wh/orders", "type": "table", "lastExecution": {"runId": "run-1"}},
    ]


async def test_entities_resolve_an_alias_and_hide_deleted_assets(
    client: httpx.AsyncClient, db: Database, now: datetime
) -> None:
    await _entities_fixture(db, now)
    by_alias = await graphql_data(client, ENTITIES, {"representations": [{"__typename": "Asset", "key": "urn:orders"}]})
    assert by_alias["_entities"][0]["key"] == "dw://wh/orders"
    await graphql_data(client, 'mutation { deleteAsset(key: "dw://wh/orders") { key } }')
    gone = await graphql_data(client, ENTITIES, {"representations": [{"__typename": "Asset", "key": "dw://wh/orders"}]})
    assert gone["_entities"] == [None]


async def test_bad_representations_are_the_clients_mistake(client: httpx.AsyncClient) -> None:
    cases: list[dict[str, Any]] = [
        {"__typename": "Asset"},
        {"__typename": "Asset", "key": 5},
        {"__typename": "Execution", "run_id": "snake"},
        {"__typename": "Job", "namespace": "airflow://prod"},
    ]
    for representation in cases:
        body = await graphql(client, ENTITIES, {"representations": [representation]})
        assert error_codes(body) == ["BAD_USER_INPUT"], representation
        assert body["data"] == {"_entities": [None]}
    for representation in ({"__typename": "Nope", "key": "x"}, {"key": "x"}, {"__typename": "Query"}):
        body = await graphql(client, ENTITIES, {"representations": [representation]})
        assert error_codes(body) == ["BAD_USER_INPUT"], representation
        assert "__typename" in body["errors"][0]["message"]


async def _assets_with_runs(db: Database, now: datetime, count: int) -> list[str]:
    keys = [f"dw://wh/table_{index:03d}" for index in range(count)]
    async with db.transaction() as session:
        for index, key in enumerate(keys):
            await record_execution(
                session,
                ExecutionRecord(
                    "airflow://prod", f"job_{index}", f"run-{index}", "COMPLETE", now, outputs=(DatasetTouch(key),)
                ),
                now,
            )
    return keys


async def test_resolving_many_entities_costs_constant_statements(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    keys = await _assets_with_runs(db, now, 100)
    query = """query($representations: [_Any!]!) { _entities(representations: $representations) {
        ... on Asset { key owners lastExecution { runId job { name latestExecution { runId } } } } } }"""

    async def resolve(count: int) -> int:
        representations = [{"__typename": "Asset", "key": key} for key in keys[:count]]
        with count_statements(app.state.db) as counter:
            entities = (await graphql_data(client, query, {"representations": representations}))["_entities"]
        assert [entity["key"] for entity in entities] == keys[:count]
        assert all(entity["lastExecution"]["job"]["latestExecution"] for entity in entities)
        return counter.count

    await resolve(1)  # the first request also asks whether any token exists (then cached)
    ten, hundred = await resolve(10), await resolve(100)
    assert ten == hundred
    # One batch per loader: assets, runs, jobs, latest runs (plus the aliases pass of the key lookup).
    assert hundred <= 6

    mixed = [
        *({"__typename": "Execution", "runId": f"run-{index}"} for index in range(100)),
        *({"__typename": "Job", "namespace": "airflow://prod", "name": f"job_{index}"} for index in range(100)),
    ]
    with count_statements(app.state.db) as counter:
        entities = (await graphql_data(client, ENTITIES, {"representations": mixed}))["_entities"]
    assert all(entity is not None for entity in entities)
    assert counter.count <= 6


# --- entity resolution at scale ----------------------------------------------------------------------------


async def _tables_written_in_batches(db: Database, now: datetime, count: int, per_run: int) -> list[str]:
    """`count` tables, written `per_run` at a time by a run of their own job, each run reading a source of its own."""
    keys = [f"dw://wh/table_{index:04d}" for index in range(count)]
    async with db.transaction() as session:
        await upsert_asset(session, AssetSpec(keys[0], owners=("team:first",), aliases=("urn:table_0000",)), now)
        for run, start in enumerate(range(0, count, per_run)):
            await record_execution(
                session,
                ExecutionRecord(
                    "airflow://prod",
                    f"job_{run:03d}",
                    f"run-{run:03d}",
                    "COMPLETE",
                    now - timedelta(minutes=run),
                    inputs=(DatasetTouch(f"pg://db/source_{run:03d}"),),
                    outputs=tuple(DatasetTouch(key) for key in keys[start : start + per_run]),
                ),
                now,
            )
    return keys


ASSET_ENTITIES = """query($representations: [_Any!]!) { _entities(representations: $representations) {
    ... on Asset {
      __typename key owners lastMaterializedAt lastStatus aliases
      producers { name }
      lastExecution { runId state job { namespace name latestExecution { runId } } }
    } } }"""


async def test_a_thousand_asset_entities_cost_the_statements_of_ten(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    keys = await _tables_written_in_batches(db, now, 1000, per_run=50)

    async def resolve(count: int) -> int:
        # Keys, then an alias and a key nobody knows: every lookup pass runs whatever the count.
        wanted = [*keys[: count - 2], "urn:table_0000", "dw://wh/missing"]
        representations = [{"__typename": "Asset", "key": key} for key in wanted]
        with count_statements(app.state.db) as counter:
            body = await graphql(client, ASSET_ENTITIES, {"representations": representations})
        assert "errors" not in body, body["errors"][:3]
        entities = body["data"]["_entities"]
        assert len(entities) == count
        assert [entity["key"] for entity in entities[:-1]] == [*keys[: count - 2], keys[0]]
        assert entities[-1] is None
        for index, entity in enumerate(entities[:-2]):
            run = index // 50
            assert entity["lastExecution"]["runId"] == f"run-{run:03d}"
            assert entity["lastExecution"]["job"]["latestExecution"] == {"runId": f"run-{run:03d}"}
            assert entity["producers"] == [{"name": f"job_{run:03d}"}]
            assert entity["lastStatus"] == "COMPLETE"
            assert entity["lastMaterializedAt"] is not None
        assert entities[0]["owners"] == ["team:first"]
        assert entities[0]["aliases"] == entities[-2]["aliases"] == ["urn:table_0000"]
        return counter.count

    await resolve(10)  # warm-up: the first request of an app also reads what it caches (whether tokens exist)
    ten, thousand = await resolve(10), await resolve(1000)
    assert ten == thousand
    # The key and alias passes, then one batch per loader: aliases, producer job ids, jobs, runs, latest runs.
    assert thousand <= 8


async def test_thousands_of_job_entities_resolve_in_a_few_statements(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    """Jobs are keyed by two fields: a row-value IN of thousands of pairs exceeds the stack depth of Postgres."""
    await _assets_with_runs(db, now, 20)
    names = [("airflow://prod", f"job_{index}") for index in range(8000)]  # 20 known, the rest unknown
    representations = [{"__typename": "Job", "namespace": namespace, "name": name} for namespace, name in names]
    query = """query($representations: [_Any!]!) { _entities(representations: $representations) {
        ... on Job { namespace name latestExecution { runId } } } }"""
    with count_statements(app.state.db) as counter:
        entities = (await graphql_data(client, query, {"representations": representations}))["_entities"]
    assert entities[:20] == [
        {"namespace": "airflow://prod", "name": f"job_{index}", "latestExecution": {"runId": f"run-{index}"}}
        for index in range(20)
    ]
    assert entities[20:] == [None] * 7980
    assert counter.count <= 4


async def _fan_out(db: Database, now: datetime, prefix: str, width: int) -> list[str]:
    """root -> mid_i -> leaf_i_a, leaf_i_b for i < width: 1 + 3 * width assets, each with an owner and a writer."""
    root = f"{prefix}://x/root"
    keys = [root]
    async with db.transaction() as session:
        await upsert_asset(session, AssetSpec(root, owners=("team:root",)), now)
        await record_execution(
            session,
            ExecutionRecord(
                "airflow://prod", f"{prefix}.seed", f"{prefix}-seed", "COMPLETE", now, outputs=(DatasetTouch(root),)
            ),
            now,
        )
        for index in range(width):
            mid = f"{prefix}://x/mid_{index:03d}"
            leaves = [f"{prefix}://x/leaf_{index:03d}_{side}" for side in "ab"]
            for key in (mid, *leaves):
                await upsert_asset(session, AssetSpec(key, owners=(f"team:{index % 7}",)), now)
            for step, (sources, targets) in enumerate((([root], [mid]), ([mid], leaves))):
                await record_execution(
                    session,
                    ExecutionRecord(
                        "airflow://prod",
                        f"{prefix}.step{step}_{index:03d}",
                        f"{prefix}-{step}-{index:03d}",
                        "COMPLETE",
                        now,
                        inputs=tuple(DatasetTouch(key) for key in sources),
                        outputs=tuple(DatasetTouch(key) for key in targets),
                    ),
                    now,
                )
            keys += [mid, *leaves]
    return keys


# What a router asks a subgraph for when a supergraph query reads the lineage (the key, so that other subgraphs
# can add their fields), and when it reaches an asset from another subgraph and asks for its neighbourhood.
LINEAGE_FOR_A_ROUTER = """query($key: String!) {
  lineage(key: $key, direction: DOWNSTREAM, depth: 2) {
    nodes { depth asset { __typename key owners lastMaterializedAt lastExecution { runId state job { name } } } }
    edges { upstreamKey downstreamKey }
    truncated
  }
}"""
NEIGHBOURHOOD_OF_AN_ENTITY = """query($representations: [_Any!]!) { _entities(representations: $representations) {
    ... on Asset { key downstream(depth: 2) { __typename key owners lastExecution { runId job { name } } } } } }"""


async def test_a_hundred_node_lineage_costs_the_statements_of_a_ten_node_one(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    small = await _fan_out(db, now, "small", 3)
    large = await _fan_out(db, now, "large", 33)
    assert (len(small), len(large)) == (10, 100)

    async def lineage(keys: list[str]) -> int:
        with count_statements(app.state.db) as counter:
            graph = (await graphql_data(client, LINEAGE_FOR_A_ROUTER, {"key": keys[0]}))["lineage"]
        assert sorted(node["asset"]["key"] for node in graph["nodes"]) == sorted(keys)
        assert len(graph["edges"]) == len(keys) - 1
        assert graph["truncated"] is False
        for node in graph["nodes"]:
            asset = node["asset"]
            assert asset["owners"], asset
            assert asset["lastExecution"]["state"] == "COMPLETE"
            assert asset["lastExecution"]["job"]["name"].startswith(keys[0].split(":")[0])
        return counter.count

    async def neighbourhoods(*graphs: list[str]) -> int:
        representations = [{"__typename": "Asset", "key": keys[0]} for keys in graphs]
        with count_statements(app.state.db) as counter:
            entities = await graphql_data(client, NEIGHBOURHOOD_OF_AN_ENTITY, {"representations": representations})
        for keys, entity in zip(graphs, entities["_entities"], strict=True):
            assert entity["key"] == keys[0]
            assert sorted(asset["key"] for asset in entity["downstream"]) == sorted(keys[1:])
            assert all(asset["owners"] and asset["lastExecution"]["runId"] for asset in entity["downstream"])
        return counter.count

    await lineage(small)  # warm-up
    assert await lineage(small) == await lineage(large)
    # The root, one statement per level, then one batch per loader (assets, runs, jobs).
    assert await lineage(large) <= 8
    # However many entities ask for their neighbourhood, the walk costs one statement per level for all of them.
    assert await neighbourhoods(small) == await neighbourhoods(large) == await neighbourhoods(small, large)
    assert await neighbourhoods(small, large) <= 8
