"""What fuzzing found, kept as plain tests on both dialects: each was a masked INTERNAL_SERVER_ERROR, a 500 or a
503 before it was fixed, and is the client's coded mistake now."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from gateway.database import Database
from gateway.ingest.events import EventError
from gateway.ingest.service import prepare
from gateway.store.assets import AssetSpec, upsert_asset
from tests.helpers import error_codes, graphql_data

UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"
RECORD = "mutation($input: RecordExecutionInput!) { recordExecution(input: $input) { runId } }"
POLICY = "mutation($input: FreshnessPolicyInput!) { setFreshnessPolicy(input: $input) { name } }"


async def send(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POSTs as the standard library writes JSON: integers of any size, NaN and Infinity included."""
    body = json.dumps({"query": query, "variables": variables or {}})
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def refused(body: dict[str, Any], code: str = "BAD_USER_INPUT") -> str:
    assert error_codes(body) == [code], body
    message: str = body["errors"][0]["message"]
    return message


async def nothing_stored(client: httpx.AsyncClient) -> None:
    data = await graphql_data(
        client, "{ assets(filter: {includeDeleted: true}) { totalCount } jobs { nodes { name } } }"
    )
    assert data == {"assets": {"totalCount": 0}, "jobs": {"nodes": []}}


async def test_numbers_json_cannot_hold_are_refused(client: httpx.AsyncClient) -> None:
    huge = 10**30
    cases: list[tuple[str, dict[str, Any], str]] = [
        (UPSERT, {"input": {"key": "pg://db/a", "metadata": {"n": huge}}}, "beyond 64 bits"),
        (UPSERT, {"input": {"key": "pg://db/a", "metadata": {"n": [1, {"m": -huge}]}}}, "beyond 64 bits"),
        (UPSERT, {"input": {"key": "pg://db/a", "metadata": {"n": float("nan")}}}, "not a finite number"),
        (UPSERT, {"input": {"key": "pg://db/a", "metadata": {"n": float("inf")}}}, "not a finite number"),
        (
            RECORD,
            {"input": {"job": {"namespace": "n", "name": "j"}, "state": "START", "facets": {"x": float("-inf")}}},
            "not a finite number",
        ),
        ('mutation { upsertAsset(input: {key: "pg://db/a", metadata: {n: 100000000000000000000}}) { key } }', {}, "64"),
        ('mutation { upsertAsset(input: {key: "pg://db/a", metadata: [{n: 1e999}]}) { key } }', {}, "finite"),
        ('{ assets(filter: {metadata: [{key: "n", value: 1e999}]}) { totalCount } }', {}, "finite"),
        (
            '{ _entities(representations: [{__typename: "Asset", key: 100000000000000000000}]) { __typename } }',
            {},
            "64",
        ),
    ]
    for query, variables, problem in cases:
        assert problem in refused(await send(client, query, variables)), (query, variables)
    await nothing_stored(client)
    # The edges of what is storable are fine.
    edges = {"big": 2**64 - 1, "small": -(2**63), "float": 0.25}
    await graphql_data(client, UPSERT, {"input": {"key": "pg://db/a", "metadata": edges}})
    stored = await graphql_data(client, '{ asset(key: "pg://db/a") { metadata } }')
    assert stored == {"asset": {"metadata": edges}}


async def test_a_stored_integer_beyond_64_bits_still_reads(client: httpx.AsyncClient, db: Database) -> None:
    # Stored before the edge refused such numbers (or by a path that does not check): every answer showing the
    # asset was a 500, as orjson writes no such integer.
    async with db.transaction() as session:
        await upsert_asset(session, AssetSpec(key="pg://db/old", metadata={"n": 10**30}), datetime.now(UTC))
    response = await client.post("/graphql", json={"query": '{ asset(key: "pg://db/old") { metadata } }'})
    assert response.status_code == 200, response.text
    # SQLite gives the integer back; Postgres the float (see the next test).
    assert float(response.json()["data"]["asset"]["metadata"]["n"]) == 1e30


async def test_deleting_a_policy_works_on_both_dialects(client: httpx.AsyncClient) -> None:
    # The event log's kind of the deletion was 19 characters in a 16-character column: Postgres refused it.
    selector = {"tag": "mart"}
    await graphql_data(client, POLICY, {"input": {"name": "marts", "maxAge": "1h", "selector": selector}})
    deletion = "mutation($name: String!) { deleteFreshnessPolicy(name: $name) }"
    assert await graphql_data(client, deletion, {"name": "marts"}) == {"deleteFreshnessPolicy": True}
    assert await graphql_data(client, deletion, {"name": "marts"}) == {"deleteFreshnessPolicy": False}
    assert await graphql_data(client, "{ freshnessPolicies { name } }") == {"freshnessPolicies": []}


