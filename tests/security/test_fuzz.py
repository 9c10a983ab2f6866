"""Fuzzing a running gateway (`asset-gateway serve`, a real uvicorn on loopback) on SQLite and on Postgres.

- schemathesis against the GraphQL schema it introspects from the server: every query and mutation, with valid
  and invalid arguments;
- schemathesis against POST /api/v1/lineage, described by the small OpenAPI document below;
- hypothesis-made broken OpenLineage events: each gets 400, and no table gains or loses a row.

Every request carries an admin token (auth is on: a token exists), so that resolvers are reached. No answer may
be a 5xx, carry a traceback, or be a masked INTERNAL_SERVER_ERROR (our failure, even when masked), and the
server's log must show no error.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import NameNode, ObjectFieldNode, ValueNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.database import Database
from gateway.orm import Base
from gateway.settings import Settings
from schema import build_schema
from tests.security.support import create_admin_token
from tests.test_server_process import gateway_env, serving

# Examples per GraphQL operation and for the lineage endpoint, on each dialect: together a few thousand requests
# in about a minute per dialect on two cores.
GRAPHQL_EXAMPLES = 80
LINEAGE_EXAMPLES = 400
MALFORMED_EXAMPLES = 200
DECLARATION_EXAMPLES = 150
# What the fuzzing must at least have sent on one dialect, lest a change in schemathesis quietly skip operations.
MIN_GRAPHQL_REQUESTS = 1000
MIN_LINEAGE_REQUESTS = 300
# Generation is what takes time here; no example database (each run explores anew), no deadline (the server's
# latency varies under load), none of the checks on slow generation.
QUIET: dict[str, Any] = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None}
# What our insides look like when they leak. Not bare words such as "asyncpg": answers quote the client's input
# back, and the fuzzer writes anything.
LEAKS = (
    "Traceback (most recent call last)",
    'File "/',
    "sqlalchemy.exc.",
    "asyncpg.exceptions.",
    "sqlite3.",
    "(Background on this error at",
)
# Per fuzzing test, on a loaded machine: generation alone takes most of a minute for the lineage endpoint.
SLOW = pytest.mark.timeout(600)


@dataclass
class Server:
    base: str
    token: str
    log: Path
    database_url: str
    requests: Counter[str]
    log_read: int = 0

    def new_log(self) -> str:
        """What the server logged since the last call."""
        with self.log.open("rb") as log:
            log.seek(self.log_read)
            text = log.read()
        self.log_read += len(text)
        return text.decode(errors="replace")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


async def _admin_token(url: str, directory: Path) -> str:
    db = Database(Settings(data_dir=directory, database_url=url, auto_migrate=False))
    try:
        return await create_admin_token(db, "fuzzer")
    finally:
        await db.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own per dialect, for the whole module. A sync fixture, so that it may pull the (async)
    Postgres fixture for that dialect only; its own database work runs in loops of its own."""
    directory = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, directory / "gateway.db")
        url = f"sqlite+aiosqlite:///{directory / 'gateway.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
        asyncio.run(_truncate(url))
    token = asyncio.run(_admin_token(url, directory))
    env = gateway_env(
        GATEWAY_DATA_DIR=str(directory),
        GATEWAY_DATABASE_URL=url,
        GATEWAY_AUTO_MIGRATE="false",
        GATEWAY_SCHEDULER_ENABLED="false",
    )
    log = directory / "server.log"
    with serving(env, log) as (base, _process):
        _assert_auth_is_on(base)
        yield Server(base, token, log, url, Counter())
    assert "Traceback" not in log.read_text(), log.read_text()


def _assert_auth_is_on(base: str) -> None:
    # Without the token nothing is answered: the fuzzing reaches the resolvers as an admin, not as anonymous.
    assert httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, timeout=10).status_code == 401


