"""Abuse in the manner of graphql-cop: each attack is refused, with the right status and a stable code.

Everything here is refused before any SQL is sent, so the tests run on SQLite only, each on an app of its own
settings, through httpx's ASGI transport.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings
from schema import build_schema
from schema.cost import CODE as TOO_COSTLY
from schema.cost import CostModel, operation_cost
from schema.disclosure import INTROSPECTION_DISABLED
from schema.shape import MAX_EXPANDED_FIELDS
from tests.helpers import error_codes
from tests.security.support import create_admin_token

Gateway = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
BASE = "http://gateway.test"


@pytest.fixture
def gateway(tmp_path: Path, sqlite_template: Path) -> Gateway:
    """`async with gateway(**settings) as client`: an app on a migrated SQLite copy, with these settings."""
    counter = iter(range(1_000))

    @asynccontextmanager
    async def open_gateway(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        data_dir = tmp_path / f"gateway-{next(counter)}"
        data_dir.mkdir()
        shutil.copy(sqlite_template, data_dir / "gateway.db")
        app: Starlette = create_app(Settings(data_dir=data_dir, auto_migrate=False, **overrides))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
                yield client
        finally:
            await app.state.db.dispose()

    return open_gateway


async def post(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refusal(body: dict[str, Any], code: str) -> str:
    """The one error's message, after checking its code and that nothing was executed."""
    assert error_codes(body) == [code], body
    assert body.get("data") is None, body
    message: str = body["errors"][0]["message"]
    return message


