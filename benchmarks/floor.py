"""The raw SQL floor of the harness's GraphQL figures: the statements the gateway issues, timed straight.

For each figure of benchmarks/harness.py, the SQL statements the gateway sends for that answer (as its store and
DataLoaders emit them: see `GATEWAY_DATABASE_ECHO=true`), in the same order, with the values the previous ones
returned, over one connection of the database driver: asyncpg on Postgres, the standard library's sqlite3 on
SQLite. No pool checkout, no BEGIN/ROLLBACK around each loader's session, no ORM, no GraphQL, no HTTP: what is left
is the database's own work plus one round trip per statement, the floor below which no layer above could go.

* catalog: one page of assets with their health (LIMIT first + 1, keyset order by key, id; health joined).
* detail: the asset by key; its audit log (20 + 1 rows, each with its run and job); its health row; its live
  edges downstream and upstream (joined to the assets, not deleted); the upstream and downstream assets.
* materializations: the asset by key; 100 + 1 output entries of its audit log, each with its run.
* lineage: the asset by key; one statement per level of the upstream walk (the frontier's live edges, node
  budget 2,000); the assets of the nodes.

    .venv/bin/python -m benchmarks.floor --dialect postgresql \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench --key <asset key>

(the harness runs it on its own database after the GraphQL figures; alone, it needs a loaded database, e.g. one
the harness kept with `--keep`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from benchmarks.report import percentiles

PAGE = 100
DETAIL_EXECUTIONS = 20
MATERIALIZATIONS = 100
LINEAGE_MAX_NODES = 2000
FRONTIER_CHUNK = 5000

ASSET_COLUMNS = (
    "assets.id, assets.key, assets.namespace, assets.name, assets.type, assets.display_name, assets.description, "
    "assets.owners, assets.tags, assets.metadata, assets.fields, assets.created_at, assets.updated_at, "
    "assets.last_materialized_at, assets.last_run_id, assets.last_status, assets.deleted_at, assets.described_at, "
    "assets.type_described_at, assets.description_described_at, assets.owners_described_at, "
    "assets.tags_described_at, assets.fields_described_at"
)
HEALTH_COLUMNS = (
    "asset_health.asset_id, asset_health.status, asset_health.policy_id, "
    "asset_health.expected_interval_seconds, asset_health.cause_asset_id, asset_health.since"
)
# Without facet_times: the gateway defers it (ingestion's bookkeeping, never in an answer).
RUN_ASSET_COLUMNS = (
    "run_assets.id, run_assets.run_id, run_assets.asset_id, run_assets.role, run_assets.event_time, run_assets.facets"
)
RUN_COLUMNS = (
    "runs.id, runs.run_id, runs.job_id, runs.parent_id, runs.state, runs.started_at, runs.ended_at, "
    "runs.first_event_time, runs.event_time, runs.state_time, runs.facets, runs.error_message, "
    "runs.placeholder, runs.created_at, runs.updated_at"
)
JOB_COLUMNS = (
    "jobs.id, jobs.namespace, jobs.name, jobs.type, jobs.description, jobs.metadata, jobs.type_described_at, "
    "jobs.description_described_at, jobs.created_at, jobs.updated_at"
)
EDGE_COLUMNS = (
    "lineage_edges.upstream_id, lineage_edges.downstream_id, lineage_edges.job_id, lineage_edges.origin, "
    "lineage_edges.first_seen_at, lineage_edges.last_seen_at, lineage_edges.retired_at"
)


@dataclass(frozen=True)
class Targets:
    """What the figures ask for: the same arguments the harness's GraphQL operations take."""

    namespace_prefix: str
    tag: str
    search: str
    detail_keys: list[str]
    materializations_key: str
    lineage_key: str
    lineage_depths: tuple[int, ...] = (5, 20)
    # The root of a wide tree, walked five levels downstream (benchmarks/harness.py declares it).
    wide_lineage_key: str | None = None


class Driver(Protocol):
    dialect: str

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]: ...

    def param(self, number: int, sql_type: str) -> str: ...

    async def close(self) -> None: ...


