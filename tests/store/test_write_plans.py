"""How ingestion's writes are planned: each run's stored datasets probed by index, and ingest transactions allowed
the cached plans that foreign-key checks want.

The run upsert is caught on its way to the driver while a batch of real dbt events is written a second time
(each run then has datasets stored), and explained by the database itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database
from gateway.ingest import writer
from gateway.ingest.service import prepare
from gateway.ingest.writer import PreparedEvent, Written, write_events
from tests.helpers import caught_statements
from tests.ingest.support import DBT_RUN, fill_templates, load_documents

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def dbt_events(runs: int) -> list[PreparedEvent]:
    """The dbt run's COMPLETE events, each as many times as it takes to make `runs` runs of their own."""
    completes = [document for document in fill_templates(load_documents(DBT_RUN)) if document["eventType"] != "START"]
    assert completes
    assert all(document["outputs"] for document in completes)
    documents = []
    for number in range(runs):
        document = {**completes[number % len(completes)]}
        document["run"] = {**document["run"], "runId": str(uuid.UUID(int=number + 1))}
        documents.append(document)
    return [prepare(document) for document in documents]


def _is_run_upsert(statement: str) -> bool:
    return statement.lstrip().startswith("INSERT INTO runs") and "EXISTS" in statement


async def _explain(db: Database, statement: str, parameters: Any) -> list[str]:
    async with db.engine.connect() as connection:
        if db.engine.dialect.name == "postgresql":
            result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            return [str(row[0]) for row in result]
        if isinstance(parameters, list):
            parameters = parameters[0]
        result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return [str(row[-1]) for row in result]


async def test_a_batch_of_runs_probes_each_runs_datasets_by_index(db: Database, dialect: str) -> None:
    events = dbt_events(300)
    assert await write_events(db, events, NOW) == [Written.ACCEPTED] * len(events)
    again = [prepare({**prepared.raw.payload, "eventTime": "2026-11-01T00:00:00Z"}) for prepared in events]
    with caught_statements(db.engine, _is_run_upsert) as caught:
        assert await write_events(db, again, NOW) == [Written.ACCEPTED] * len(again)
    assert caught, "no run upsert reported the runs' datasets"
    plan = "\n".join(await _explain(db, *caught[0]))
    if dialect == "postgresql":
        # A hashed subplan reads every row of run_assets once, whatever the number of runs in the batch.
        assert "hashed SubPlan" not in plan, plan
        assert "Seq Scan on run_assets" not in plan, plan
    else:
        assert "SCAN dataset" not in plan.replace("SCAN dataset USING", ""), plan
        assert "dataset USING" in plan, plan


async def _plan_cache_mode(session: AsyncSession) -> str | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    return str((await session.execute(text("SHOW plan_cache_mode"))).scalar_one())


async def test_ingest_transactions_reuse_cached_plans_and_nothing_else_does(
    db: Database, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    apply_prepared = writer.apply_prepared

    async def observed(session: AsyncSession, *arguments: Any, **keywords: Any) -> list[bool]:
        seen.append(await _plan_cache_mode(session))
        return await apply_prepared(session, *arguments, **keywords)

    monkeypatch.setattr(writer, "apply_prepared", observed)
    events = dbt_events(3)
    assert await write_events(db, events, NOW) == [Written.ACCEPTED] * 3
    async with db.transaction() as session:
        after = await _plan_cache_mode(session)
    async with db.session() as session:
        reading = await _plan_cache_mode(session)
    if dialect == "postgresql":
        assert seen == ["auto"]
        # SET LOCAL ends with the transaction: the pooled connection plans for each statement's values again.
        assert after == reading == "force_custom_plan"
    else:
        assert seen == [None]
        assert after is None
        assert reading is None