def succeeded(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


# --- alias overloading, field duplication, deep nesting, fragment bombs ------------------------------------------


async def test_alias_overloading_is_refused(gateway: Gateway) -> None:
    async with gateway() as client:
        # graphql-cop's probe: 101 aliases of __typename.
        probe = "query cop { " + " ".join(f"alias{index}: __typename" for index in range(101)) + " }"
        assert refusal(await post(client, probe), "GRAPHQL_VALIDATION_FAILED") == "101 aliases found. Allowed: 30"
        heavy = "{ " + " ".join(f"a{index}: assets(first: 500) {{ totalCount }}" for index in range(31)) + " }"
        assert "31 aliases found" in refusal(await post(client, heavy), "GRAPHQL_VALIDATION_FAILED")
        # Aliases hidden in a fragment count too.
        spread = "{ ...F } fragment F on Query { " + " ".join(f"a{index}: __typename" for index in range(31)) + " }"
        assert "31 aliases found" in refusal(await post(client, spread), "GRAPHQL_VALIDATION_FAILED")
        assert len(succeeded(await post(client, "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"))) == 30


async def test_field_duplication_is_refused(gateway: Gateway) -> None:
    async with gateway() as client:
        # graphql-cop's probe: 500 copies of __typename.
        probe = "query cop { " + "__typename " * 500 + "}"
        message = refusal(await post(client, probe), "GRAPHQL_VALIDATION_FAILED")
        assert (
            message
            == "the field '__typename' is selected 500 times at one place of the response; at most 50 are allowed"
        )
        # Copies merging at one place through nesting, inline fragments and fragments.
        nested = "{ assets { nodes { " + ("lastExecution { " + "parent { runId } " * 45 + "} ") * 20 + "} } }"
        assert "'parent' is selected 900 times" in refusal(await post(client, nested), "GRAPHQL_VALIDATION_FAILED")
        inline = "{ assets { nodes { " + "... on Asset { lastExecution { runId } } " * 60 + "} } }"
        assert "'lastExecution' is selected 60 times" in refusal(
            await post(client, inline), "GRAPHQL_VALIDATION_FAILED"
        )
        fragments = " ".join(f"fragment F{index} on Asset {{ key }}" for index in range(51))
        spread = "{ assets { nodes { " + " ".join(f"...F{index}" for index in range(51)) + " } } } " + fragments
        assert "'key' is selected 51 times" in refusal(await post(client, spread), "GRAPHQL_VALIDATION_FAILED")
        # A few fragments asking for the same fields, as real clients do, are fine.
        legit = (
            "{ assets { nodes { key ...Card ...Status ... on Asset { key lastStatus } } } }"
            " fragment Card on Asset { key owners } fragment Status on Asset { key lastStatus }"
        )
        assert succeeded(await post(client, legit)) == {"assets": {"nodes": []}}


async def test_field_repeats_follow_settings(gateway: Gateway) -> None:
    async with gateway(max_field_repeats=3) as client:
        assert succeeded(await post(client, "{ __typename __typename __typename }"))
        body = await post(client, "{ __typename __typename __typename __typename }")
        assert "at most 3 are allowed" in refusal(body, "GRAPHQL_VALIDATION_FAILED")


async def test_fragment_bomb_is_refused_at_once(gateway: Gateway) -> None:
    # Every fragment spreads the next one twice: 2^30 fields once expanded, in 2.5 kB. The alias and depth limiters
    # expand fragments as they count; unrefused, this document would hold the event loop for hours.
    chain = " ".join(
        f"fragment F{index} on Asset {{ lastExecution {{ runId }} upstream {{ ...F{index + 1} ...F{index + 1} }} }}"
        for index in range(30)
    )
    bomb = "{ assets { nodes { ...F0 } } } " + chain + " fragment F30 on Asset { key }"
    async with gateway() as client:
        started = time.monotonic()
        message = refusal(await post(client, bomb), "GRAPHQL_VALIDATION_FAILED")
        assert time.monotonic() - started < 2
    assert message.startswith("the document selects ")
    assert f"fields once its fragments are expanded; at most {MAX_EXPANDED_FIELDS} are allowed" in message


async def test_deep_nesting_is_refused(gateway: Gateway) -> None:
    def nested(levels: int) -> str:
        inner = "runId"
        for _ in range(levels):
            inner = f"parent {{ {inner} }}"
        return f"{{ assets {{ nodes {{ lastExecution {{ {inner} }} }} }} }}"

    async with gateway() as client:
        assert succeeded(await post(client, nested(8))) == {"assets": {"nodes": []}}
        message = refusal(await post(client, nested(30)), "GRAPHQL_VALIDATION_FAILED")
        assert "exceeds maximum operation depth of 12" in message
        # Nesting through fragments counts the same.
        chain = " ".join(f"fragment P{i} on Execution {{ parent {{ ...P{i + 1} }} }}" for i in range(20))
        through_fragments = '{ execution(runId: "r") { ...P0 } } ' + chain + " fragment P20 on Execution { runId }"
        assert "maximum operation depth" in refusal(await post(client, through_fragments), "GRAPHQL_VALIDATION_FAILED")
        # Too deep to parse at all: refused by the parser, not by a RecursionError of ours.
        abyss = "{ " + "assets { nodes { " * 400 + "key" + " } }" * 400 + " }"
        assert refusal(await post(client, abyss), "GRAPHQL_PARSE_FAILED").startswith("Syntax Error")


# --- cost -----------------------------------------------------------------------------------------------------------


async def test_costly_operations_are_refused_before_execution(gateway: Gateway) -> None:
    executions = "executions(first: 500) { nodes { execution { runId inputs { asset { key } } } } }"
    async with gateway() as client:
        body = await post(client, f"{{ assets(first: 500) {{ nodes {{ key {executions} }} }} }}")
        message = refusal(body, TOO_COSTLY)
        cost = body["errors"][0]["extensions"]["cost"]
        assert body["errors"][0]["extensions"]["maxCost"] == 500_000
        assert cost > 500_000
        assert f"the operation would cost {cost}, more than the limit of 500000" in message
        # The same through variables, a fragment and an inline fragment.
        through_variables = (
            "query($n: Int, $m: Int) { assets(first: $n) { nodes { ...A } } }"
            " fragment A on Asset { ... on Asset { executions(first: $m) { nodes { execution { ...E } } } } }"
            " fragment E on Execution { runId inputs { asset { key } } }"
        )
        body = await post(client, through_variables, {"n": 500, "m": 500})
        refusal(body, TOO_COSTLY)
        # The same work, however it is written.
        assert body["errors"][0]["extensions"]["cost"] == cost
        # Smaller pages are fine.
        assert succeeded(await post(client, through_variables, {"n": 10, "m": 10})) == {"assets": {"nodes": []}}
        # A mutation is costed too.
        mutation = (
            'mutation { recordExecution(input: {job: {namespace: "n", name: "j"}, state: START}) {'
            " job { executions(first: 500) { nodes { children { inputs { asset { executions(first: 500)"
            " { nodes { role } } } } } } } } } }"
        )
        refusal(await post(client, mutation), TOO_COSTLY)
        assert succeeded(await post(client, "{ executions { nodes { runId } } }")) == {"executions": {"nodes": []}}
        assert succeeded(await post(client, "{ assets { totalCount } }")) == {"assets": {"totalCount": 0}}


async def test_cost_limit_follows_settings(gateway: Gateway) -> None:
    async with gateway(max_query_cost=101) as client:
        # 100 nodes and their connection: 101.
        assert succeeded(await post(client, "{ assets(first: 100) { nodes { key } } }"))
        body = await post(client, "{ assets(first: 101) { nodes { key } } }")
        assert "would cost 102, more than the limit of 101" in refusal(body, TOO_COSTLY)


def test_cost_counts_fragments_like_inline_selections() -> None:
    schema = build_schema()._schema
    model = CostModel(default_page_size=50, max_page_size=500, lineage_max_nodes=2000, lineage_max_depth=20)

    def cost(query: str, variables: dict[str, Any] | None = None, operation: str | None = None) -> int | None:
        return operation_cost(schema, parse(query), operation, variables, model)

    inline = "{ assets(first: 10) { edges { node { key lastExecution { runId job { name } } } } totalCount } }"
    assert cost(inline) == 1 + 10 * (1 + 1 + 1 + 1)
    assert cost(
        "{ assets(first: 10) { edges { node { ...A } } totalCount } } fragment A on Asset { key ...B }"
        " fragment B on Asset { lastExecution { runId job { name } } }"
    ) == cost(inline)
    assert cost(
        "{ assets(first: 10) { edges { node { ... on Asset { key lastExecution { runId ... { job { name } } } } } }"
        " totalCount } }"
    ) == cost(inline)
    # Variables, their defaults, and the default page size.
    assert cost("query($n: Int) { assets(first: $n) { nodes { key } } }", {"n": 7}) == 8
    assert cost("query($n: Int = 9) { assets(first: $n) { nodes { key } } }") == 10
    assert cost("{ assets { nodes { key } } }") == 51
    # Out of range values are clamped: the resolver refuses them with its own message.
    assert cost("{ assets(first: 100000) { nodes { key } } }") == 501
    assert cost("{ assets(first: -5) { nodes { key } } }") == 2
    # Lineage costs its node limit; upstream/downstream the most nodes they may return.
    assert cost('{ lineage(key: "k", limit: 10) { nodes { asset { key } } edges { upstreamKey } } }') == 1 + 10 * 2 + 10
    assert cost('{ lineage(key: "k") { nodes { depth } } }') == 1 + 2000
    assert cost('{ asset(key: "k") { upstream { key } } }') == 1 + 2000
    assert cost('{ lineagePath(from: "a", to: "b") { nodes { key } } }') == 1 + 21
    # Entities: as many as the representations.
    reps = [{"__typename": "Asset", "key": str(index)} for index in range(4)]
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Asset { lastExecution { runId } } } }"
    assert cost(query, {"r": reps}) == 4 * 2
    # Introspection is bounded by the schema and costs nothing; the chosen operation alone is costed.
    assert cost("{ __schema { types { fields { type { ofType { name } } } } } }") == 0
    two = "query A { assets(first: 5) { nodes { key } } } query B { assets(first: 9) { nodes { key } } }"
    assert cost(two, operation="B") == 10
    assert cost(two) is None