class PostgresDriver:
    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str) -> PostgresDriver:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(await asyncpg.connect(dsn))

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = await self.connection.fetch(sql, *args)
        return rows

    def param(self, number: int, sql_type: str) -> str:
        return f"${number}::{sql_type}"

    async def close(self) -> None:
        await self.connection.close()


class SqliteDriver:
    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    @classmethod
    def connect(cls, url: str) -> SqliteDriver:
        path = make_url(url).database
        assert path, "a SQLite URL names a file"
        return cls(sqlite3.connect(path))

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        return self.connection.execute(sql, args).fetchall()

    def param(self, number: int, sql_type: str) -> str:
        return "?"

    async def close(self) -> None:
        self.connection.close()


def _in(driver: Driver, start: int, count: int, sql_type: str = "BIGINT") -> str:
    """An expanded IN list of `count` parameters from number `start`, as SQLAlchemy renders one."""
    return ", ".join(driver.param(start + offset, sql_type) for offset in range(count))


async def _by_ids(driver: Driver, columns: str, table: str, ids: Sequence[int]) -> list[Sequence[Any]]:
    """Rows by id as the gateway's loaders read them (gateway.store.sql.one_of): one array on Postgres."""
    if not ids:
        return []
    column = "asset_id" if table == "asset_health" else "id"
    if driver.dialect == "postgresql":
        return await driver.fetch(
            f"SELECT {columns} \nFROM {table} \nWHERE {table}.{column} = ANY ($1::BIGINT[])", sorted(set(ids))
        )
    wanted = sorted(set(ids))
    return await driver.fetch(
        f"SELECT {columns} \nFROM {table} \nWHERE {table}.{column} IN ({_in(driver, 1, len(wanted))})", *wanted
    )


def _limit(driver: Driver, number: int, limit: int) -> tuple[str, list[int]]:
    """SQLAlchemy's LIMIT: a parameter on Postgres; LIMIT and OFFSET parameters on SQLite."""
    if driver.dialect == "postgresql":
        return f"LIMIT {driver.param(number, 'INTEGER')}", [limit]
    return "LIMIT ? OFFSET ?", [limit, 0]


