"""POST /api/v1/lineage as producers use it: single events, JSON arrays, NDJSON, gzip, and every way to get it
wrong. Both dialects, through the ASGI app. The answer is 201, 200 (some rejected), 400, 413 or 415; never 500.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.app import create_app
from gateway.database import Database
from gateway.orm import LineageEvent, Run
from gateway.settings import Settings
from tests.ingest.support import (
    APPLES,
    DBT_RUN,
    STORE_REFUSES,
    count_rows,
    fill_templates,
    load_documents,
    raw_event_count,
    refuse_in_the_store,
    snapshot,
)

LINEAGE = "/api/v1/lineage"
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}
PRODUCER = "https://github.com/example/asset-gateway-tests"


def run_event(run_id: str = "0190c2a0-0000-7000-8000-000000000001", event_type: str = "COMPLETE") -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": "2026-03-01T10:00:00.000Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "tests", "name": "load_orders"},
        "inputs": [{"namespace": "postgres://db:5432", "name": "shop.orders"}],
        "outputs": [{"namespace": "postgres://db:5432", "name": "mart.orders_daily"}],
    }


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"child": value}
    return value


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def ndjson(documents: list[Any], newline: str = "\n") -> bytes:
    return newline.join(json.dumps(document) for document in documents).encode() + newline.encode()


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    answer = await client.post(LINEAGE, content=body, headers=headers or JSON)
    assert answer.status_code in (200, 201, 400, 413, 415), (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    return answer


async def run_ids(db: Database) -> set[str]:
    async with db.session() as session:
        return set((await session.scalars(select(Run.run_id))).all())


async def raw_log(db: Database) -> list[str]:
    async with db.session() as session:
        return sorted((await session.scalars(select(LineageEvent.content_hash))).all())


# --- what producers send -------------------------------------------------------------------------------------


async def test_single_event_is_accepted(client: httpx.AsyncClient, db: Database) -> None:
    answer = await post(client, encoded(run_event()))

    assert (answer.status_code, answer.json()) == (201, {"accepted": 1, "duplicates": 0, "rejected": []})
    assert await run_ids(db) == {"0190c2a0-0000-7000-8000-000000000001"}


async def test_json_array_batch_and_its_repetition(client: httpx.AsyncClient, db: Database) -> None:
    apples = load_documents(APPLES)

    first = await post(client, encoded(apples))
    again = await post(client, encoded(apples))

    assert (first.status_code, first.json()) == (201, {"accepted": 8, "duplicates": 0, "rejected": []})
    assert (again.status_code, again.json()) == (201, {"accepted": 0, "duplicates": 8, "rejected": []})
    assert len(await run_ids(db)) == 8
    assert await raw_event_count(db) == 8


@pytest.mark.parametrize(
    ("newline", "headers"),
    [
        ("\n", NDJSON),
        ("\r\n", {"content-type": "application/x-ndjson; charset=utf-8"}),
        ("\n\n", {"content-type": "application/jsonlines"}),
        # A producer that labels NDJSON as JSON (the OpenLineage file transport's output, posted as is).
        ("\n", JSON),
    ],
    ids=["lf", "crlf", "blank-lines", "labelled-json"],
)
async def test_ndjson_batch(client: httpx.AsyncClient, db: Database, newline: str, headers: dict[str, str]) -> None:
    dbt = fill_templates(load_documents(DBT_RUN))

    answer = await post(client, ndjson(dbt, newline), headers)

    assert (answer.status_code, answer.json()) == (201, {"accepted": 10, "duplicates": 0, "rejected": []})
    # Five dbt models and the dbt invocation that is their parent.
    assert len(await run_ids(db)) == 6


async def test_gzip_single_event(client: httpx.AsyncClient, db: Database) -> None:
    answer = await post(client, gzip.compress(encoded(run_event())), {**JSON, "content-encoding": "gzip"})

    assert (answer.status_code, answer.json()["accepted"]) == (201, 1)
    assert await raw_event_count(db) == 1


@pytest.mark.parametrize("form", ["json-array", "ndjson"])
async def test_gzip_batch(client: httpx.AsyncClient, db: Database, form: str) -> None:
    apples = load_documents(APPLES)
    body, headers = (encoded(apples), JSON) if form == "json-array" else (ndjson(apples), NDJSON)

    answer = await post(client, gzip.compress(body), {**headers, "content-encoding": "gzip"})

    assert (answer.status_code, answer.json()) == (201, {"accepted": 8, "duplicates": 0, "rejected": []})
    assert len(await run_ids(db)) == 8


async def test_gzip_body_of_several_members(client: httpx.AsyncClient, db: Database) -> None:
    """Concatenated gzip members are one gzip body (RFC 1952); a shipper appending chunks sends exactly that."""
    apples = load_documents(APPLES)
    body = b"".join(gzip.compress(ndjson([document])) for document in apples)

    answer = await post(client, body, {**NDJSON, "content-encoding": "gzip"})

    assert (answer.status_code, answer.json()["accepted"]) == (201, 8)
    assert await raw_event_count(db) == 8


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (gzip.compress(ndjson([run_event()]))[:-12], "truncated"),
        (b'{"eventType": "COMPLETE"}', "not valid gzip"),
    ],
    ids=["truncated", "not-gzip"],
)
async def test_broken_gzip_is_refused(client: httpx.AsyncClient, db: Database, body: bytes, problem: str) -> None:
    answer = await post(client, body, {**NDJSON, "content-encoding": "gzip"})

    assert answer.status_code == 400
    assert problem in answer.json()["error"]
    assert await raw_event_count(db) == 0


# --- batches with invalid events -----------------------------------------------------------------------------


async def test_batch_keeps_its_valid_events_and_names_the_invalid_ones(client: httpx.AsyncClient, db: Database) -> None:
    no_run_id = run_event("0190c2a0-0000-7000-8000-000000000002")
    del no_run_id["run"]["runId"]
    bad_time = {**run_event("0190c2a0-0000-7000-8000-000000000003"), "eventTime": "yesterday"}
    batch = [
        run_event("0190c2a0-0000-7000-8000-000000000001"),
        no_run_id,
        "not an event",
        bad_time,
        run_event("0190c2a0-0000-7000-8000-000000000004"),
    ]

    answer = await post(client, encoded(batch))

    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    rejected = {rejection["index"]: rejection["error"] for rejection in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3]
    assert "run.runId" in rejected[1]
    assert "required" in rejected[1]
    assert "JSON object" in rejected[2]
    assert "eventTime" in rejected[3]
    assert await run_ids(db) == {"0190c2a0-0000-7000-8000-000000000001", "0190c2a0-0000-7000-8000-000000000004"}
    assert await raw_event_count(db) == 2


async def test_batch_without_a_valid_event_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    answer = await post(client, encoded([{"eventType": "START"}, 42, {"run": {"runId": "r"}}]))

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]
    assert [rejection["index"] for rejection in body["rejected"]] == [0, 1, 2]
    assert await raw_event_count(db) == 0


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"job": {"namespace": "tests", "name": "j" * 600}}, "job"),
        ({"run": {"runId": "r", "facets": {"spark": {"plan": "a\u0000b"}}}}, "run.facets.spark.plan"),
        (
            {"outputs": [{"namespace": "n", "name": "o", "facets": {"datasetType": {"datasetType": "T" * 65}}}]},
            "outputs[0].facets.datasetType.datasetType",
        ),
        ({"inputs": [{"namespace": "n", "name": f"i{k}"} for k in range(2001)]}, "the limit is 2000"),
        ({"eventTime": "0001-01-01T00:00:00+01:00"}, "eventTime"),
        ({"run": {"runId": "r", "facets": {"deep": nested(300)}}}, "cannot be stored as JSON"),
        (
            {
                "outputs": [
                    {
                        "namespace": "n",
                        "name": "o",
                        "facets": {
                            "columnLineage": {
                                "fields": {
                                    "id": {"inputFields": [{"namespace": "n", "name": "raw orders", "field": "id"}]}
                                }
                            }
                        },
                    }
                ]
            },
            "outputs[0].facets.columnLineage.fields.id.inputFields[0]",
        ),
    ],
    ids=[
        "long-job-name",
        "nul",
        "long-dataset-type",
        "too-many-datasets",
        "time-before-year-1",
        "nested-300-deep",
        "column-lineage-key-with-space",
    ],
)
async def test_values_the_database_cannot_hold_are_rejected_alike_on_both_dialects(
    client: httpx.AsyncClient, db: Database, change: dict[str, Any], path: str
) -> None:
    bad = {**run_event("0190c2a0-0000-7000-8000-0000000000aa"), **change}

    alone = await post(client, encoded(bad))
    in_batch = await post(client, encoded([run_event(), bad]))

    assert alone.status_code == 400
    assert path in alone.json()["error"]
    assert in_batch.status_code == 200
    assert in_batch.json()["accepted"] == 1
    assert [rejection["index"] for rejection in in_batch.json()["rejected"]] == [1]
    assert await raw_event_count(db) == 1


async def test_event_the_store_refuses_is_rejected_alone(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the store refuse an event that passed validation, the rest of the batch is still stored."""
    refuse_in_the_store(monkeypatch)
    refused = run_event("0190c2a0-0000-7000-8000-0000000000bb")
    refused["job"]["name"] = STORE_REFUSES
    batch = [
        run_event("0190c2a0-0000-7000-8000-000000000001"),
        refused,
        run_event("0190c2a0-0000-7000-8000-000000000002"),
    ]

    answer = await post(client, encoded(batch))

    assert answer.status_code == 200
    assert answer.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [{"index": 1, "error": "the store refuses this one"}],
    }
    assert await run_ids(db) == {"0190c2a0-0000-7000-8000-000000000001", "0190c2a0-0000-7000-8000-000000000002"}
    assert await raw_event_count(db) == 2