def _masked_failures(body: str) -> list[Any]:
    """GraphQL errors that hide a failure of ours (Strawberry's masked message, or the internal error code).

    Read from the answer's errors, not searched in its text: an error may quote the input that caused it, and the
    fuzzer sends these very strings as input (a time zone named "Unexpected error.")."""
    try:
        answer = json.loads(body)
    except ValueError:
        return [marker for marker in ("INTERNAL_SERVER_ERROR", "Unexpected error.") if marker in body]
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [
        error
        for error in errors or []
        if isinstance(error, dict)
        and (
            error.get("message") == "Unexpected error."
            or (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
        )
    ]


def check(server: Server, kind: str, status: int, body: str) -> None:
    """No 5xx, no leak of our insides, no masked failure of ours."""
    server.requests[kind] += 1
    assert status < 500, body
    for leak in LEAKS:
        assert leak not in body, body
    assert not _masked_failures(body), body
    logged = server.new_log()
    assert "Traceback" not in logged, logged


# --- GraphQL -------------------------------------------------------------------------------------------------------

_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


def _field(name: str, value: ValueNode) -> ObjectFieldNode:
    return ObjectFieldNode(name=NameNode(value=name), value=value)


_JSON_LEAVES: st.SearchStrategy[ValueNode] = st.one_of(
    st.text(max_size=20).map(nodes.String),
    st.integers(min_value=-(2**70), max_value=2**70).map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.booleans().map(nodes.Boolean),
    st.just(nodes.Null),
)
JSON_VALUES: st.SearchStrategy[ValueNode] = st.recursive(
    _JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(nodes.List),
        st.dictionaries(_NAMES, children, max_size=4).map(
            lambda fields: nodes.Object([_field(key, value) for key, value in fields.items()])
        ),
    ),
    max_leaves=12,
)
# Federation representations: usually of our entity types and their keys, sometimes anything.
REPRESENTATIONS: st.SearchStrategy[ValueNode] = st.one_of(
    st.builds(
        lambda typename, key: nodes.Object([_field("__typename", nodes.String(typename)), _field("key", key)]),
        st.sampled_from(["Asset", "Execution", "Job", "Nope"]),
        st.one_of(st.text(max_size=30).map(nodes.String), st.integers().map(nodes.Int)),
    ),
    st.builds(
        lambda namespace, name: nodes.Object(
            [_field("__typename", nodes.String("Job")), _field("namespace", namespace), _field("name", name)]
        ),
        st.text(max_size=20).map(nodes.String),
        st.text(max_size=20).map(nodes.String),
    ),
    JSON_VALUES,
)
schemathesis.graphql.scalar("JSON", JSON_VALUES)
schemathesis.graphql.scalar("_Any", REPRESENTATIONS)


def _root_fields() -> list[str]:
    schema = build_schema()._schema
    return [f"{root.name}.{name}" for root in (schema.query_type, schema.mutation_type) if root for name in root.fields]


OPERATIONS = _root_fields()


@pytest.fixture(scope="module")
def graphql_api(server: Server) -> schemathesis.BaseSchema:
    """The schema as the running server introspects it."""
    return schemathesis.graphql.from_url(f"{server.base}/graphql", headers=server.headers, timeout=30)


def fuzz(
    server: Server, kind: str, strategy: st.SearchStrategy[schemathesis.Case[Any]], examples: int, **call: Any
) -> None:
    @given(case=strategy)
    @settings(max_examples=examples, **QUIET)
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(headers=server.headers, timeout=30, **call)
        check(server, kind, response.status_code, response.text)

    run()


def both_modes(operation: schemathesis.APIOperation[Any, Any, Any, Any]) -> st.SearchStrategy[schemathesis.Case[Any]]:
    """Valid arguments and invalid ones (wrong types, missing required ones, unknown enum values)."""
    return st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )


@pytest.mark.parametrize("label", OPERATIONS)
@SLOW
def test_graphql_operation(label: str, server: Server, graphql_api: schemathesis.BaseSchema) -> None:
    operation = graphql_api.find_operation_by_label(label)
    assert operation is not None, f"the server does not serve {label}"
    fuzz(server, "graphql", both_modes(operation), GRAPHQL_EXAMPLES)