async def test_values_wider_than_their_columns_are_refused(client: httpx.AsyncClient) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        (UPSERT, {"input": {"key": "pg://db/a", "type": "t" * 65}}, "type holds at most 64 characters"),
        (UPSERT, {"input": {"key": "pg://db/a", "displayName": "d" * 513}}, "display_name holds at most 512"),
        (UPSERT, {"input": {"key": "pg://db/a", "namespace": "n" * 513}}, "namespace holds at most 512"),
        (UPSERT, {"input": {"key": "pg://db/a", "name": "n" * 513}}, "name holds at most 512"),
        (
            RECORD,
            {"input": {"job": {"namespace": "n", "name": "j", "type": "t" * 65}, "state": "START"}},
            "job's type holds at most 64 characters",
        ),
        (POLICY, {"input": {"name": "p", "maxAge": "100000000h", "selector": {"tag": "x"}}}, "at most 2147483647"),
        (
            POLICY,
            {
                "input": {
                    "name": "p",
                    "cron": ",".join(str(minute) for minute in range(60)) + " * * * *",
                    "selector": {"tag": "x"},
                }
            },
            "at most 100 characters",
        ),
    ]
    for query, variables, problem in cases:
        assert problem in refused(await send(client, query, variables)), variables
    await nothing_stored(client)
    # At the limits, all is stored.
    await graphql_data(client, UPSERT, {"input": {"key": "pg://db/a", "type": "t" * 64, "displayName": "d" * 512}})
    job = {"job": {"namespace": "n", "name": "j", "type": "t" * 64}, "state": "START"}
    await graphql_data(client, RECORD, {"input": job})


async def test_numbers_beyond_64_bit_ids_are_refused(client: httpx.AsyncClient) -> None:
    acknowledge = 'mutation($id: ID!) { acknowledgeAlert(id: $id, by: "me") { id } }'
    assert refused(await send(client, acknowledge, {"id": "99999999999999999999"}), "NOT_FOUND") == (
        "no alert with id 99999999999999999999"
    )
    assert "is not an alert id" in refused(await send(client, acknowledge, {"id": "²"}))

    def cursor(*parts: Any) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode()

    page = "query($after: String) { assets(after: $after) { totalCount } }"
    for bad in (cursor("KEY", "pg://db/a", 2**63), cursor("KEY", "pg://db/\x00", 1)):
        assert "is not a cursor this API gave out" in refused(await send(client, page, {"after": bad}))


async def test_lists_longer_than_a_statement_binds_are_refused(client: httpx.AsyncClient) -> None:
    # Tens of thousands of values made one statement with more parameters than Postgres binds (32,767): an error
    # that was even taken for an unavailable database (503).
    keys = [f"pg://db/k{index}" for index in range(1_001)]
    for field in ("keys", "types", "tags"):
        query = f"query($v: [String!]) {{ assets(filter: {{{field}: $v}}) {{ totalCount }} }}"
        assert f"a filter's {field} holds at most 1000 values, got 1001" in refused(
            await send(client, query, {"v": keys})
        )
    upstream = [f"pg://db/u{index}" for index in range(2_001)]
    message = refused(await send(client, UPSERT, {"input": {"key": "pg://db/a", "upstream": upstream}}))
    assert message == "an asset may declare at most 2000 upstream assets, got 2001"
    aliases = [f"pg://db/alias{index}" for index in range(1_001)]
    message = refused(await send(client, UPSERT, {"input": {"key": "pg://db/a", "aliases": aliases}}))
    assert message == "at most 1000 aliases can be added at once, got 1001"
    representations = [{"__typename": "Asset", "key": f"pg://db/{index}"} for index in range(10_001)]
    entities = "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }"
    assert "at most 10000 representations" in refused(await send(client, entities, {"r": representations}))
    await nothing_stored(client)
    # 1,000 keys are fine.
    query = "query($v: [String!]) { assets(filter: {keys: $v}) { totalCount } }"
    assert await graphql_data(client, query, {"v": keys[:1000]}) == {"assets": {"totalCount": 0}}


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_an_event_error_names_integers_orjson_cannot_write(dialect: str) -> None:
    # A document read by the standard library (not orjson) may hold such an integer where an object is due.
    with pytest.raises(EventError) as refusal:
        prepare({"eventTime": "2026-11-02T12:00:00Z", "producer": "p", "run": -(2**64), "job": {}})
    assert str(refusal.value).startswith("run: ")
    assert str(-(2**64)) in str(refusal.value)


async def test_large_floats_survive_a_round_trip_through_jsonb(client: httpx.AsyncClient) -> None:
    # Postgres JSONB gives 1e30 back as 1000000000000000000000000000000, an integer orjson cannot write: the next
    # event of the run, comparing facets at the same time, answered 500.
    def event(value: float) -> bytes:
        return orjson.dumps(
            {
                "eventType": "RUNNING",
                "eventTime": "2026-11-02T12:00:00Z",
                "producer": "https://example.com/producer",
                "run": {"runId": "big-numbers", "facets": {"custom": {"value": value}}},
                "job": {"namespace": "n", "name": "j"},
            }
        )

    for value in (1e30, 2e30):
        response = await client.post("/api/v1/lineage", content=event(value))
        assert response.status_code == 201, response.text
    data = await graphql_data(client, '{ execution(runId: "big-numbers") { facets } }')
    assert data == {"execution": {"facets": {"custom": {"value": 2e30}}}}
