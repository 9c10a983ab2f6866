"""The gateway as an Apollo Federation v2 subgraph: its SDL and entity resolution."""

from __future__ import annotations

from datetime import datetime
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
        with count_statements(app.state.db.engine) as counter:
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
    with count_statements(app.state.db.engine) as counter:
        entities = (await graphql_data(client, ENTITIES, {"representations": mixed}))["_entities"]
    assert all(entity is not None for entity in entities)
    assert counter.count <= 6