# Declarations whose keys are valid, so that they are written, with odd values everywhere else: JSON of any shape
# and size of number, strings of any characters and lengths. Schemathesis rarely gets past the key check.
_KEYS = st.builds("pg://db/{}".format, st.from_regex(r"[a-z0-9_.]{1,12}", fullmatch=True))
_ANY_TEXT = st.text(max_size=40) | st.text(min_size=200, max_size=700)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | _ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_ANY_TEXT, children, max_size=4),
    max_leaves=10,
)
_UPSERT = "mutation($input: AssetInput!) { upsertAsset(input: $input) { key metadata owners tags schema { name } } }"
_RECORD = (
    "mutation($input: RecordExecutionInput!) { recordExecution(input: $input) {"
    " runId facets outputs { facets asset { key metadata } } } }"
)
_READ = (
    "query($key: String!) { asset(key: $key) { key metadata executions { nodes { facets execution { facets } } } } }"
)


def _asset_input(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {"key": draw(_KEYS)}
    for name, values in [
        ("metadata", _JSON),
        ("description", _ANY_TEXT),
        ("displayName", _ANY_TEXT),
        ("type", _ANY_TEXT),
        ("owners", st.lists(_ANY_TEXT, max_size=3)),
        ("tags", st.lists(_ANY_TEXT, max_size=3)),
        ("schema", st.lists(st.fixed_dictionaries({"name": _ANY_TEXT, "type": _ANY_TEXT}), max_size=3)),
    ]:
        if draw(st.booleans()):
            fields[name] = draw(values)
    return fields


_POLICY = "mutation($input: FreshnessPolicyInput!) { setFreshnessPolicy(input: $input) { name maxAgeSeconds } }"
_DURATIONS = st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,3})?[smhdw]?", fullmatch=True) | _ANY_TEXT
_CRONS = st.lists(st.integers(0, 59), min_size=1, max_size=60).map(
    lambda minutes: f"{','.join(map(str, minutes))} * * * *"
)


def _policy_input(draw: st.DrawFn) -> dict[str, Any]:
    policy: dict[str, Any] = {"name": draw(_ANY_TEXT), "selector": {"tag": draw(_ANY_TEXT)}}
    kind = draw(st.sampled_from(["maxAge", "cron", "auto"]))
    if kind == "maxAge":
        policy["maxAge"] = draw(_DURATIONS)
    elif kind == "cron":
        policy["cron"] = draw(_CRONS | _ANY_TEXT)
        policy["timezone"] = draw(st.sampled_from(["UTC", "Europe/Paris"]) | _ANY_TEXT)
    else:
        policy["auto"] = True
        policy["tolerance"] = draw(st.floats(min_value=-1, max_value=1e300))
        policy["minHistory"] = draw(st.integers(-5, 2**31 - 1))
    return policy


@st.composite
def declarations(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["asset", "execution", "policy"]))
    if kind == "asset":
        return _UPSERT, {"input": _asset_input(draw)}
    if kind == "policy":
        return _POLICY, {"input": _policy_input(draw)}
    output = {"key": draw(_KEYS), "facets": draw(_JSON), "metadata": draw(_JSON)}
    record = {
        "job": {"namespace": draw(_ANY_TEXT), "name": draw(_ANY_TEXT), "type": draw(st.none() | _ANY_TEXT)},
        "state": draw(st.sampled_from(["START", "COMPLETE", "FAIL"])),
        "facets": draw(_JSON),
        "errorMessage": draw(st.none() | _ANY_TEXT),
        "outputs": [output],
    }
    return _RECORD, {"input": record}


@SLOW
def test_declarations_with_odd_values(server: Server) -> None:
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as client:

        def send(query: str, variables: dict[str, Any]) -> dict[str, Any]:
            # The standard library writes what orjson would refuse: integers beyond 64 bits, NaN, Infinity.
            body = json.dumps({"query": query, "variables": variables})
            response = client.post("/graphql", content=body, headers={"content-type": "application/json"})
            check(server, "declarations", response.status_code, response.text)
            answer: dict[str, Any] = response.json()
            return answer

        @given(declaration=declarations())
        @settings(max_examples=DECLARATION_EXAMPLES, **QUIET)
        def declare(declaration: tuple[str, dict[str, Any]]) -> None:
            query, variables = declaration
            send(query, variables)
            if query is _POLICY:
                return
            # Whatever was stored reads back: a value stored but not readable would break every later query.
            key = variables["input"]["key"] if query is _UPSERT else variables["input"]["outputs"][0]["key"]
            send(_READ, {"key": key})

        declare()


