"""Concurrent POSTs are written together by the process's group writer (gateway/ingest/writer.py), and each
request still gets the answer it would get alone: its own events accepted, duplicated or refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from gateway.database import Database
from gateway.ingest.service import prepare
from gateway.ingest.writer import GroupWriter, Outcome, PreparedEvent, Written
from tests.helpers import count_statements
from tests.ingest.support import (
    APPLES,
    DBT_RUN,
    STORE_REFUSES,
    clear_database,
    fill_templates,
    load_documents,
    refuse_in_the_store,
    snapshot,
)

LINEAGE = "/api/v1/lineage"
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


def corpus_events() -> list[dict[str, Any]]:
    """Real events: a dbt run on Postgres and Marquez's apples fixtures (templates filled)."""
    return fill_templates(load_documents(DBT_RUN) + load_documents(APPLES))


async def post_alone(client: httpx.AsyncClient, document: Any) -> httpx.Response:
    return await client.post(LINEAGE, content=orjson.dumps(document), headers=JSON)


async def test_concurrent_posts_share_transactions_and_each_gets_its_own_answer(
    client: httpx.AsyncClient, app: Starlette, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = corpus_events()
    assert len(events) >= 10
    refuse_in_the_store(monkeypatch)
    refused = orjson.loads(orjson.dumps(next(e for e in events if "run" in e and "job" in e)))
    refused["run"]["runId"] = "0190c2a0-0000-7000-8000-0000000000bb"
    refused["job"]["name"] = STORE_REFUSES
    invalid = {"eventType": "COMPLETE", "producer": "x"}  # no eventTime, run or job

    documents = [*events, events[0], refused, invalid]
    with count_statements(app.state.db) as counter:
        answers = await asyncio.gather(*(post_alone(client, document) for document in documents))

    statuses = [answer.status_code for answer in answers]
    assert statuses[: len(events)] == [201] * len(events)
    bodies = [answer.json() for answer in answers[: len(events) + 1]]
    # The event sent twice: one of the two requests stored it, the other found it stored.
    assert statuses[len(events)] == 201
    twice = [bodies[0], bodies[len(events)]]
    assert sorted((body["accepted"], body["duplicates"]) for body in twice) == [(0, 1), (1, 0)]
    assert all(body == {"accepted": 1, "duplicates": 0, "rejected": []} for body in bodies[1 : len(events)])
    assert statuses[len(events) + 1 :] == [400, 400]
    assert "the store refuses this one" in answers[len(events) + 1].json()["error"]

    # Fewer transactions than requests: every transaction stores its group's raw events in one statement.
    stores = [sql for sql in counter.statements if sql.lstrip().startswith("INSERT INTO lineage_events")]
    assert 1 <= len(stores) < len(events)

    # And the result is the one of the same events written one at a time, in order.
    together = await snapshot(db)
    await clear_database(db)
    for document in events:
        assert (await post_alone(client, document)).status_code == 201
    assert await snapshot(db) == together


async def test_a_batch_and_single_events_posted_at_once(client: httpx.AsyncClient, db: Database) -> None:
    events = corpus_events()
    batch, singles = events[: len(events) // 2], events[len(events) // 2 :]
    body = b"\n".join(orjson.dumps(event) for event in batch)
    answers = await asyncio.gather(
        client.post(LINEAGE, content=body, headers=NDJSON), *(post_alone(client, event) for event in singles)
    )
    assert answers[0].status_code == 201
    assert answers[0].json() == {"accepted": len(batch), "duplicates": 0, "rejected": []}
    assert [answer.json()["accepted"] for answer in answers[1:]] == [1] * len(singles)
    together = await snapshot(db)
    await clear_database(db)
    for document in events:
        assert (await post_alone(client, document)).status_code == 201
    assert await snapshot(db) == together


def stores(statements: list[str]) -> int:
    """Transactions that wrote events: each stores its group's raw events in one statement."""
    return sum(1 for sql in statements if sql.lstrip().startswith("INSERT INTO lineage_events"))


async def test_a_group_waits_for_as_many_requests_as_the_previous_one_answered(db: Database) -> None:
    events = [prepare(document) for document in corpus_events()[:10]]
    writer = GroupWriter(db, max_wait_seconds=1.0)

    async def later(delay: float, event: PreparedEvent) -> list[Outcome]:
        await asyncio.sleep(delay)
        return await writer.write([event])

    # Four clients at once: one group.
    with count_statements(db) as counter:
        first = await asyncio.gather(*(writer.write([event]) for event in events[:4]))
    assert first == [[Written.ACCEPTED]] * 4
    assert stores(counter.statements) == 1

    # The same four come back one after the other, further apart than a group takes to write: the group waits
    # for all four instead of writing the first one alone.
    with count_statements(db) as counter:
        second = await asyncio.gather(*(later(0.15 * n, event) for n, event in enumerate(events[4:8])))
    assert second == [[Written.ACCEPTED]] * 4
    assert stores(counter.statements) == 1

    # Only one comes back: it is written once the wait is over, and from then on nobody waits for a crowd.
    with count_statements(db) as counter:
        assert await asyncio.wait_for(writer.write([events[8]]), timeout=30) == [Written.ACCEPTED]
        assert await asyncio.gather(later(0, events[9]), later(0.3, events[8])) == [
            [Written.ACCEPTED],
            [Written.DUPLICATE],
        ]
    assert stores(counter.statements) == 3
    await writer.aclose()


async def test_a_group_waits_no_longer_than_its_limit(db: Database) -> None:
    events = [prepare(document) for document in corpus_events()[:5]]
    writer = GroupWriter(db, max_wait_seconds=0.0)
    await asyncio.gather(*(writer.write([event]) for event in events[:4]))

    async def later(delay: float, event: PreparedEvent) -> list[Outcome]:
        await asyncio.sleep(delay)
        return await writer.write([event])

    # No wait at all: the one that comes back first is written on its own.
    with count_statements(db) as counter:
        await asyncio.gather(later(0, events[4]), later(0.3, events[0]))
    assert stores(counter.statements) == 2
    await writer.aclose()
