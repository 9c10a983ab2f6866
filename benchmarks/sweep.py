"""Benchmark: the freshness monitor's stale-asset sweep over 100k and 1M assets on Postgres.

    .venv/bin/python -m benchmarks.sweep --assets 100000 --assets 1000000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench_sweep

For each size the database named in the URL is dropped, created (from the server's `postgres` database),
migrated with the gateway's own migrations, and bulk-loaded with set-based SQL (generate_series, a hash of
the row number for every "random" choice, so the same size always gives the same data). The load runs with
`session_replication_role = replica` (no trigger fires: neither foreign-key checks nor the change feed; the data
is consistent by construction) and ends with VACUUM ANALYZE and a CHECKPOINT, so that the timed sweeps do not
share the machine with the write-out of the load. Then the sweep runs the way production runs it, through
`FreshnessMonitor.run`:

* first: `asset_health` is empty, so every verdict is a change and every stale/failed asset opens an alert;
  the ingestion tables are analyzed (as autovacuum would have), the monitor's own ones are not (a new deployment);
* steady: nothing changed since (same `now`), repeated `--repeat` times, after a VACUUM ANALYZE of
  asset_health and alerts (what autovacuum does shortly after the first sweep wrote a row per asset);
* after change: ~1% of the assets got a new materialization and 5 minutes passed, repeated `--repeat` times
  (another 1% each time).

Reported per sweep: wall time, the process's peak RSS during the sweep (VmHWM, reset through
/proc/self/clear_refs before each sweep) and the time of every SQL statement, as the client saw it. Then, unless
`--no-explain`, one more steady and one more first sweep run with auto_explain (ANALYZE, BUFFERS) and their
plans are written beside the results. Figures go to benchmarks/results/sweep.json (under a `--label`, so that
runs before and after a change sit side by side) and to the generated section of BENCHMARKS.md.

These are figures, not a pass/fail test. The database is dropped afterwards unless `--keep`. `--markdown-only`
rewrites the BENCHMARKS.md section from the results file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gateway.database import Database
from gateway.migrate import migrate
from gateway.orm import AssetHealth, FreshnessPolicy
from gateway.settings import Settings
from gateway.store.freshness import sweep
from gateway.store.policies import PolicySpec, list_policies, upsert_policy
from monitors.deadlines import deadlines
from monitors.freshness import FreshnessMonitor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench_sweep"
MARK_BEGIN = "<!-- benchmarks.sweep: generated section, begin -->"
MARK_END = "<!-- benchmarks.sweep: generated section, end -->"
TARGET_SECONDS = 2.0
TARGET_RSS_MB = 200.0
TARGET_SIZE = 1_000_000

# A Monday afternoon: the cron policies (weekdays at 07:00 New York, daily at 06:00 Paris) ticked 2 h and 9 h ago.
NOW = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
CHANGE_STEP = timedelta(minutes=5)

DOMAINS = ["finance", "sales", "marketing", "product", "hr", "ops", "support", "growth", "risk", "logistics"]
DOMAINS += ["billing", "identity"]
TEAMS = ["data-platform", "analytics-eng", "finance-data", "growth-analytics", "ml-platform", "bi-team"]
TEAMS += ["revenue-ops", "core-data"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
# Tables in the warehouse are 0.30 (staging) + 0.25 * 0.7 (mart tables) = 47.5% of the assets; this share of
# them carries the `sla:learned` tag that the `auto` policy selects: 5% of all assets.
AUTO_SHARE_OF_TABLES = 0.05 / 0.475
CADENCES = [900, 3600, 4 * 3600, 86400]

WAREHOUSE = "postgres://warehouse:5432"
SELECTOR_POLICIES = [
    PolicySpec(
        "raw-files-daily", "cron", selector={"namespace_prefix": "s3://raw-"}, cron="0 6 * * *", timezone="Europe/Paris"
    ),
    PolicySpec("oltp-sources-1d", "max_age", selector={"namespace_prefix": "postgres://oltp-"}, max_age_seconds=86400),
    PolicySpec("staging-2h", "max_age", selector={"key_glob": f"{WAREHOUSE}/staging.*"}, max_age_seconds=7200),
    PolicySpec("marts-6h", "max_age", selector={"key_glob": f"{WAREHOUSE}/analytics.*"}, max_age_seconds=21600),
    PolicySpec(
        "finance-marts-3h",
        "max_age",
        severity="error",
        selector={"key_glob": f"{WAREHOUSE}/analytics.*", "tag": "finance"},
        max_age_seconds=10800,
    ),
    PolicySpec(
        "critical-warehouse-1h",
        "max_age",
        severity="error",
        selector={"namespace_prefix": "postgres://", "tag": "critical"},
        max_age_seconds=3600,
    ),
    PolicySpec(
        "ml-models-12h", "max_age", selector={"owner": "team:ml-platform", "type": "model"}, max_age_seconds=43200
    ),
    PolicySpec(
        "dashboards-weekdays", "cron", selector={"type": "dashboard"}, cron="0 7 * * 1-5", timezone="America/New_York"
    ),
    PolicySpec(
        "learned-cadence",
        "auto",
        selector={"namespace_prefix": WAREHOUSE, "type": "table", "tag": "sla:learned"},
        tolerance=1.0,
        min_history=5,
    ),
]
ASSET_POLICIES = 20


# Data set ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """Layer boundaries by asset id: sources, staging, marts, dashboards (30/30/25/15%)."""

    assets: int

    @property
    def s1(self) -> int:
        return round(self.assets * 0.30)

    @property
    def s2(self) -> int:
        return self.s1 + round(self.assets * 0.30)

    @property
    def s3(self) -> int:
        return self.s2 + round(self.assets * 0.25)

    @property
    def jobs(self) -> int:
        return (self.assets + 3) // 4

    def layer(self, column: str) -> str:
        return (
            f"CASE WHEN {column} <= {self.s1} THEN 'source' WHEN {column} <= {self.s2} THEN 'staging' "
            f"WHEN {column} <= {self.s3} THEN 'mart' ELSE 'dashboard' END"
        )


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{value}'" for value in values) + "]::text[]"


def _pick(values: list[str], u: str) -> str:
    return f"({_array(values)})[1 + floor({u} * {len(values)})::int]"


def load_statements(shape: Shape) -> list[tuple[str, str]]:
    """(step, SQL) in order. `bench_u(i, salt)` is a uniform number in [0, 1) that depends only on its arguments."""
    n, s1, s2, s3 = shape.assets, shape.s1, shape.s2, shape.s3
    staging, marts = s2 - s1, s3 - s2
    now = f"timestamptz '{NOW.isoformat()}'"
    # How far back a job's last materialization lies: age = scale * u^3, where scale is 1.2x the age at which
    # the usual policy of the layer calls it stale (about 6% stale): raw files (daily cron, ticked 9 h before
    # NOW), staging 2 h, marts 6 h, dashboards (weekday cron, ticked 2 h before NOW).
    scale = "CASE {layer} WHEN 'source' THEN 12 WHEN 'staging' THEN 2.4 WHEN 'mart' THEN 7.2 ELSE 2.4 END * 3600"
    tier = "CASE layer WHEN 'source' THEN 'bronze' WHEN 'staging' THEN 'silver' WHEN 'mart' THEN 'gold' ELSE 'bi' END"
    serial = "lpad(id::text, 7, '0')"
    return [
        (
            "helpers",
            """
            CREATE FUNCTION bench_u(i bigint, salt integer) RETURNS double precision
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT (hashint8(i * 1009 + salt) & 2147483647)::double precision / 2147483648.0 $$
            """,
        ),
        (
            "jobs (staging)",
            f"""
            CREATE UNLOGGED TABLE bench_jobs AS
            SELECT j AS job_id,
                   bench_u(j, 22) < 0.02 AS never,
                   CASE WHEN bench_u(j, 21) < 0.015 THEN 'FAIL' ELSE 'COMPLETE' END AS state,
                   {now} - make_interval(secs => {scale.format(layer=shape.layer("4 * (j - 1) + 1"))}
                                                 * power(bench_u(j, 20), 3)) AS mat_time
            FROM generate_series(1, {shape.jobs}) AS j
            """,
        ),
        (
            "assets (staging)",
            f"""
            CREATE UNLOGGED TABLE bench_src AS
            WITH base AS (
                SELECT i AS id, (i - 1) / 4 + 1 AS job_id, {shape.layer("i")} AS layer,
                       {_pick(DOMAINS, "bench_u(i, 1)")} AS domain, bench_u(i, 2) AS u_kind
                FROM generate_series(1, {n}) AS i
            ), typed AS (
                SELECT base.*,
                       CASE layer WHEN 'source' THEN CASE WHEN u_kind < 0.35 THEN 'file' ELSE 'table' END
                                  WHEN 'mart' THEN CASE WHEN u_kind < 0.3 THEN 'model' ELSE 'table' END
                                  WHEN 'staging' THEN 'table' ELSE 'dashboard' END AS type
                FROM base
            ), placed AS (
                SELECT typed.*,
                       CASE WHEN layer = 'source' AND type = 'file' THEN 's3://raw-' || domain
                            WHEN layer = 'source' THEN 'postgres://oltp-' || domain || ':5432'
                            WHEN layer = 'dashboard' THEN 'superset://bi.example.com'
                            ELSE '{WAREHOUSE}' END AS namespace,
                       CASE WHEN layer = 'source' AND type = 'file' THEN 'landing/events_' || {serial} || '.parquet'
                            WHEN layer = 'source' THEN 'public.' || domain || '_' || {serial}
                            WHEN layer = 'staging' THEN 'staging.' || domain || '_' || {serial}
                            WHEN layer = 'mart' THEN 'analytics.' || domain || '_' || type || '_' || {serial}
                            ELSE 'dashboard/' || domain || '_' || {serial} END AS name,
                       {tier} AS tier,
                       layer IN ('staging', 'mart') AND type = 'table'
                           AND bench_u(id, 6) < {AUTO_SHARE_OF_TABLES} AS auto
                FROM typed
            )
            SELECT placed.*, namespace || '/' || name AS key,
                   jsonb_build_array(domain, tier)
                     || CASE WHEN bench_u(id, 3) < 0.02 THEN '["critical"]'::jsonb ELSE '[]'::jsonb END
                     || CASE WHEN bench_u(id, 4) < 0.05 THEN '["pii"]'::jsonb ELSE '[]'::jsonb END
                     || CASE WHEN auto THEN '["sla:learned"]'::jsonb ELSE '[]'::jsonb END AS tags,
                   jsonb_build_array('team:' || {_pick(TEAMS, "bench_u(id, 5)")})
                     || CASE WHEN bench_u(id, 7) < 0.3
                             THEN jsonb_build_array({_pick(USERS, "bench_u(id, 10)")} || '@example.com')
                             ELSE '[]'::jsonb END AS owners,
                   bench_u(id, 8) < 0.005 AS deleted,
                   CASE layer
                       WHEN 'staging' THEN 1 + floor(bench_u(id, 11) * {s1})::bigint
                       WHEN 'mart' THEN CASE WHEN bench_u(id, 14) < 0.35 AND id > {s2} + 1
                                             THEN id - 1 - floor(bench_u(id, 11) * least(50, id - {s2} - 1))::bigint
                                             ELSE {s1} + 1 + floor(bench_u(id, 11) * {staging})::bigint END
                       WHEN 'dashboard' THEN {s2} + 1 + floor(bench_u(id, 11) * {marts})::bigint
                   END AS up1,
                   CASE WHEN bench_u(id, 12) >= 0.6 THEN NULL
                        WHEN layer = 'staging' THEN
                            CASE WHEN bench_u(id, 14) < 0.2 AND id > {s1} + 1
                                 THEN {s1} + 1 + floor(bench_u(id, 13) * (id - {s1} - 1))::bigint
                                 ELSE 1 + floor(bench_u(id, 13) * {s1})::bigint END
                        WHEN layer = 'mart' THEN {s1} + 1 + floor(bench_u(id, 13) * {staging})::bigint
                        WHEN layer = 'dashboard' THEN {s2} + 1 + floor(bench_u(id, 13) * {marts})::bigint
                   END AS up2,
                   CASE WHEN bench_u(id, 15) >= 0.3 THEN NULL
                        WHEN layer = 'staging' THEN 1 + floor(bench_u(id, 16) * {s1})::bigint
                        WHEN layer = 'mart' THEN {s1} + 1 + floor(bench_u(id, 16) * {staging})::bigint
                        WHEN layer = 'dashboard' THEN {s2} + 1 + floor(bench_u(id, 16) * {marts})::bigint
                   END AS up3
            FROM placed
            """,
        ),
        (
            "learned-cadence assets (staging)",
            f"""
            CREATE UNLOGGED TABLE bench_auto AS
            SELECT id, job_id, up1, cadence, history,
                   {now} - make_interval(secs => cadence * 2.2 * power(bench_u(id, 32), 2)) AS mat_time,
                   {shape.jobs} + sum(history) OVER (ORDER BY id) - history AS run_base
            FROM (
                SELECT id, job_id, up1,
                       (ARRAY{CADENCES})[1 + floor(bench_u(id, 30) * {len(CADENCES)})::int] AS cadence,
                       3 + floor(bench_u(id, 31) * 28)::int AS history
                FROM bench_src WHERE auto
            ) AS auto
            """,
        ),
        (
            "run history (staging)",
            """
            CREATE UNLOGGED TABLE bench_history AS
            SELECT a.run_base + k + 1 AS run_id, a.id AS asset_id, a.job_id, a.up1, k,
                   a.mat_time - make_interval(secs => k * a.cadence
                       + CASE WHEN k > 0 THEN (bench_u(a.id * 64 + k, 33) - 0.5) * 0.1 * a.cadence ELSE 0 END) AS t,
                   CASE WHEN k > 0 AND bench_u(a.id * 64 + k, 34) < 0.03 THEN 'FAIL' ELSE 'COMPLETE' END AS state
            FROM bench_auto AS a CROSS JOIN LATERAL generate_series(0, a.history - 1) AS k
            """,
        ),
        (
            "jobs",
            f"""
            INSERT INTO jobs (id, namespace, name, type, description, metadata, created_at, updated_at)
            SELECT job_id, 'airflow://bench', 'dag_' || (job_id / 20) || '.task_' || job_id, 'BATCH', NULL,
                   '{{}}'::jsonb, {now} - interval '200 days', {now} - interval '1 day'
            FROM bench_jobs
            """,
        ),
        (
            "runs",
            """
            INSERT INTO runs (id, run_id, job_id, parent_id, state, started_at, ended_at, first_event_time,
                              event_time, state_time, facets, facet_times, error_message, placeholder,
                              created_at, updated_at)
            SELECT job_id, 'latest-' || job_id, job_id, NULL::bigint, state, mat_time - interval '10 minutes', mat_time,
                   mat_time - interval '10 minutes', mat_time, mat_time, '{}'::jsonb, '{}'::jsonb,
                   CASE WHEN state = 'FAIL' THEN 'synthetic failure' END, false, mat_time, mat_time
            FROM bench_jobs WHERE NOT never
            UNION ALL
            SELECT run_id, 'hist-' || asset_id || '-' || k, job_id, NULL::bigint, state, t - interval '10 minutes', t,
                   t - interval '10 minutes', t, t, '{}'::jsonb, '{}'::jsonb,
                   CASE WHEN state = 'FAIL' THEN 'synthetic failure' END, false, t, t
            FROM bench_history
            """,
        ),
        (
            "assets",
            f"""
            INSERT INTO assets (id, key, namespace, name, type, display_name, description, owners, tags, metadata,
                                fields, created_at, updated_at, last_materialized_at, last_run_id, last_status,
                                deleted_at, described_at)
            SELECT s.id, s.key, s.namespace, s.name, s.type, NULL,
                   'Synthetic ' || s.layer || ' ' || s.type || ' of ' || s.domain,
                   s.owners, s.tags, jsonb_build_object('layer', s.layer), '[]'::jsonb,
                   {now} - interval '180 days' + bench_u(s.id, 9) * interval '90 days',
                   coalesce(a.mat_time, CASE WHEN NOT j.never THEN j.mat_time END,
                            {now} - interval '180 days' + bench_u(s.id, 9) * interval '90 days'),
                   coalesce(a.mat_time, CASE WHEN NOT j.never THEN j.mat_time END),
                   coalesce(a.run_base + 1, CASE WHEN NOT j.never THEN j.job_id END),
                   CASE WHEN a.id IS NOT NULL THEN 'COMPLETE' WHEN NOT j.never THEN j.state END,
                   CASE WHEN s.deleted THEN {now} - interval '3 days' END, NULL
            FROM bench_src AS s
            JOIN bench_jobs AS j ON j.job_id = s.job_id
            LEFT JOIN bench_auto AS a ON a.id = s.id
            """,
        ),
        (
            "run_assets",
            """
            INSERT INTO run_assets (run_id, asset_id, role, event_time, facets, facet_times)
            SELECT s.job_id, s.id, 'output', j.mat_time, '{}'::jsonb, '{}'::jsonb
            FROM bench_src AS s JOIN bench_jobs AS j ON j.job_id = s.job_id
            WHERE NOT s.auto AND NOT j.never
            UNION ALL
            SELECT run_id, asset_id, 'output', t, '{}'::jsonb, '{}'::jsonb FROM bench_history
            UNION ALL
            SELECT run_id, up1, 'input', t - interval '10 minutes', '{}'::jsonb, '{}'::jsonb FROM bench_history
            """,
        ),
        (
            "lineage_edges",
            f"""
            INSERT INTO lineage_edges (upstream_id, downstream_id, job_id, origin, first_seen_at, last_seen_at,
                                       retired_at, last_run_id)
            SELECT upstream, id, NULL, 'declared', {now} - interval '60 days', {now} - interval '1 day',
                   CASE WHEN bench_u(id * 4 + slot, 17) < 0.01 THEN {now} - interval '2 days' END, NULL
            FROM (
                SELECT e.upstream, s.id, min(e.slot) AS slot
                FROM bench_src AS s
                CROSS JOIN LATERAL (VALUES (s.up1, 1), (s.up2, 2), (s.up3, 3)) AS e (upstream, slot)
                WHERE e.upstream IS NOT NULL
                GROUP BY e.upstream, s.id
            ) AS edges
            """,
        ),
    ]


SEQUENCE_TABLES = ["jobs", "runs", "assets", "run_assets", "lineage_edges"]


async def _timed(steps: dict[str, float], name: str, work: Awaitable[Any]) -> Any:
    started = time.perf_counter()
    result = await work
    steps[name] = round(time.perf_counter() - started, 3)
    return result


async def load(url: str, shape: Shape) -> dict[str, Any]:
    """Bulk-load the data set; returns the time of each step and the row counts."""
    steps: dict[str, float] = {}
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            try:
                # Foreign keys are checked row by row by triggers; the data set is consistent by construction.
                await connection.execute(text("SET session_replication_role = replica"))
            except Exception:
                print("  (not a superuser: loading with foreign-key checks)", file=sys.stderr)
            for name, sql in load_statements(shape):
                await _timed(steps, name, connection.exec_driver_sql(sql))
                print(f"  load {name}: {steps[name]:.1f} s", file=sys.stderr)
            for table in SEQUENCE_TABLES:
                await connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
            await connection.exec_driver_sql("DROP TABLE bench_jobs, bench_src, bench_auto, bench_history")
            await connection.execute(text("SET session_replication_role = DEFAULT"))
            # As autovacuum would have by now for tables filled by ingestion. The monitor's own tables are left
            # as a new deployment has them: never analyzed.
            vacuum = "VACUUM (ANALYZE) " + ", ".join(SEQUENCE_TABLES)
            await _timed(steps, "vacuum analyze", connection.exec_driver_sql(vacuum))
            print(f"  load vacuum analyze: {steps['vacuum analyze']:.1f} s", file=sys.stderr)
            await _timed(steps, "checkpoint", checkpoint(connection))
            counts = {}
            for table in ["assets", "lineage_edges", "jobs", "runs", "run_assets"]:
                counts[table] = (await connection.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one()
            counts["deleted_assets"] = (
                await connection.exec_driver_sql("SELECT count(*) FROM assets WHERE deleted_at IS NOT NULL")
            ).scalar_one()
            counts["retired_edges"] = (
                await connection.exec_driver_sql("SELECT count(*) FROM lineage_edges WHERE retired_at IS NOT NULL")
            ).scalar_one()
            counts["database_mb"] = round(
                (await connection.exec_driver_sql("SELECT pg_database_size(current_database())")).scalar_one() / 2**20
            )
    finally:
        await engine.dispose()
    return {"steps": steps, "seconds": round(sum(steps.values()), 2), "rows": counts}


async def checkpoint(connection: AsyncConnection) -> None:
    """Write out what the load dirtied now, so that the checkpointer does not do it during the timed sweeps
    (the load writes gigabytes of WAL at 1M assets: several checkpoints' worth)."""
    try:
        await connection.exec_driver_sql("CHECKPOINT")
    except Exception:
        print("  (CHECKPOINT refused: not a superuser; timings may include checkpoint I/O)", file=sys.stderr)


async def vacuum_analyze(url: str, tables: list[str]) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("VACUUM (ANALYZE) " + ", ".join(tables))
            await checkpoint(connection)
    finally:
        await engine.dispose()


async def declare_policies(db: Database, shape: Shape) -> None:
    async with db.transaction() as session:
        for spec in SELECTOR_POLICIES:
            await upsert_policy(session, spec, NOW)
        # A few asset-level policies, spread over the id range: they beat every selector.
        step = shape.assets // ASSET_POLICIES
        ids = [1 + index * step + 3 for index in range(ASSET_POLICIES)]
        keys = dict(
            (await session.execute(text("SELECT id, key FROM assets WHERE id = ANY(:ids)"), {"ids": ids})).all()
        )
        for index, asset_id in enumerate(ids):
            kind = ("max_age", "cron", "auto")[index % 3]
            values: dict[str, Any] = {"max_age": {"max_age_seconds": 1800}, "cron": {"cron": "*/15 * * * *"}}.get(
                kind, {"min_history": 3}
            )
            await upsert_policy(session, PolicySpec(f"asset-{asset_id}", kind, asset_key=keys[asset_id], **values), NOW)


async def materialize_share(db: Database, now: datetime, salt: int) -> int:
    """About 1% of the live assets get a fresh successful materialization (a new run for learned-cadence ones)."""
    async with db.transaction() as session:
        changed = await session.execute(
            text(
                "UPDATE assets SET last_materialized_at = :t, last_status = 'COMPLETE', updated_at = :t "
                "WHERE deleted_at IS NULL AND bench_u(id, :salt) < 0.01 RETURNING id"
            ),
            {"t": now - timedelta(seconds=30), "salt": salt},
        )
        ids = [row[0] for row in changed]
        learned = (
            await session.execute(
                text("SELECT id, (id - 1) / 4 + 1 FROM assets WHERE id = ANY(:ids) AND tags @> '[\"sla:learned\"]'"),
                {"ids": ids},
            )
        ).all()
        for asset_id, job_id in learned:
            run = await session.execute(
                text(
                    "INSERT INTO runs (run_id, job_id, state, started_at, ended_at, first_event_time, event_time, "
                    "state_time, facets, facet_times, placeholder, created_at, updated_at) VALUES (:r, :j, "
                    "'COMPLETE', :t, :t, :t, :t, :t, '{}', '{}', false, :t, :t) RETURNING id"
                ),
                {"r": f"change-{salt}-{asset_id}", "j": job_id, "t": now - timedelta(seconds=30)},
            )
            await session.execute(
                text(
                    "INSERT INTO run_assets (run_id, asset_id, role, event_time, facets, facet_times) "
                    "VALUES (:run, :asset, 'output', :t, '{}', '{}')"
                ),
                {"run": run.scalar_one(), "asset": asset_id, "t": now - timedelta(seconds=30)},
            )
        return len(ids)


# Measurement ---------------------------------------------------------------------------------------------------------


@dataclass
class Statements:
    """The time of each SQL statement (a round trip, as the client sees it), while `active`."""

    active: bool = False
    seen: list[tuple[str, float, int]] = field(default_factory=list)

    def attach(self, db: Database) -> None:
        engine = db.engine.sync_engine

        @event.listens_for(engine, "before_cursor_execute")
        def before(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
            connection.info.setdefault("bench_started", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def after(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
            seconds = time.perf_counter() - connection.info["bench_started"].pop()
            if self.active:
                self.seen.append((" ".join(statement.split())[:110], seconds, int(getattr(cursor, "rowcount", -1))))


def _write(path: Path, content: str) -> None:
    path.write_text(content)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}  # type: ignore[no-any-return]


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _ru_maxrss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def statement_kind(sql: str) -> str:
    """`INSERT INTO sweep_risk`, `UPDATE alerts`, `WITH RECURSIVE risk`...: what a statement does, to what."""
    words = sql.replace("(", " ").split()
    if words[:2] in (["INSERT", "INTO"], ["DELETE", "FROM"], ["WITH", "RECURSIVE"]):
        return " ".join(words[:3])
    return " ".join(words[:2])


def by_kind(seen: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Statement time summed per kind, largest first."""
    kinds: dict[str, list[float]] = {}
    for sql, took in seen:
        kinds.setdefault(statement_kind(sql), []).append(took)
    ranked = sorted(kinds.items(), key=lambda item: -sum(item[1]))
    return [{"kind": kind, "count": len(times), "seconds": round(sum(times), 3)} for kind, times in ranked]


async def timed_sweep(monitor: FreshnessMonitor, statements: Statements, now: datetime, phase: str) -> dict[str, Any]:
    reset = _reset_peak_rss()
    statements.seen = []
    statements.active = True
    started = time.perf_counter()
    record = await monitor.run(now)
    seconds = time.perf_counter() - started
    statements.active = False
    if record.error:
        raise RuntimeError(f"the {phase} sweep failed: {record.error}")
    peak_kb = _status_kb("VmHWM") if reset else None
    ranked = sorted(statements.seen, key=lambda seen: -seen[1])
    result = {
        "phase": phase,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1) if peak_kb else _ru_maxrss_mb(),
        "peak_rss_source": "VmHWM since reset" if peak_kb else "ru_maxrss (process lifetime)",
        "assets_checked": record.assets_checked,
        "alerts_opened": record.alerts_opened,
        "alerts_resolved": record.alerts_resolved,
        "sql_seconds": round(sum(seen[1] for seen in statements.seen), 3),
        "statements": [
            {"sql": sql, "seconds": round(took, 4), "rows": rows} for sql, took, rows in ranked[:12] if took >= 0.0005
        ],
        "by_kind": by_kind([(sql, took) for sql, took, _rows in statements.seen]),
    }
    print(
        f"  {phase}: {seconds:.2f} s, peak RSS {result['peak_rss_mb']} MB, opened {record.alerts_opened}, "
        f"resolved {record.alerts_resolved}",
        file=sys.stderr,
    )
    return result


async def health_summary(db: Database) -> dict[str, Any]:
    async with db.session() as session:
        statuses = dict(
            (await session.execute(select(AssetHealth.status, func.count()).group_by(AssetHealth.status))).all()
        )
        governed = (
            await session.execute(
                select(FreshnessPolicy.name, FreshnessPolicy.kind, func.count())
                .join(AssetHealth, AssetHealth.policy_id == FreshnessPolicy.id)
                .group_by(FreshnessPolicy.name, FreshnessPolicy.kind)
                .order_by(FreshnessPolicy.name)
            )
        ).all()
        open_alerts = (
            await session.execute(text("SELECT count(*) FROM alerts WHERE resolved_at IS NULL"))
        ).scalar_one()
        learned = (
            await session.execute(text("SELECT count(*) FROM asset_health WHERE expected_interval_seconds IS NOT NULL"))
        ).scalar_one()
    by_kind: dict[str, int] = {}
    for _name, kind, count in governed:
        by_kind[kind] = by_kind.get(kind, 0) + count
    return {
        "statuses": dict(sorted(statuses.items())),
        "governed_by_kind": by_kind,
        "governed_by_policy": {name: count for name, _kind, count in governed},
        "with_learned_cadence": learned,
        "open_alerts": open_alerts,
    }


async def explain_sweep(db: Database, now: datetime, phase: str, destination: Path) -> list[dict[str, Any]]:
    """One sweep with auto_explain (ANALYZE, BUFFERS) sending every plan back as a NOTICE."""
    notices: list[str] = []
    async with db.transaction() as session:
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None

        def listen(_connection: Any, message: Any) -> None:
            notices.append(str(message.message))

        raw.add_log_listener(listen)
        try:
            for setting in [
                "LOAD 'auto_explain'",
                "SET LOCAL auto_explain.log_min_duration = 0",
                "SET LOCAL auto_explain.log_analyze = on",
                "SET LOCAL auto_explain.log_buffers = on",
                "SET LOCAL auto_explain.log_level = notice",
                "SET LOCAL client_min_messages = notice",
            ]:
                await session.execute(text(setting))
            policies = await list_policies(session)
            await sweep(session, policies, deadlines(policies, now), now)
            await session.execute(text("SET LOCAL auto_explain.log_min_duration = -1"))
        finally:
            raw.remove_log_listener(listen)
    plans = []
    for notice in notices:
        if not notice.startswith("duration:"):
            continue
        milliseconds = float(notice.split()[1])
        query = notice.split("Query Text:", 1)[-1].strip().splitlines()[0] if "Query Text:" in notice else ""
        plans.append({"ms": round(milliseconds, 1), "query": " ".join(query.split())[:110], "plan": notice})
    plans.sort(key=lambda plan: -plan["ms"])
    _write(destination, "\n\n".join(plan["plan"] for plan in plans) + "\n")
    return [{"ms": plan["ms"], "query": plan["query"]} for plan in plans[:8]]


# One size ------------------------------------------------------------------------------------------------------------


async def recreate_database(admin_url: str, name: str, drop_only: bool = False) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if not drop_only:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def server_facts(connection: AsyncConnection) -> dict[str, Any]:
    version = (await connection.execute(text("SHOW server_version"))).scalar_one()
    settings = {}
    for name in [
        "shared_buffers",
        "work_mem",
        "temp_buffers",
        "effective_cache_size",
        "max_parallel_workers_per_gather",
    ]:
        settings[name] = (await connection.execute(text(f"SHOW {name}"))).scalar_one()
    return {"version": version, "settings": settings}


async def bench_size(url: str, admin_url: str, assets: int, repeat: int, explain: bool, keep: bool) -> dict[str, Any]:
    name = make_url(url).database
    assert name
    shape = Shape(assets)
    print(f"{assets:,} assets: database {name}", file=sys.stderr)
    await recreate_database(admin_url, name)
    engine = create_async_engine(url)
    started = time.perf_counter()
    await migrate(engine)
    migrate_seconds = time.perf_counter() - started
    async with engine.connect() as connection:
        server = await server_facts(connection)
    await engine.dispose()

    loaded = await load(url, shape)
    db = Database(Settings(database_url=url, auto_migrate=False, data_dir=RESULTS))
    statements = Statements()
    statements.attach(db)
    try:
        await declare_policies(db, shape)
        monitor = FreshnessMonitor(db)
        sweeps = [await timed_sweep(monitor, statements, NOW, "first")]
        after_first = await health_summary(db)
        # The first sweep wrote a row per asset: autovacuum would analyze these tables shortly after.
        await vacuum_analyze(url, ["asset_health", "alerts"])
        for _ in range(repeat):
            sweeps.append(await timed_sweep(monitor, statements, NOW, "steady"))
        moment, changed = NOW, []
        for index in range(repeat):
            moment += CHANGE_STEP
            changed.append(await materialize_share(db, moment, 100 + index))
            sweeps.append(await timed_sweep(monitor, statements, moment, "after change"))
        explained: dict[str, Any] = {}
        if explain:
            for phase in ("steady", "first"):
                if phase == "first":
                    async with db.transaction() as session:
                        await session.execute(text("TRUNCATE asset_health, alert_deliveries, alerts"))
                destination = RESULTS / f"sweep-explain-{assets}-{phase}.txt"
                explained[phase] = await explain_sweep(db, moment, phase, destination)
                print(f"  plans of a {phase} sweep: {destination.relative_to(ROOT)}", file=sys.stderr)
    finally:
        await db.dispose()
        if not keep:
            await recreate_database(admin_url, name, drop_only=True)

    def figure(phase: str) -> dict[str, Any]:
        runs = [s for s in sweeps if s["phase"] == phase]
        return {
            "seconds": round(statistics.median(s["seconds"] for s in runs), 3),
            "all_seconds": [s["seconds"] for s in runs],
            "peak_rss_mb": max(s["peak_rss_mb"] for s in runs),
        }

    return {
        "assets": assets,
        "server": server,
        "migrate_seconds": round(migrate_seconds, 2),
        "load": loaded,
        "health_after_first_sweep": after_first,
        "changed_per_after_change_sweep": changed,
        "figures": {phase: figure(phase) for phase in ("first", "steady", "after change")},
        "process_peak_rss_mb": _ru_maxrss_mb(),
        "sweeps": sweeps,
        "explain": explained,
    }


# Reporting -----------------------------------------------------------------------------------------------------------


def _command(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in _command("lscpu").splitlines() if line.startswith("Model name")),
        platform.processor(),
    )
    memory = next((line.split()[1] for line in _command("free", "-h").splitlines() if line.startswith("Mem:")), "?")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _spread(figure: dict[str, Any]) -> str:
    """The median, and the range when there were repeats."""
    runs = figure["all_seconds"]
    if len(runs) < 2:
        return f"{figure['seconds']:.2f} s"
    return f"{figure['seconds']:.2f} s ({min(runs):.2f}-{max(runs):.2f})"


def _mb(value: float) -> str:
    return f"{value:.0f} MB"


def _verdict(seconds: float, rss: float) -> str:
    parts = []
    parts.append("time ✓" if seconds < TARGET_SECONDS else f"time ✗ ({seconds / TARGET_SECONDS:.1f}x the target)")
    parts.append("RSS ✓" if rss < TARGET_RSS_MB else f"RSS ✗ ({rss / TARGET_RSS_MB:.1f}x the target)")
    return ", ".join(parts)


def markdown(results: dict[str, Any]) -> str:
    labels = list(results["runs"])
    latest = results["runs"][labels[-1]]
    facts = results["machine"]
    any_size = next(iter(latest["sizes"].values()))
    server = any_size["server"]
    lines = [
        MARK_BEGIN,
        "",
        "## Freshness sweep (`benchmarks/sweep.py`)",
        "",
        f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory']} RAM; Python {facts['python']}; "
        f"PostgreSQL {server['version']} on the same machine ("
        + ", ".join(f"{key} {value}" for key, value in server["settings"].items())
        + ", server defaults).",
        "",
        "Reproduce (about 4 minutes for both sizes; drops and recreates the database named in the URL):",
        "",
        "    .venv/bin/python -m benchmarks.sweep --assets 100000 --assets 1000000 --label after \\",
        "        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench_sweep",
        "",
        "### Data set",
        "",
        "| | " + " | ".join(f"{int(size):,} assets" for size in latest["sizes"]) + " |",
        "|---|" + "---:|" * len(latest["sizes"]),
    ]
    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        (
            "lineage edges (retired)",
            lambda s: f"{s['load']['rows']['lineage_edges']:,} ({s['load']['rows']['retired_edges']:,})",
        ),
        ("runs / run_assets", lambda s: f"{s['load']['rows']['runs']:,} / {s['load']['rows']['run_assets']:,}"),
        ("soft-deleted assets", lambda s: f"{s['load']['rows']['deleted_assets']:,}"),
        (
            "governed: max_age / cron / auto",
            lambda s: " / ".join(
                f"{s['health_after_first_sweep']['governed_by_kind'].get(kind, 0):,}"
                for kind in ("max_age", "cron", "auto")
            ),
        ),
        ("auto with enough history", lambda s: f"{s['health_after_first_sweep']['with_learned_cadence']:,}"),
        (
            "after the first sweep",
            lambda s: ", ".join(
                f"{status} {count:,}" for status, count in s["health_after_first_sweep"]["statuses"].items()
            ),
        ),
        ("open alerts", lambda s: f"{s['health_after_first_sweep']['open_alerts']:,}"),
        ("database size", lambda s: f"{s['load']['rows']['database_mb']:,} MB"),
        ("load time (set-based SQL, VACUUM ANALYZE, CHECKPOINT)", lambda s: f"{s['load']['seconds']:.1f} s"),
    ]
    for title, value in rows:
        lines.append(f"| {title} | " + " | ".join(str(value(s)) for s in latest["sizes"].values()) + " |")
    lines += [
        "",
        "Policies: 8 selector policies (max_age and cron, on namespace prefixes, key globs, tags, owners and types),",
        f"one `auto` selector policy (the `sla:learned` tables, 3 to 30 runs of history each) and {ASSET_POLICIES}",
        "asset-level policies. `first`: empty `asset_health`, every verdict a change; `steady`: nothing changed",
        "(median of the repeats); `after change`: 1% of the assets freshly materialized, 5 minutes later.",
        "Peak RSS is the benchmark process's (VmHWM, reset before each sweep); the sweep runs in Postgres.",
        "",
        "### Figures",
        "",
        "| run | assets | first sweep | steady sweep | after 1% change | peak RSS | vs target (2 s, 200 MB at 1M) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label in labels:
        run = results["runs"][label]
        for size, data in run["sizes"].items():
            figures = data["figures"]
            rss = max(f["peak_rss_mb"] for f in figures.values())
            worst = max(figures["steady"]["seconds"], figures["after change"]["seconds"])
            verdict = f"steady/change: {_verdict(worst, rss)}; first: {_verdict(figures['first']['seconds'], rss)}"
            lines.append(
                f"| {label} | {int(size):,} | {figures['first']['seconds']:.2f} s"
                f" | {_spread(figures['steady'])} | {_spread(figures['after change'])} | {_mb(rss)} | "
                + (verdict if int(size) == TARGET_SIZE else "")
                + " |"
            )
    largest = max(latest["sizes"], key=int)
    lines += [
        "",
        f"Where the time goes: the median steady sweep at {int(largest):,} assets, statement time as the client",
        "saw it, summed per kind of statement (the rest of the wall time is the monitor's bookkeeping and commit):",
    ]
    for label in labels:
        data = results["runs"][label]["sizes"].get(largest)
        if data is None:
            continue
        median = data["figures"]["steady"]["seconds"]
        sweep_run = min((s for s in data["sweeps"] if s["phase"] == "steady"), key=lambda s: abs(s["seconds"] - median))
        kinds = sweep_run.get("by_kind") or by_kind([(st["sql"], st["seconds"]) for st in sweep_run["statements"]])
        lines += [
            "",
            f"* `{label}` ({sweep_run['seconds']:.2f} s, SQL {sweep_run['sql_seconds']:.2f} s): "
            + "; ".join(
                f"`{kind['kind']}`"
                + (f" ({kind['count']} statements)" if kind["count"] > 1 else "")
                + f" {kind['seconds']:.2f} s"
                for kind in kinds
                if kind["seconds"] >= 0.01
            ),
        ]
    lines += ["", MARK_END]
    return "\n".join(lines) + "\n"


HEADER = """# Benchmarks

Figures, not tests: nothing here runs in the test suite. Each section says how to reproduce it.

"""


def write_markdown(results: dict[str, Any], path: Path) -> None:
    section = markdown(results)
    current = path.read_text() if path.exists() else HEADER
    if MARK_BEGIN in current and MARK_END in current:
        before, rest = current.split(MARK_BEGIN, 1)
        after = rest.split(MARK_END, 1)[1].lstrip("\n")
        current = before + section + ("\n" + after if after else "")
    else:
        current = current.rstrip("\n") + "\n\n" + section
    path.write_text(current)


async def main_async(args: argparse.Namespace) -> None:
    url = make_url(args.database_url)
    if url.get_backend_name() != "postgresql" or not url.database:
        raise SystemExit("--database-url must be a postgresql+asyncpg:// URL naming the benchmark's own database")
    admin = url.set(database=args.admin_database).render_as_string(hide_password=False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = Path(args.output)
    results: dict[str, Any] = _read_json(output)
    results["machine"] = machine()
    # Sizes run separately under one label add up (e.g. `--assets 100000`, then `--assets 1000000`).
    run: dict[str, Any] = results["runs"].get(args.label, {"finished_at": None, "sizes": {}})
    for assets in sorted(set(args.assets or [100_000, 1_000_000])):
        run["sizes"][str(assets)] = await bench_size(
            url.render_as_string(hide_password=False), admin, assets, args.repeat, not args.no_explain, args.keep
        )
        run["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["runs"][args.label] = run
        _write(output, json.dumps(results, indent=2) + "\n")
    if not args.no_markdown:
        write_markdown(results, Path(args.markdown))
    print(f"results: {output}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, action="append", help="a data set size (repeatable)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="the benchmark's own database (recreated)")
    parser.add_argument("--admin-database", default="postgres", help="database to connect to for CREATE DATABASE")
    parser.add_argument("--repeat", type=int, default=3, help="steady and after-change sweeps per size")
    parser.add_argument("--label", default="current", help="name of this run in the results (e.g. before, after)")
    parser.add_argument("--output", default=str(RESULTS / "sweep.json"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-markdown", action="store_true")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite BENCHMARKS.md from the results")
    parser.add_argument("--no-explain", action="store_true", help="skip the auto_explain sweeps")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.markdown_only:
        write_markdown(_read_json(Path(args.output)), Path(args.markdown))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