# --- POST /api/v1/lineage --------------------------------------------------------------------------------------------

_FACETS = {"type": "object", "additionalProperties": True}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS},
}
_JOB = _DATASET
_COMMON = {
    "eventTime": {"type": "string", "format": "date-time"},
    "producer": {"type": "string", "format": "uri"},
    "schemaURL": {"type": "string", "format": "uri"},
}
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "run", "job"],
    "properties": {
        **_COMMON,
        "eventType": {"type": "string", "enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS},
        },
        "job": _JOB,
        "inputs": {"type": "array", "items": _DATASET, "maxItems": 5},
        "outputs": {"type": "array", "items": _DATASET, "maxItems": 5},
    },
}
DATASET_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "dataset"],
    "properties": {**_COMMON, "dataset": _DATASET},
}
JOB_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "job"],
    "properties": {**_COMMON, "job": _JOB, "inputs": {"type": "array", "items": _DATASET, "maxItems": 5}},
}
EVENT = {"oneOf": [RUN_EVENT, DATASET_EVENT, JOB_EVENT]}
_ANSWER = {"description": "the ingestion report, or why the body was refused"}
LINEAGE_API: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "asset-gateway OpenLineage endpoint", "version": "1"},
    "paths": {
        "/api/v1/lineage": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"oneOf": [EVENT, {"type": "array", "items": EVENT}]}}},
                },
                "responses": dict.fromkeys(("200", "201", "400", "413", "415"), _ANSWER),
            }
        }
    },
}


@SLOW
def test_lineage_endpoint(server: Server) -> None:
    operation = schemathesis.openapi.from_dict(LINEAGE_API)["/api/v1/lineage"]["POST"]
    fuzz(server, "lineage", both_modes(operation), LINEAGE_EXAMPLES, base_url=server.base)


# --- broken OpenLineage events ----------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30)
# Names of datasets and jobs: parts of asset keys, which hold no whitespace.
_NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,29}", fullmatch=True)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    def dataset() -> dict[str, Any]:
        return {"namespace": draw(st.sampled_from(["postgres://db:5432", "s3://bucket"])), "name": draw(_NAME)}

    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
    return {
        "eventType": draw(st.sampled_from(["START", "RUNNING", "COMPLETE", "FAIL", "ABORT"])),
        "eventTime": moment.isoformat(),
        "producer": "https://example.com/fuzzer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(draw(st.uuids())), "facets": {}},
        "job": {"namespace": draw(st.sampled_from(["airflow", "spark", "dbt"])), "name": draw(_NAME), "facets": {}},
        "inputs": [dataset() for _ in range(draw(st.integers(0, 2)))],
        "outputs": [dataset() for _ in range(draw(st.integers(1, 2)))],
    }


