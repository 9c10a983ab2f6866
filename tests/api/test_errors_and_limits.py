"""Errors carry stable codes, limits refuse abusive operations, and our own failures are masked."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.migrate import head_revision
from gateway.settings import Settings
from tests.helpers import error_codes, free_port, graphql, graphql_data

# Mistakes caught before any SQL is sent do not depend on the database: these tests run on SQLite only.
SQLITE_ONLY = pytest.mark.parametrize("dialect", ["sqlite"])

UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key } }"


async def declare(client: httpx.AsyncClient, key: str, **fields: Any) -> None:
    await graphql_data(client, UPSERT, {"input": {"key": key, **fields}})


@pytest.fixture
def migrated_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A data directory holding a migrated SQLite database, for apps with settings of their own."""
    template: Path = request.getfixturevalue("sqlite_template")
    shutil.copy(template, tmp_path / "gateway.db")
    return tmp_path


def only_code(body: dict[str, Any]) -> str:
    codes = error_codes(body)
    assert len(codes) == 1, body
    return codes[0]


# --- clients' mistakes -------------------------------------------------------------------------


async def test_lineage_of_an_unknown_asset_is_not_found(client: httpx.AsyncClient) -> None:
    body = await graphql(client, '{ lineage(key: "pg://db/nothing") { truncated } }')
    assert only_code(body) == "NOT_FOUND"
    assert "pg://db/nothing" in body["errors"][0]["message"]
    assert body["errors"][0]["path"] == ["lineage"]


PAGE_SIZE_QUERIES = [
    "query($n: Int) { assets(first: $n) { totalCount } }",
    "query($n: Int) { executions(first: $n) { edges { cursor } } }",
    "query($n: Int) { jobs(first: $n) { edges { cursor } } }",
    'query($n: Int) { asset(key: "pg://db/a") { executions(first: $n) { edges { cursor } } } }',
    'query($n: Int) { job(namespace: "n", name: "j") { executions(first: $n) { edges { cursor } } } }',
]


@SQLITE_ONLY
async def test_page_size_out_of_bounds(client: httpx.AsyncClient) -> None:
    await declare(client, "pg://db/a")
    await graphql_data(
        client, 'mutation { recordExecution(input: {job: {namespace: "n", name: "j"}, state: START}) { runId } }'
    )
    for first in (0, -1, 501):
        for query in PAGE_SIZE_QUERIES:
            body = await graphql(client, query, {"n": first})
            assert only_code(body) == "BAD_USER_INPUT", query
            assert f"first must be between 1 and 500, got {first}" in body["errors"][0]["message"]


LINEAGE_OUT_OF_BOUNDS = [
    '{ lineage(key: "pg://db/a", depth: 21) { truncated } }',
    '{ lineage(key: "pg://db/a", depth: 0) { truncated } }',
    '{ lineage(key: "pg://db/a", depth: -3) { truncated } }',
    '{ lineage(key: "pg://db/a", limit: 0) { truncated } }',
    '{ lineage(key: "pg://db/a", limit: 2001) { truncated } }',
    '{ asset(key: "pg://db/a") { upstream(depth: 21) { key } } }',
    '{ asset(key: "pg://db/a") { downstream(depth: 0) { key } } }',
]


@SQLITE_ONLY
async def test_lineage_bounds(client: httpx.AsyncClient) -> None:
    await declare(client, "pg://db/a")
    for query in LINEAGE_OUT_OF_BOUNDS:
        body = await graphql(client, query)
        assert only_code(body) == "BAD_USER_INPUT", query
        assert "between 1 and" in body["errors"][0]["message"]


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode()


async def test_bad_cursors(client: httpx.AsyncClient) -> None:
    for letter in "abc":
        await declare(client, f"pg://db/{letter}")
    key_cursor = (await graphql_data(client, "{ assets(first: 1) { pageInfo { endCursor } } }"))["assets"]["pageInfo"][
        "endCursor"
    ]
    bad = [
        ("assets(after: $after, orderBy: KEY)", "not-a-cursor"),
        ("assets(after: $after, orderBy: KEY)", "%%%"),
        ("assets(after: $after, orderBy: KEY)", base64.urlsafe_b64encode(b"[1, 2").decode()),
        ("assets(after: $after, orderBy: KEY)", _cursor("KEY", "pg://db/a", "not an id")),
        ("assets(after: $after, orderBy: KEY)", _cursor("KEY", "pg://db/a")),
        ("assets(after: $after, orderBy: UPDATED_AT_DESC)", _cursor("UPDATED_AT_DESC", "not a time", 1)),
        # A cursor is only good for the order it was made for.
        ("assets(after: $after, orderBy: NAME)", key_cursor),
        ("executions(after: $after)", key_cursor),
        ("jobs(after: $after)", key_cursor),
    ]
    for field, cursor in bad:
        body = await graphql(
            client, f"query($after: String) {{ {field} {{ pageInfo {{ hasNextPage }} }} }}", {"after": cursor}
        )
        assert only_code(body) == "BAD_USER_INPUT", (field, cursor)
        assert "cursor" in body["errors"][0]["message"]