# --- batching ---------------------------------------------------------------------------------------------------------


async def test_batches_are_refused_by_default(gateway: Gateway) -> None:
    flood = [{"query": f"query Q{index} {{ assets(first: 500) {{ totalCount }} }}"} for index in range(100)]
    async with gateway() as client:
        response = await client.post("/graphql", json=flood)
        assert response.status_code == 400
        assert response.text == "batched operations (a JSON array) are not accepted: send one per request"
        assert (await client.post("/graphql", json=[])).status_code == 400


async def test_batches_are_capped_when_enabled(gateway: Gateway) -> None:
    async with gateway(max_batch_operations=3) as client:
        batch: list[dict[str, Any]] = [
            {"query": "{ assets { totalCount } }"},
            {"query": "query($k: String!) { asset(key: $k) { key } }", "variables": {"k": "pg://db/none"}},
        ]
        response = await client.post("/graphql", json=batch)
        assert response.status_code == 200, response.text
        assert response.json() == [{"data": {"assets": {"totalCount": 0}}}, {"data": {"asset": None}}]

        response = await client.post("/graphql", json=[{"query": "{ __typename }"}] * 4)
        assert response.status_code == 400
        assert response.text == "a batch holds 1 to 3 operations, got 4"
        for broken, message in [
            ([1, 2], "operation 0 of the batch must be a JSON object"),
            ([{"query": "{ __typename }"}, {"query": 5}], "operation 1 of the batch needs a string query"),
            ([{"query": "{ __typename }", "variables": [1]}], "operation 0 of the batch needs a string query"),
            ([{"query": "{ __typename }", "extensions": 3}], "the extensions of operation 0"),
            ([], "a batch holds 1 to 3 operations, got 0"),
        ]:
            response = await client.post("/graphql", json=broken)
            assert response.status_code == 400, broken
            assert message in response.text, broken
        # Each operation of a batch is costed and limited like a single one.
        costly = "{ assets(first: 500) { nodes { executions(first: 500) { nodes { execution { runId } } } } } }"
        response = await client.post("/graphql", json=[{"query": "{ __typename }"}, {"query": costly}])
        assert response.status_code == 200
        first, second = response.json()
        assert first == {"data": {"__typename": "Query"}}
        assert second["errors"][0]["extensions"]["code"] == TOO_COSTLY


