"""Reindex: every derived table rebuilt from the raw event log equals what ingestion built, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select

from gateway.database import Database
from gateway.ingest.replay import replay_all
from gateway.ingest.service import ingest_documents
from gateway.orm import LineageEvent
from gateway.settings import Settings
from tests.ingest.support import (
    APPLES,
    DBT_RUN,
    assert_same_state,
    clear_database,
    documents_by_file,
    fill_templates,
    gateway_environment,
    load_documents,
    raw_event_count,
    run_gateway_command,
    snapshot,
)

INGESTED_AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
REINDEXED_AT = datetime(2026, 11, 3, 8, 30, tzinfo=UTC)

SPARK_SCENARIOS = "ol-diff/examples/*/*/*.json"
CORPUS_MIX = (
    APPLES,
    "marquez/seed/metadata.json",
    "compatibility-tests/consumer/scenarios/airflow/events/*.json",
    "compatibility-tests/consumer/scenarios/CLL/events/*.json",
    "compatibility-tests/consumer/scenarios/simple_run_event/events/*.json",
)


def corpus_batches(*patterns: str, with_dbt: bool = True) -> list[list[dict[str, Any]]]:
    """One batch per corpus file (as a shipper posting each file would), plus the dbt run with filled ids."""
    batches = [documents for _, documents in documents_by_file(*patterns)]
    if with_dbt:
        batches.append(fill_templates(load_documents(DBT_RUN)))
    return batches


async def ingest(db: Database, batches: list[list[dict[str, Any]]]) -> int:
    accepted = 0
    for batch in batches:
        report = await ingest_documents(db, batch, INGESTED_AT)
        assert report.rejected == [], report.rejected
        accepted += report.accepted
    return accepted


async def raw_log(db: Database) -> list[tuple[Any, ...]]:
    async with db.session() as session:
        rows = await session.execute(
            select(LineageEvent.content_hash, LineageEvent.event_time, LineageEvent.received_at).order_by(
                LineageEvent.content_hash
            )
        )
        return [tuple(row) for row in rows]


async def test_replay_rebuilds_what_ingestion_built(db: Database) -> None:
    """Marquez, Airflow, Spark (with column lineage and symlinks), ol-diff and dbt events, file by file.

    ol-diff posts the application run 01931f88-4592 four times at one instant (prev/next captures, Spark 3.3.4
    and 3.3.8) with its SQL child runs in between: which facets win must not depend on that interleaving.
    """
    accepted = await ingest(db, corpus_batches(*CORPUS_MIX, SPARK_SCENARIOS))
    before = await snapshot(db)
    log = await raw_log(db)
    # Not vacuous: runs, edges, column lineage and symlink aliases all came out of the corpus.
    assert len(before["runs"]) > 40
    assert len(before["lineage_edges"]) > 20
    assert before["column_lineage"]
    assert before["asset_aliases"]
    assert len(log) == accepted

    replayed = await replay_all(db, REINDEXED_AT)

    assert replayed == accepted
    assert_same_state(before, await snapshot(db), "after replay_all")
    assert await raw_log(db) == log, "replay must leave the raw event log as it was"


async def test_replay_after_out_of_order_arrival_rebuilds_the_same_state(db: Database) -> None:
    """Events arrived newest file first and each file backwards; replay applies them in eventTime order."""
    batches = [list(reversed(batch)) for batch in reversed(corpus_batches(*CORPUS_MIX))]
    accepted = await ingest(db, batches)
    before = await snapshot(db)

    assert await replay_all(db, REINDEXED_AT) == accepted

    assert_same_state(before, await snapshot(db), "after replay_all of events that arrived out of order")


async def test_replay_derives_only_from_the_log(db: Database) -> None:
    """Events removed from the log leave no trace after a replay: the state equals ingesting the rest alone."""
    seed = corpus_batches("marquez/seed/metadata.json", with_dbt=False)
    await ingest(db, seed)
    expected = await snapshot(db)
    await clear_database(db)

    await ingest(db, [*seed, *corpus_batches(APPLES, with_dbt=False)])
    async with db.transaction() as session:
        await session.execute(delete(LineageEvent).where(LineageEvent.job_namespace == "grandmas.kitchen"))
    assert await replay_all(db, REINDEXED_AT) == await raw_event_count(db) == 26

    assert_same_state(expected, await snapshot(db), "after dropping the apples from the log and replaying")


async def _has_reindex_command(environment: dict[str, str]) -> bool:
    code, output = await run_gateway_command("--help", environment=environment)
    assert code == 0, output
    return any(line.split()[:1] == ["reindex"] for line in output.splitlines())


@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_reindex_command_rebuilds_what_ingestion_built(db: Database, settings: Settings) -> None:
    environment = gateway_environment(settings.data_dir, database_url=settings.resolved_database_url)
    if not await _has_reindex_command(environment):
        pytest.skip("`asset-gateway reindex` does not exist yet (not listed by `asset-gateway --help`)")
    await ingest(db, corpus_batches(*CORPUS_MIX, SPARK_SCENARIOS))
    before = await snapshot(db)
    count = await raw_event_count(db)

    code, output = await run_gateway_command("reindex", environment=environment)

    assert code == 0, output
    assert str(count) in output, output
    assert_same_state(before, await snapshot(db), "after `asset-gateway reindex`")
    assert await raw_event_count(db) == count