_NOT_TEXT: st.SearchStrategy[Any] = st.one_of(
    st.integers(), st.booleans(), st.lists(st.integers(), max_size=2), st.just({})
)
_NOT_OBJECT: st.SearchStrategy[Any] = st.one_of(
    st.integers(), _TEXT, st.lists(st.integers(), max_size=2), st.booleans()
)
_NOT_LIST: st.SearchStrategy[Any] = st.one_of(st.integers(), _TEXT, st.just({"namespace": "x", "name": "y"}))
_NOT_TIME: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["", "yesterday", "2026-13-45T00:00:00Z", "12:00", "2026-02-30T10:00:00Z", "NaN"]),
    st.from_regex(r"[a-z ]{1,20}", fullmatch=True),
    st.integers(),
)
_NOT_EVENT_TYPE = _TEXT.filter(lambda value: value not in {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"})


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        target: Any = event
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return apply


def _drop(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        target: Any = event
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return apply


@st.composite
def breakages(draw: st.DrawFn) -> Callable[[dict[str, Any]], None]:
    """One change that makes any valid event of `valid_events` invalid."""
    breakage: Callable[[dict[str, Any]], None] = draw(
        st.one_of(
            st.sampled_from(
                [
                    ("eventTime",),
                    ("producer",),
                    # Not ("run",): without it, the event is a valid JobEvent.
                    ("job",),
                    ("run", "runId"),
                    ("job", "name"),
                    ("job", "namespace"),
                    ("outputs", 0, "name"),
                    ("outputs", 0, "namespace"),
                ]
            ).map(_drop),
            st.sampled_from([("eventTime",), ("run", "runId"), ("job", "name"), ("outputs", 0, "name")]).map(
                lambda path: _set(path, None)
            ),
            st.builds(_set, st.just(("eventTime",)), _NOT_TIME),
            st.builds(_set, st.just(("eventType",)), _NOT_EVENT_TYPE),
            st.builds(_set, st.sampled_from([("run",), ("job",), ("outputs", 0), ("run", "facets")]), _NOT_OBJECT),
            st.builds(_set, st.sampled_from([("job", "name"), ("run", "runId"), ("producer",)]), _NOT_TEXT),
            st.builds(_set, st.sampled_from([("inputs",), ("outputs",)]), _NOT_LIST),
            st.builds(_set, st.sampled_from([("run", "runId"), ("job", "namespace"), ("job", "name")]), st.just("")),
            st.builds(_set, st.just(("run", "runId")), _TEXT.map(lambda value: value * 300)),
            st.builds(
                _set,
                st.sampled_from([("job", "name"), ("outputs", 0, "name"), ("run", "facets", "custom")]),
                _TEXT.map(lambda value: value + "\x00"),
            ),
        )
    )
    return breakage


@st.composite
def malformed_events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(valid_events())
    draw(breakages())(event)
    return event


async def _row_counts(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return {
                table.name: int((await connection.execute(select(func.count()).select_from(table))).scalar_one())
                for table in Base.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


@SLOW
def test_malformed_events_change_nothing(server: Server) -> None:
    before = asyncio.run(_row_counts(server.database_url))
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as client:

        @given(event=malformed_events(), batch=st.booleans())
        @settings(max_examples=MALFORMED_EXAMPLES, **QUIET)
        def post(event: dict[str, Any], batch: bool) -> None:
            # The standard library writes integers of any size, as some producers do.
            body = json.dumps([event, event] if batch else event)
            response = client.post("/api/v1/lineage", content=body, headers={"content-type": "application/json"})
            check(server, "malformed", response.status_code, response.text)
            assert response.status_code == 400, (event, response.text)
            answer = response.json()
            if batch:
                assert answer["error"] == "no event in the batch is valid"
                assert [rejection["index"] for rejection in answer["rejected"]] == [0, 1]
            else:
                assert answer["error"].startswith("invalid OpenLineage event: "), answer

        post()
    assert asyncio.run(_row_counts(server.database_url)) == before
    # Unbroken, the same events are stored: what made them invalid was the breakage.
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as client:

        @given(event=valid_events())
        @settings(max_examples=10, **QUIET)
        def post_valid(event: dict[str, Any]) -> None:
            response = client.post("/api/v1/lineage", json=event)
            assert response.status_code == 201, (event, response.text)

        post_valid()


def test_fuzzing_sent_enough(server: Server) -> None:
    # Runs after the fuzzing tests of the same dialect (module order): they must have reached the server.
    assert server.requests["graphql"] >= MIN_GRAPHQL_REQUESTS, server.requests
    assert server.requests["lineage"] >= MIN_LINEAGE_REQUESTS, server.requests
    assert server.requests["malformed"] >= MALFORMED_EXAMPLES, server.requests
    assert server.requests["declarations"] >= DECLARATION_EXAMPLES, server.requests