@SQLITE_ONLY
async def test_invalid_keys(client: httpx.AsyncClient) -> None:
    for key in ["", "has space", "tab\there", "new\nline", "x" * 513]:
        body = await graphql(client, UPSERT, {"input": {"key": key}})
        assert only_code(body) == "BAD_USER_INPUT", key
    # 512 characters is the limit, and allowed.
    await declare(client, "k" * 512)


@SQLITE_ONLY
async def test_variable_and_argument_mistakes(client: httpx.AsyncClient) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("query($n: Int) { assets(first: $n) { totalCount } }", {"n": "ten"}),
        ("query($key: String!) { asset(key: $key) { key } }", {}),
        ("query($key: String!) { asset(key: $key) { key } }", {"key": None}),
        ('{ assets(first: "ten") { totalCount } }', {}),
        ("{ assets(orderBy: SIDEWAYS) { totalCount } }", {}),
        ("query($f: AssetFilterInput) { assets(filter: $f) { totalCount } }", {"f": {"nope": 1}}),
        ("query($f: AssetFilterInput) { assets(filter: $f) { totalCount } }", {"f": {"lastStatus": ["DONE"]}}),
        ('{ lineage(key: "a", asOf: "yesterday") { truncated } }', {}),
        ("mutation($i: RecordExecutionInput!) { recordExecution(input: $i) { runId } }", {"i": {"state": "START"}}),
    ]
    for query, variables in cases:
        body = await graphql(client, query, variables)
        assert error_codes(body), query
        assert set(error_codes(body)) <= {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}, query
        assert body.get("data") is None


@SQLITE_ONLY
async def test_unknown_field_fails_validation(client: httpx.AsyncClient) -> None:
    body = await graphql(client, '{ asset(key: "a") { key secretField } }')
    assert only_code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert "secretField" in body["errors"][0]["message"]
    body = await graphql(client, '{ asset(key: "a", color: "red") { key } }')
    assert only_code(body) == "GRAPHQL_VALIDATION_FAILED"


@SQLITE_ONLY
async def test_syntax_error_fails_parsing(client: httpx.AsyncClient) -> None:
    body = await graphql(client, '{ asset(key: "a" { key } }')
    assert only_code(body) == "GRAPHQL_PARSE_FAILED"
    assert body["errors"][0]["message"].startswith("Syntax Error")
    assert body["data"] is None
    # The same broken document again (parsed documents are cached; errors must not be).
    assert only_code(await graphql(client, '{ asset(key: "a" { key } }')) == "GRAPHQL_PARSE_FAILED"


UNSTORABLE: list[tuple[str, dict[str, Any]]] = [
    ('{ asset(key: "pg://db/a\\u0000") { key } }', {}),
    ('mutation { upsertAsset(input: {key: "pg://db/a", metadata: {k: "\\u0000"}}) { key } }', {}),
    (UPSERT, {"input": {"key": "pg://db/a", "description": "a NUL \x00 inside"}}),
    (UPSERT, {"input": {"key": "pg://db/a", "metadata": {"nested": ["ok", {"deep": "\x00"}]}}}),
    (UPSERT, {"input": {"key": "pg://db/a", "metadata": {"\x00": 1}}}),
    (UPSERT, {"input": {"key": "pg://db/a", "description": "a lone surrogate \ud800"}}),
    ("query($f: AssetFilterInput) { assets(filter: $f) { totalCount } }", {"f": {"search": "\x00"}}),
    ("query($key: String!) { asset(key: $key) { key } }", {"key": "pg://db/\x00"}),
    (
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
        {"r": [{"__typename": "Asset", "key": "pg://db/\x00"}]},
    ),
]