# --- bodies -----------------------------------------------------------------------------------------------------------


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body of `total` bytes sent chunked, without a Content-Length: a JSON string that never ends."""
    yield b'{"query": "{ __typename }", "variables": {"padding": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


async def test_huge_graphql_bodies_get_413(gateway: Gateway) -> None:
    limit = 64 * 1024
    async with gateway(max_graphql_body_bytes=limit) as client:
        padding = "x" * limit
        declared = await client.post("/graphql", json={"query": "{ __typename }", "variables": {"p": padding}})
        assert declared.status_code == 413
        assert declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        assert f"exceeds the limit of {limit} bytes" in declared.json()["errors"][0]["message"]

        chunked = await client.post(
            "/graphql", content=_chunks(10 * limit), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert chunked.json()["errors"][0]["message"] == f"the request body exceeds the limit of {limit} bytes"

        # Just under the limit is fine, chunked or not.
        small = {"query": "{ __typename }", "variables": {"p": "x" * (limit - 100)}}
        assert (await client.post("/graphql", json=small)).json() == {"data": {"__typename": "Query"}}


async def test_huge_lineage_bodies_get_413(gateway: Gateway) -> None:
    limit = 16 * 1024
    async with gateway(max_body_bytes=limit) as client:
        declared = await client.post("/api/v1/lineage", content=b"[" + b" " * (2 * limit) + b"]")
        assert declared.status_code == 413
        assert declared.json() == {"error": f"body of {2 * limit + 2} bytes exceeds the limit of {limit} bytes"}
        chunked = await client.post(
            "/api/v1/lineage", content=_chunks(4 * limit), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert chunked.json() == {"error": f"body exceeds the limit of {limit} bytes"}


async def test_json_that_is_not_a_request_gets_400(gateway: Gateway) -> None:
    async with gateway() as client:
        for body, kind in [(b"5", "a number"), (b'"query"', "a string"), (b"null", "null"), (b"true", "a boolean")]:
            response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, body
            assert response.text == f"the request must be a JSON object, got {kind}"
        response = await client.post("/graphql", json={"query": "{ __typename }", "operationName": 5})
        assert response.status_code == 400
        assert "operationName" in response.text


# --- what the API tells about itself ----------------------------------------------------------------------------------


INTROSPECTION = [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "Asset") { fields { name } } }',
    "{ ...I } fragment I on Query { __schema { types { name } } }",
    '{ asset(key: "k") { ... on Asset { __type(name: "Job") { name } } } }',
]


async def test_introspection_can_be_switched_off(gateway: Gateway) -> None:
    async with gateway() as client:
        data = succeeded(await post(client, INTROSPECTION[0]))
        assert data == {"__schema": {"queryType": {"name": "Query"}}}
    async with gateway(introspection=False) as client:
        for query in INTROSPECTION[:3]:
            message = refusal(await post(client, query), INTROSPECTION_DISABLED)
            assert message.startswith("introspection is disabled on this gateway")
        body = await post(client, INTROSPECTION[3])
        assert INTROSPECTION_DISABLED in error_codes(body)
        # __typename stays, and so does the SDL a supergraph composes from.
        assert succeeded(await post(client, "{ __typename }")) == {"__typename": "Query"}
        sdl = succeeded(await post(client, "{ _service { sdl } }"))["_service"]["sdl"]
        assert 'type Asset @key(fields: "key")' in sdl


# Each with the name a suggestion would give away.
SUGGESTIBLE: list[tuple[str, dict[str, Any], str]] = [
    ('{ asset(key: "k") { kee } }', {}, "'key'"),
    ("{ assets(orderBy: KEE) { totalCount } }", {}, "'KEY'"),
    ('{ asset(kee: "k") { key } }', {}, "'key'"),
    ('{ assets(filter: {serch: "x"}) { totalCount } }', {}, "'search'"),
    ("query($f: AssetFilterInput) { assets(filter: $f) { totalCount } }", {"f": {"serch": "x"}}, "'search'"),
    ("query($o: AssetOrder!) { assets(orderBy: $o) { totalCount } }", {"o": "KEE"}, "'KEY'"),
    ("query($a: Assett) { __typename }", {}, "'Asset'"),
]


def _messages(body: dict[str, Any]) -> str:
    assert body["errors"], body
    return " ".join(error["message"] for error in body["errors"])


async def test_field_suggestions_can_be_switched_off(gateway: Gateway) -> None:
    async with gateway() as client:
        for query, variables, hint in SUGGESTIBLE:
            messages = _messages(await post(client, query, variables))
            assert "Did you mean" in messages, query
            assert hint in messages, query
    async with gateway(field_suggestions=False) as client:
        for query, variables, hint in SUGGESTIBLE:
            messages = _messages(await post(client, query, variables))
            assert "Did you mean" not in messages, query
            assert hint not in messages, (query, messages)
        # The rest of the message stays readable.
        body = await post(client, SUGGESTIBLE[0][0])
        assert body["errors"][0]["message"] == "Cannot query field 'kee' on type 'Asset'."
        body = await post(client, SUGGESTIBLE[4][0], SUGGESTIBLE[4][1])
        assert body["errors"][0]["message"] == (
            "Variable '$f' has invalid value: Expected value of type 'AssetFilterInput' not to include unknown field"
            " 'serch'. Found: {'serch': 'x'}."
        )


async def test_graphiql_can_be_switched_off(gateway: Gateway) -> None:
    html = {"accept": "text/html"}
    async with gateway() as client:
        page = await client.get("/graphql", headers=html)
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
    async with gateway(graphiql=False) as client:
        assert (await client.get("/graphql", headers=html)).status_code == 404
        # The API itself is still there.
        assert (await client.get("/graphql", params={"query": "{ __typename }"})).json() == {
            "data": {"__typename": "Query"}
        }


# --- HTTP methods ----------------------------------------------------------------------------------------------------


async def test_mutations_over_get_are_refused(gateway: Gateway) -> None:
    mutation = 'mutation { upsertAsset(input: {key: "pg://db/by-get"}) { key } }'
    async with gateway() as client:
        response = await client.get("/graphql", params={"query": mutation})
        assert response.status_code == 400
        assert response.text == "mutations are not allowed when using GET"
        named = "query Q { __typename } " + mutation.replace("mutation", "mutation M")
        assert (await client.get("/graphql", params={"query": named, "operationName": "M"})).status_code == 400
        body = await post(client, '{ asset(key: "pg://db/by-get") { key } }')
        assert succeeded(body) == {"asset": None}
        # Queries over GET are fine by default...
        assert (await client.get("/graphql", params={"query": "{ __typename }"})).json() == {
            "data": {"__typename": "Query"}
        }
    async with gateway(graphql_get_queries=False) as client:
        # ... and can be refused too.
        refused = await client.get("/graphql", params={"query": "{ __typename }"})
        assert refused.status_code == 400
        assert refused.text == "queries are not allowed when using GET"
        assert succeeded(await post(client, "{ __typename }"))


# --- CORS -------------------------------------------------------------------------------------------------------------


ALLOWED = "https://catalog.example.com"
PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type"}


async def test_cors_preflights_need_no_token_and_name_the_allowed_origins(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copy(sqlite_template, tmp_path / "gateway.db")
    app = create_app(Settings(data_dir=tmp_path, auto_migrate=False, cors_origins=[ALLOWED, "https://other.example"]))
    token = await create_admin_token(app.state.db)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            preflight = await client.options("/graphql", headers={"origin": ALLOWED, **PREFLIGHT})
            assert preflight.status_code == 200, preflight.text
            assert preflight.headers["access-control-allow-origin"] == ALLOWED
            allowed_headers = preflight.headers["access-control-allow-headers"].lower()
            assert "authorization" in allowed_headers
            assert "content-type" in allowed_headers
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "access-control-allow-credentials" not in preflight.headers

            refused = await client.options("/graphql", headers={"origin": "https://evil.example", **PREFLIGHT})
            assert refused.status_code == 400
            assert "access-control-allow-origin" not in refused.headers

            # The actual request still needs its token; the answer names the origin.
            headers = {"origin": ALLOWED, "authorization": f"Bearer {token}"}
            response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == ALLOWED
            anonymous = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": ALLOWED})
            assert anonymous.status_code == 401
            evil = await client.post(
                "/graphql", json={"query": "{ __typename }"}, headers={**headers, "origin": "https://evil.example"}
            )
            assert "access-control-allow-origin" not in evil.headers
            # The OpenLineage endpoint is covered alike.
            lineage = await client.options("/api/v1/lineage", headers={"origin": ALLOWED, **PREFLIGHT})
            assert lineage.status_code == 200
    finally:
        await app.state.db.dispose()


async def test_no_cors_without_configured_origins(gateway: Gateway) -> None:
    async with gateway() as client:
        preflight = await client.options("/graphql", headers={"origin": ALLOWED, **PREFLIGHT})
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 405
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": ALLOWED})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", '["https://c.example"]')
    assert Settings().cors_origins == ["https://c.example"]
    monkeypatch.delenv("GATEWAY_CORS_ORIGINS")
    assert Settings().cors_origins == []