def _prefix_upper_bound(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


# The statements, one function per figure -------------------------------------------------------------------------


async def asset_by_key(driver: Driver, key: str) -> Sequence[Any]:
    rows = await driver.fetch(
        f"SELECT assets.key AS lookup, {ASSET_COLUMNS} \nFROM assets \n"
        f"WHERE assets.deleted_at IS NULL AND assets.key IN ({driver.param(1, 'VARCHAR')})",
        key,
    )
    if not rows:
        raise LookupError(f"no asset {key!r}")
    return rows[0]


async def health(driver: Driver, asset_ids: Sequence[int]) -> list[Sequence[Any]]:
    return await _by_ids(driver, HEALTH_COLUMNS, "asset_health", asset_ids)


async def assets_by_ids(driver: Driver, asset_ids: Sequence[int]) -> list[Sequence[Any]]:
    return await _by_ids(driver, ASSET_COLUMNS, "assets", asset_ids)


async def neighbour_edges(driver: Driver, frontier: Sequence[int], downstream: bool) -> list[Sequence[Any]]:
    near, far = ("upstream_id", "downstream_id") if downstream else ("downstream_id", "upstream_id")
    rows: list[Sequence[Any]] = []
    for start in range(0, len(frontier), FRONTIER_CHUNK):
        chunk = frontier[start : start + FRONTIER_CHUNK]
        # As gateway.store.sql.one_of: one array parameter on Postgres, an expanded IN list on SQLite.
        postgres = driver.dialect == "postgresql"
        wanted = "= ANY ($1::BIGINT[])" if postgres else f"IN ({_in(driver, 1, len(chunk))})"
        rows += await driver.fetch(
            f"SELECT {EDGE_COLUMNS} \nFROM lineage_edges JOIN assets ON assets.id = lineage_edges.{far} \n"
            f"WHERE lineage_edges.{near} {wanted} AND assets.deleted_at IS NULL "
            f"AND lineage_edges.retired_at IS NULL "
            f"ORDER BY lineage_edges.{near}, lineage_edges.{far}, lineage_edges.id",
            *([chunk] if postgres else chunk),
        )
    return rows


async def audit_log(
    driver: Driver, asset_id: int, role: str | None, first: int, with_jobs: bool = False
) -> list[Sequence[Any]]:
    """An asset's audit log with each entry's run (and job) joined, as the page that shows them reads it."""
    args: list[Any] = [asset_id]
    where = f"run_assets.asset_id = {driver.param(1, 'BIGINT')}"
    if role is not None:
        where += f" AND run_assets.role = {driver.param(2, 'VARCHAR')}"
        args.append(role)
    limit, limit_args = _limit(driver, len(args) + 1, first + 1)
    columns = f"{RUN_ASSET_COLUMNS}, {RUN_COLUMNS}" + (f", {JOB_COLUMNS}" if with_jobs else "")
    joins = "run_assets JOIN runs ON runs.id = run_assets.run_id" + (
        " JOIN jobs ON jobs.id = runs.job_id" if with_jobs else ""
    )
    return await driver.fetch(
        f"SELECT {columns} \nFROM {joins} \nWHERE {where} "
        f"ORDER BY run_assets.event_time DESC, run_assets.id DESC \n {limit}",
        *args,
        *limit_args,
    )


def _contains_tag(driver: Driver, number: int) -> str:
    if driver.dialect == "postgresql":
        return f"assets.tags @> {driver.param(number, 'JSONB')}"
    return "(EXISTS (SELECT ? AS anon_1 \nFROM json_each(assets.tags) AS element \nWHERE element.value = ?))"


def _icontains(driver: Driver, column: str, number: int) -> str:
    parameter = driver.param(number, "VARCHAR")
    if driver.dialect == "postgresql":
        return f"({column} ILIKE '%' || {parameter} || '%' ESCAPE '/')"
    return f"(lower({column}) LIKE '%' || lower({parameter}) || '%' ESCAPE '/')"


async def catalog(driver: Driver, namespace_prefix: str | None, tag: str | None, search: str | None) -> int:
    """One page of the catalog with each asset's health (the `status` field); the page's size."""
    conditions = ["assets.deleted_at IS NULL"]
    args: list[Any] = []
    if namespace_prefix:
        conditions.append(
            f"assets.namespace >= {driver.param(len(args) + 1, 'VARCHAR')} "
            f"AND assets.namespace < {driver.param(len(args) + 2, 'VARCHAR')}"
        )
        args += [namespace_prefix, _prefix_upper_bound(namespace_prefix)]
    if tag:
        conditions.append(_contains_tag(driver, len(args) + 1))
        args += [orjson.dumps([tag]).decode()] if driver.dialect == "postgresql" else [1, tag]
    if search:
        columns = ("assets.key", "assets.name", "assets.display_name", "assets.description")
        matches = [_icontains(driver, column, len(args) + 1 + offset) for offset, column in enumerate(columns)]
        conditions.append("(" + " OR ".join(matches) + ")")
        args += [search.replace("/", "//").replace("%", "/%").replace("_", "/_")] * len(columns)
    limit, limit_args = _limit(driver, len(args) + 1, PAGE + 1)
    rows = await driver.fetch(
        f"SELECT {ASSET_COLUMNS}, asset_health.status \n"
        f"FROM assets LEFT OUTER JOIN asset_health ON asset_health.asset_id = assets.id \n"
        f"WHERE {' AND '.join(conditions)} ORDER BY assets.key ASC, assets.id ASC \n {limit}",
        *args,
        *limit_args,
    )
    return len(rows[:PAGE])


async def detail(driver: Driver, key: str) -> int:
    asset = await asset_by_key(driver, key)
    asset_id = asset[1]
    entries = (await audit_log(driver, asset_id, None, DETAIL_EXECUTIONS, with_jobs=True))[:DETAIL_EXECUTIONS]
    await health(driver, [asset_id])
    downstream = await neighbour_edges(driver, [asset_id], downstream=True)
    upstream = await neighbour_edges(driver, [asset_id], downstream=False)
    await assets_by_ids(driver, [edge[0] for edge in upstream] + [edge[1] for edge in downstream])
    return len(entries)


async def materializations(driver: Driver, key: str) -> int:
    asset = await asset_by_key(driver, key)
    return len((await audit_log(driver, asset[1], "output", MATERIALIZATIONS))[:MATERIALIZATIONS])


async def lineage(driver: Driver, key: str, depth: int, downstream: bool = False) -> int:
    """The walk one way as gateway.store.lineage does it: one statement per level; the node count."""
    asset = await asset_by_key(driver, key)
    root = asset[1]
    depths = {root: 0}
    visited = {root}
    frontier = [root]
    for level in range(1, depth + 1):
        if not frontier:
            break
        rows_by_near: dict[int, list[Sequence[Any]]] = {}
        near_column, far_column = (0, 1) if downstream else (1, 0)
        for row in await neighbour_edges(driver, sorted(set(frontier)), downstream=downstream):
            rows_by_near.setdefault(row[near_column], []).append(row)
        next_frontier: list[int] = []
        for near in sorted(frontier):
            for row in rows_by_near.get(near, ()):
                far = row[far_column]
                if far not in depths:
                    if len(depths) >= LINEAGE_MAX_NODES:
                        continue
                    depths[far] = level if downstream else -level
                if far not in visited:
                    visited.add(far)
                    next_frontier.append(far)
        frontier = next_frontier
    await assets_by_ids(driver, sorted(depths, key=lambda node: (abs(depths[node]), depths[node], node)))
    return len(depths)


# Timing ----------------------------------------------------------------------------------------------------------


async def _time(
    calls: Sequence[Callable[[], Awaitable[int]]], requests: int, warmup: int, max_seconds: float
) -> dict[str, Any]:
    for index in range(warmup):
        await calls[index % len(calls)]()
    latencies: list[float] = []
    rows = 0
    deadline = time.perf_counter() + max_seconds
    for index in range(max(requests, 2)):
        if index >= 2 and time.perf_counter() > deadline:
            break
        began = time.perf_counter()
        rows = await calls[index % len(calls)]()
        latencies.append((time.perf_counter() - began) * 1000)
    return {"requests": len(latencies), "rows": rows, **percentiles(latencies, digits=3)}


async def connect(dialect: str, url: str) -> Driver:
    if dialect == "postgresql":
        return await PostgresDriver.connect(url)
    return SqliteDriver.connect(url)


async def measure(
    dialect: str, url: str, targets: Targets, requests: int = 200, warmup: int = 20, max_seconds: float = 30.0
) -> dict[str, Any]:
    """Every figure's floor: p50/p95/p99 of the statements' wall time at concurrency 1."""
    driver = await connect(dialect, url)
    try:
        figures: dict[str, Any] = {}

        async def run(name: str, calls: Sequence[Callable[[], Awaitable[int]]]) -> None:
            figures[name] = await _time(calls, requests, warmup, max_seconds)
            print(f"  floor {name}: p50 {figures[name]['p50_ms']} ms", file=sys.stderr)

        await run("catalog", [partial(catalog, driver, None, None, None)])
        await run("catalog_filtered", [partial(catalog, driver, targets.namespace_prefix, targets.tag, None)])
        await run("catalog_search", [partial(catalog, driver, None, None, targets.search)])
        await run("detail", [partial(detail, driver, key) for key in targets.detail_keys])
        await run("materializations", [partial(materializations, driver, targets.materializations_key)])
        for depth in targets.lineage_depths:
            await run(f"lineage{depth}", [partial(lineage, driver, targets.lineage_key, depth)])
        if targets.wide_lineage_key is not None:
            await run("lineage_wide", [partial(lineage, driver, targets.wide_lineage_key, 5, downstream=True)])
        return figures
    finally:
        await driver.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.floor",
        description="Time the SQL statements behind the harness's GraphQL figures straight through the driver, "
        "on a database the harness loaded (kept with --keep).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--database-url", required=True, help="the loaded database (SQLAlchemy URL)")
    parser.add_argument("--key", required=True, help="the asset of the detail, materializations and lineage figures")
    parser.add_argument("--namespace-prefix", default="warehouse")
    parser.add_argument("--tag", default="domain:finance")
    parser.add_argument("--search", default="finance")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    targets = Targets(args.namespace_prefix, args.tag, args.search, [args.key], args.key, args.key)
    figures = asyncio.run(
        measure(args.dialect, args.database_url, targets, args.requests, args.warmup, args.max_seconds)
    )
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