async def test_unstorable_strings_are_the_clients_mistake(client: httpx.AsyncClient) -> None:
    # Postgres stores no NUL in text or JSONB, and no string that is not UTF-8: the same answer on both dialects.
    for query, variables in UNSTORABLE:
        # ASCII JSON: a lone surrogate travels as its escape, as a client in another language would send it.
        payload = json.dumps({"query": query, "variables": variables}).encode()
        response = await client.post("/graphql", content=payload, headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert only_code(body) == "BAD_USER_INPUT", (query, variables)
        assert body["data"] is None
    assert (await graphql_data(client, "{ assets(filter: {includeDeleted: true}) { totalCount } }")) == {
        "assets": {"totalCount": 0}
    }


async def test_times_beyond_utc_are_the_clients_mistake(client: httpx.AsyncClient) -> None:
    cases = [
        (
            'mutation($t: DateTime) { recordExecution(input: {job: {namespace: "n", name: "j"}, state: START,'
            " eventTime: $t}) { runId } }",
            {"t": "9999-12-31T23:00:00-05:00"},
        ),
        (
            "query($t: DateTime) { executions(filter: {after: $t}) { edges { cursor } } }",
            {"t": "0001-01-01T00:00:00+05:00"},
        ),
        (
            "query($t: DateTime) { assets(filter: {updatedBefore: $t}) { totalCount } }",
            {"t": "0001-01-01T01:00:00+02:00"},
        ),
    ]
    for query, variables in cases:
        body = await graphql(client, query, variables)
        assert only_code(body) == "BAD_USER_INPUT", variables
        assert "out of range" in body["errors"][0]["message"]


# --- limits ------------------------------------------------------------------------------------


def _nested(levels: int) -> str:
    """assets > edges > node > lastExecution > parent > parent ... > runId."""
    inner = "runId"
    for _ in range(levels):
        inner = f"parent {{ {inner} }}"
    return f"{{ assets {{ edges {{ node {{ lastExecution {{ {inner} }} }} }} }} }}"


@SQLITE_ONLY
async def test_query_depth_limit(client: httpx.AsyncClient, settings: Settings) -> None:
    assert settings.max_query_depth == 12
    shallow = await graphql(client, _nested(5))
    assert "errors" not in shallow
    body = await graphql(client, _nested(12))
    assert only_code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert f"exceeds maximum operation depth of {settings.max_query_depth}" in body["errors"][0]["message"]
    assert body.get("data") is None


@SQLITE_ONLY
async def test_alias_limit(client: httpx.AsyncClient, settings: Settings) -> None:
    limit = settings.max_aliases
    allowed = "{ " + " ".join(f"a{index}: __typename" for index in range(limit)) + " }"
    assert len(await graphql_data(client, allowed)) == limit
    refused = "{ " + " ".join(f"a{index}: assets {{ totalCount }}" for index in range(limit + 1)) + " }"
    body = await graphql(client, refused)
    assert only_code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert body["errors"][0]["message"] == f"{limit + 1} aliases found. Allowed: {limit}"
    assert body.get("data") is None


@SQLITE_ONLY
async def test_token_limit(client: httpx.AsyncClient, settings: Settings) -> None:
    fields = " ".join("__typename" for _ in range(settings.max_tokens))
    body = await graphql(client, "{ " + fields + " }")
    assert only_code(body) == "GRAPHQL_PARSE_FAILED"
    assert f"more than {settings.max_tokens} tokens" in body["errors"][0]["message"]
    assert body.get("data") is None


async def test_limits_follow_settings(migrated_dir: Path) -> None:
    settings = Settings(data_dir=migrated_dir, auto_migrate=False, max_aliases=2, max_query_depth=3, max_page_size=10)
    async with _client(create_app(settings)) as client:
        assert "errors" not in await graphql(client, "{ a: __typename b: __typename }")
        assert only_code(await graphql(client, "{ a: __typename b: __typename c: __typename }")) == (
            "GRAPHQL_VALIDATION_FAILED"
        )
        assert only_code(await graphql(client, _nested(2))) == "GRAPHQL_VALIDATION_FAILED"
        body = await graphql(client, "{ assets(first: 11) { totalCount } }")
        assert only_code(body) == "BAD_USER_INPUT"
        assert "between 1 and 10" in body["errors"][0]["message"]


# --- our own failures ----------------------------------------------------------------------------


class _client:
    """An httpx client on an app of its own, disposing the app's engine after."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.http

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()
        await self.app.state.db.dispose()


@pytest.fixture
async def unreachable_app(tmp_path: Path) -> AsyncIterator[Starlette]:
    """An app whose Postgres does not answer: nothing listens on the port."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gateway"
    app = create_app(Settings(data_dir=tmp_path, database_url=url, auto_migrate=False))
    yield app
    await app.state.db.dispose()


def _assert_unavailable(response: httpx.Response, says: str) -> None:
    """503 with Retry-After, coded SERVICE_UNAVAILABLE, in our words: none of the driver's detail."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert says in body["errors"][0]["message"]
    text = orjson.dumps(body).decode()
    for leak in ("Traceback", "Connect", "Errno", "127.0.0.1", "sqlite", "SELECT", "no such table"):
        assert leak not in text


async def test_database_unreachable_is_503_and_logged(
    unreachable_app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=unreachable_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        # The auth middleware asks the database first: it answers for every path, GraphQL or not.
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            response = await client.post("/graphql", json={"query": "{ assets { totalCount } }"})
        _assert_unavailable(response, "the database is unavailable")
        # The operator sees what happened: a warning in the access log, with the request's id.
        logged = [record for record in caplog.records if record.name == "gateway.access"]
        assert len(logged) == 1
        assert logged[0].levelno == logging.WARNING
        assert logged[0].status == 503  # type: ignore[attr-defined]
        assert logged[0].request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]

        # While the auth check's last answer is cached, requests reach the resolvers and the ingest endpoint: 503 too.
        mutation = await client.post("/graphql", json={"query": UPSERT, "variables": {"input": {"key": "pg://db/a"}}})
        _assert_unavailable(mutation, "the database is unavailable")
        event = {
            "eventType": "START",
            "eventTime": "2026-01-05T03:00:00+00:00",
            "producer": "https://github.com/example/asset-gateway-tests",
            "run": {"runId": "0190a8a0-0000-7000-8000-000000000001"},
            "job": {"namespace": "n", "name": "j"},
        }
        _assert_unavailable(await client.post("/api/v1/lineage", json=event), "the database is unavailable")

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"


async def test_database_not_migrated_is_503(tmp_path: Path) -> None:
    async with _client(create_app(Settings(data_dir=tmp_path, auto_migrate=False))) as client:
        response = await client.post("/graphql", json={"query": '{ asset(key: "pg://db/a") { key } }'})
        _assert_unavailable(response, "run `asset-gateway migrate`")
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "asset-gateway migrate" in ready.json()["reason"]


@SQLITE_ONLY
async def test_clients_mistakes_are_not_logged_as_errors(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.graphql"):
        await graphql(client, '{ lineage(key: "pg://db/none") { truncated } }')
        await graphql(client, "{ assets(first: 0) { totalCount } }")
        await graphql(client, "{ nope }")
        await graphql(client, "{ nope")
    assert [record for record in caplog.records if record.name == "gateway.graphql"] == []


# --- HTTP ----------------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_get_with_a_mutation_is_refused(client: httpx.AsyncClient) -> None:
    mutation = 'mutation { upsertAsset(input: {key: "pg://db/by-get"}) { key } }'
    response = await client.get("/graphql", params={"query": mutation})
    assert response.status_code in (400, 405)
    assert "mutation" in response.text.lower()
    # Named among several operations, too.
    document = 'query Q { __typename } mutation M { upsertAsset(input: {key: "pg://db/by-get"}) { key } }'
    response = await client.get("/graphql", params={"query": document, "operationName": "M"})
    assert response.status_code in (400, 405)
    assert (await graphql_data(client, '{ asset(key: "pg://db/by-get") { key } }'))["asset"] is None
    # Queries over GET are fine.
    response = await client.get("/graphql", params={"query": "{ assets { totalCount } }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"assets": {"totalCount": 0}}}


CLIENT_MISTAKES: list[tuple[str, dict[str, Any]]] = [
    ("POST", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", {"json": {"variables": {}}}),
    ("POST", {"json": {"query": 5}}),
    ("POST", {"json": {"query": "{ __typename }", "variables": [1]}}),
    ("POST", {"json": [{"query": "{ __typename }"}, {"query": "{ __typename }"}]}),
    ("POST", {"json": {"query": "{ __typename }", "operationName": "Missing"}}),
    ("POST", {"content": b"query", "headers": {"content-type": "text/plain"}}),
    ("POST", {"json": {"query": "subscription { nothing }"}}),
    ("PUT", {"json": {"query": "{ __typename }"}}),
    ("DELETE", {}),
    ("GET", {"params": {"query": "{ __typename }", "variables": "{broken"}}),
    ("GET", {"params": {"query": "{ nope"}}),
]


@SQLITE_ONLY
async def test_no_server_error_for_a_clients_mistake(client: httpx.AsyncClient) -> None:
    for method, kwargs in CLIENT_MISTAKES:
        response = await client.request(method, "/graphql", **kwargs)
        if response.status_code == 200:
            assert error_codes(response.json()), (method, kwargs, response.text)
        else:
            assert 400 <= response.status_code < 500, (method, kwargs, response.text)
        assert "Traceback" not in response.text


async def test_health_ready_and_root(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "migration": head_revision()}
    root = await client.get("/")
    assert root.status_code in (302, 307)
    assert root.headers["location"] == "/graphql"


async def test_graphiql_follows_settings(migrated_dir: Path) -> None:
    for enabled in (True, False):
        settings = Settings(data_dir=migrated_dir, auto_migrate=False, graphiql=enabled)
        async with _client(create_app(settings)) as client:
            response = await client.get("/graphql", headers={"accept": "text/html"})
            if enabled:
                assert response.status_code == 200
                assert "graphiql" in response.text.lower()
            else:
                assert response.status_code == 404