# --- bodies that are no events at all ------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"  \n\t ", b"\n\n"], ids=["empty", "blank", "newlines"])
async def test_empty_body(client: httpx.AsyncClient, body: bytes) -> None:
    answer = await post(client, body)

    assert answer.status_code == 400
    assert "empty" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b'{"eventType": "START", "run": ', JSON, "body is not valid JSON"),
        (b"{'eventType': 'START'}", JSON, "body is not valid JSON"),
        (b'\xef\xbb\xbf{"eventType": "START"}', JSON, "body is not valid JSON"),
        (b'{"eventType": "START"}\n{"run": ', NDJSON, "line 2 is not valid JSON"),
    ],
    ids=["truncated", "single-quotes", "bom", "ndjson-line"],
)
async def test_malformed_json_says_what_is_wrong(
    client: httpx.AsyncClient, db: Database, body: bytes, headers: dict[str, str], expected: str
) -> None:
    answer = await post(client, body, headers)

    assert answer.status_code == 400
    assert answer.json()["error"].startswith(expected), answer.json()
    assert "line" in answer.json()["error"]
    assert "column" in answer.json()["error"]
    assert await raw_event_count(db) == 0


@pytest.mark.parametrize("value", [42, "COMPLETE", None, True, 1.5], ids=["int", "string", "null", "bool", "float"])
async def test_json_that_is_not_an_object(client: httpx.AsyncClient, value: Any) -> None:
    answer = await post(client, encoded(value))

    assert answer.status_code == 400
    assert "must be a JSON object" in answer.json()["error"]


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, br"])
async def test_unsupported_content_encoding(client: httpx.AsyncClient, encoding: str) -> None:
    answer = await post(client, encoded(run_event()), {**JSON, "content-encoding": encoding})

    assert answer.status_code == 415
    assert "not supported" in answer.json()["error"]


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with a 2 KiB body limit and batches of at most 3 events."""
    app = create_app(settings.model_copy(update={"max_body_bytes": 2048, "max_batch_events": 3}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        yield client
    await app.state.db.dispose()


async def test_body_over_the_limit(small_client: httpx.AsyncClient, db: Database) -> None:
    padded = {**run_event(), "run": {"runId": "r", "facets": {"padding": {"text": "x" * 3000}}}}

    plain = await post(small_client, encoded(padded))
    compressed = await post(small_client, gzip.compress(encoded(padded)), {**JSON, "content-encoding": "gzip"})
    within = await post(small_client, encoded(run_event()))

    assert plain.status_code == 413
    assert "2048" in plain.json()["error"]
    # Small on the wire, too large once inflated: a gzip bomb is refused as well.
    assert len(gzip.compress(encoded(padded))) < 2048
    assert compressed.status_code == 413
    assert within.status_code == 201
    assert await raw_event_count(db) == 1


async def test_batch_over_the_event_limit(small_client: httpx.AsyncClient, db: Database) -> None:
    runs = [run_event(f"0190c2a0-0000-7000-8000-00000000000{k}") for k in range(4)]

    answer = await post(small_client, ndjson(runs), NDJSON)

    assert answer.status_code == 413
    assert "at most 3 events" in answer.json()["error"]
    assert await raw_event_count(db) == 0


# --- a refused request changes nothing -----------------------------------------------------------------------


async def test_refused_requests_change_nothing(client: httpx.AsyncClient, db: Database) -> None:
    assert (await post(client, encoded(load_documents(APPLES)))).status_code == 201
    before, log = await snapshot(db), await raw_log(db)
    missing_producer = run_event("0190c2a0-0000-7000-8000-0000000000cc")
    del missing_producer["producer"]
    bad_facet = run_event("0190c2a0-0000-7000-8000-0000000000dd")
    bad_facet["run"]["facets"] = {"parent": {"run": {}, "job": {"namespace": "tests", "name": "dag"}}}
    long_key = run_event("0190c2a0-0000-7000-8000-0000000000ee")
    long_key["outputs"][0]["name"] = "t" * 600

    answers = [
        await post(client, encoded(missing_producer)),
        await post(client, encoded(bad_facet)),
        await post(client, encoded(long_key)),
        await post(client, encoded([missing_producer, bad_facet, long_key])),
        await post(client, b'{"eventType": '),
        await post(client, encoded(run_event()), {**JSON, "content-encoding": "br"}),
    ]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400, 400, 415]
    assert "producer" in answers[0].json()["error"]
    assert "run.facets.parent.run.runId" in answers[1].json()["error"]
    assert "512" in answers[2].json()["error"]
    assert await snapshot(db) == before
    assert await raw_log(db) == log


# --- never a 500 ---------------------------------------------------------------------------------------------

RICH_EVENT: dict[str, Any] = {
    "eventType": "COMPLETE",
    "eventTime": "2026-03-01T10:00:00.000Z",
    "producer": PRODUCER,
    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "run": {
        "runId": "0190c2a0-0000-7000-8000-0000000000f1",
        "facets": {
            "parent": {
                "run": {"runId": "0190c2a0-0000-7000-8000-0000000000f0"},
                "job": {"namespace": "tests", "name": "dag"},
                "root": {
                    "run": {"runId": "0190c2a0-0000-7000-8000-0000000000f0"},
                    "job": {"namespace": "tests", "name": "dag"},
                },
            },
            "nominalTime": {"nominalStartTime": "2026-03-01T10:00:00Z", "nominalEndTime": None},
            "errorMessage": {"message": "boom", "programmingLanguage": "python", "stackTrace": "..."},
        },
    },
    "job": {
        "namespace": "tests",
        "name": "dag.load",
        "facets": {
            "jobType": {"processingType": "BATCH", "integration": "AIRFLOW", "jobType": "TASK"},
            "documentation": {"description": "loads orders"},
            "ownership": {"owners": [{"name": "team:data", "type": "team"}]},
            "sql": {"query": "select 1"},
            "tags": {"tags": [{"key": "tier", "value": "gold", "source": "USER"}]},
        },
    },
    "inputs": [
        {
            "namespace": "s3://bucket",
            "name": "raw/orders",
            "facets": {
                "schema": {"fields": [{"name": "id", "type": "int", "fields": [{"name": "inner"}]}]},
                "symlinks": {"identifiers": [{"namespace": "hive://metastore", "name": "raw.orders", "type": "TABLE"}]},
            },
            "inputFacets": {"dataQualityMetrics": {"rowCount": 10, "columnMetrics": {"id": {"nullCount": 0}}}},
        }
    ],
    "outputs": [
        {
            "namespace": "postgres://db:5432",
            "name": "mart.orders",
            "facets": {
                "datasetType": {"datasetType": "TABLE"},
                "lifecycleStateChange": {"lifecycleStateChange": "OVERWRITE"},
                "columnLineage": {
                    "fields": {
                        "id": {
                            "inputFields": [
                                {
                                    "namespace": "s3://bucket",
                                    "name": "raw/orders",
                                    "field": "id",
                                    "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}],
                                }
                            ]
                        }
                    }
                },
            },
            "outputFacets": {"outputStatistics": {"rowCount": 10, "size": 100}},
        }
    ],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            found.extend(_paths(item, (*prefix, position)))
    return found


AWKWARD_STRINGS = [
    "",
    " ",
    "a b",
    "\u0000",
    "x" * 600,
    "2026-03-01T10:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "START",
    "\u202edesrever",
    "💥",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(AWKWARD_STRINGS),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """The rich event with one to three fields replaced by any JSON value, removed, or given a sibling."""
    event = json.loads(json.dumps(RICH_EVENT))
    event["run"]["runId"] = draw(st.uuids()).hex
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(event)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = event
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(st.one_of(st.sampled_from(AWKWARD_STRINGS), JSON_VALUES))
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(JSON_VALUES)
        else:
            parent.append(draw(JSON_VALUES))
    return event


BODIES = st.one_of(
    mutated_events().map(lambda event: (encoded(event), JSON)),
    st.lists(mutated_events(), min_size=1, max_size=3).map(lambda events: (ndjson(events), NDJSON)),
    st.tuples(st.binary(max_size=64), st.sampled_from([JSON, NDJSON, {**JSON, "content-encoding": "gzip"}])),
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=BODIES)
async def test_never_a_server_error(client: httpx.AsyncClient, request: tuple[bytes, dict[str, str]]) -> None:
    body, headers = request

    answer = await client.post(LINEAGE, content=body, headers=headers)

    assert answer.status_code in (200, 201, 400, 413, 415), (answer.status_code, answer.text, body[:500])
    payload = answer.json()
    if answer.status_code >= 400:
        assert isinstance(payload["error"], str)
        assert payload["error"]
    else:
        assert set(payload) == {"accepted", "duplicates", "rejected"}


async def test_database_holds_what_was_accepted(client: httpx.AsyncClient, db: Database) -> None:
    """The counts in the answers add up to the rows: accepted events are stored, duplicates are not."""
    apples = load_documents(APPLES)
    answers = [await post(client, encoded(apples[:5])), await post(client, encoded(apples[3:]))]

    assert [answer.json()["accepted"] for answer in answers] == [5, 3]
    assert [answer.json()["duplicates"] for answer in answers] == [0, 2]
    assert await count_rows(db, LineageEvent) == 8
