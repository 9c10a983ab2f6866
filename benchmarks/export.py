"""Benchmark: shipper export throughput over 100k assets, on SQLite and Postgres.

    .venv/bin/python -m benchmarks.export --assets 100000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench_export

For each dialect a fresh database (a new SQLite file; the Postgres database named in the URL, dropped and created
from the server's `postgres` database) is migrated with the gateway's own migrations and bulk-loaded with
set-based SQL: the assets (owners, tags, metadata, 8 schema fields each), a job per 4 assets with its latest run
(outputs and inputs), and the lineage edges of those runs (~1.3 per asset beyond the sources). The change feed's
triggers stay on, so the load leaves a change per row in the feed. Then, for each shipper, through ShipperRunner
as the gateway runs it (batches of `--batch-size`):

* full: `run(full=True)`, everything as it is now, paged by entity;
* incremental: `run()` of a new shipper from the start of the feed, i.e. every change the load made.

Shippers: `file` (NDJSON), `openlineage` over its `http` transport to a tiny receiver on loopback (a separate
process that answers 201 to every POST and keeps nothing), and `datahub` with its file sink when acryl-datahub is
installed. Reported: wall time, assets/s (assets of the data set / wall time: each export also carries the jobs,
runs and edges), records/s, the process's peak RSS during the export (VmHWM, reset through /proc/self/clear_refs
before each one) and the output size. Figures go to benchmarks/results/export.json and to this script's section
of BENCHMARKS.md (appended; later runs replace only that section). `--profile` adds a cProfile of the file
exports. The Postgres database and the SQLite file are dropped afterwards unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks.report import write_section
from gateway.database import Database
from gateway.migrate import migrate
from gateway.settings import Settings
from shippers.base import ShipperSpec, create_shipper, shipper_kinds
from shippers.runner import ShipperRunner

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench_export"
MARK_BEGIN = "<!-- benchmarks.export: generated section, begin -->"
MARK_END = "<!-- benchmarks.export: generated section, end -->"
TARGET_FILE_ASSETS_PER_SECOND = 5_000
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
RECEIVER_LIFETIME_SECONDS = 3_600
DOMAINS = ["finance", "sales", "marketing", "product", "hr", "ops", "support", "growth", "risk", "logistics"]
TEAMS = ["data-platform", "analytics-eng", "finance-data", "growth-analytics", "ml-platform", "bi-team"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
FIELD_TYPES = ["bigint", "varchar(200)", "numeric(12,2)", "timestamp with time zone", "boolean", "date", "text", "uuid"]


# --- the receiver: a separate process, HTTP/1.1 keep-alive, 201 to every POST ----------------------------------


class _Receiver(asyncio.Protocol):
    stats = {"requests": 0, "bytes": 0}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if head.startswith("GET /stats"):
                body = json.dumps(self.stats).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                continue
            self.stats["requests"] += 1
            self.stats["bytes"] += length
            self.transport.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")


async def _serve_receiver() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Receiver, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)  # the parent went away: stop
    await asyncio.wait_for(stdin_closed, RECEIVER_LIFETIME_SECONDS)
    server.close()


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.export", "--receiver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def receiver_stats(url: str) -> dict[str, int]:
    import httpx

    stats: dict[str, int] = httpx.get(f"{url}/stats", timeout=10).json()
    return stats


# --- the data set --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    assets: int

    @property
    def sources(self) -> int:
        return round(self.assets * 0.3)

    @property
    def jobs(self) -> int:
        return (self.assets + 3) // 4


def _case(expression: str, values: list[str]) -> str:
    """A portable pick: CASE expression % len WHEN 0 THEN 'values[0]' ... END."""
    arms = " ".join(f"WHEN {index} THEN '{value}'" for index, value in enumerate(values))
    return f"(CASE ({expression}) % {len(values)} {arms} END)"


def _fields_json(variant: int) -> str:
    fields = [
        {
            "name": f"col_{position}_{variant}" if position else "id",
            "type": FIELD_TYPES[(position + variant) % len(FIELD_TYPES)],
            "description": f"Column {position} of variant {variant}",
        }
        for position in range(8)
    ]
    return json.dumps(fields, separators=(",", ":"))


class Dialect:
    def __init__(self, name: str) -> None:
        self.name = name

    def series(self, count: int) -> str:
        if self.name == "postgresql":
            return f"s(i) AS (SELECT generate_series(1::bigint, {count}))"
        return f"RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count})"

    def json(self, expression: str) -> str:
        return f"CAST({expression} AS jsonb)" if self.name == "postgresql" else expression

    def time(self, seconds_before_now: str) -> str:
        if self.name == "postgresql":
            return f"(timestamptz '{NOW.isoformat()}' - make_interval(secs => {seconds_before_now}))"
        moment = NOW.strftime("%Y-%m-%d %H:%M:%S")
        return f"(strftime('%Y-%m-%d %H:%M:%S', '{moment}', '-' || ({seconds_before_now}) || ' seconds') || '.000000')"


def load_statements(shape: Shape, dialect: Dialect) -> list[tuple[str, str]]:
    """(step, SQL). Asset i belongs to job (i - 1) / 4 + 1; assets past the sources read one or two earlier ones."""
    n, sources = shape.assets, shape.sources
    job = "((i - 1) / 4 + 1)"
    up1 = "(1 + (i * 7919) % (i - 1))"
    up2 = "(1 + (i * 104729) % (i - 1))"
    t = dialect.time
    js = dialect.json
    fields = "(CASE i % 4 " + " ".join(f"WHEN {v} THEN '{_fields_json(v)}'" for v in range(4)) + " END)"
    namespace = (
        f"(CASE WHEN i <= {sources} AND i % 3 = 0 THEN 's3://raw-' || {_case('i / 7', DOMAINS)} "
        f"WHEN i <= {sources} THEN 'postgres://oltp-' || {_case('i / 7', DOMAINS)} || ':5432' "
        "WHEN i % 2 = 0 THEN 'snowflake://acme-xy123' ELSE 'postgres://warehouse:5432' END)"
    )
    name = (
        f"(CASE WHEN i <= {sources} AND i % 3 = 0 THEN 'landing/events_' || CAST(i AS TEXT) || '.parquet' "
        f"WHEN i <= {sources} THEN 'public.' || {_case('i / 7', DOMAINS)} || '_' || CAST(i AS TEXT) "
        f"ELSE 'analytics.' || {_case('i / 7', DOMAINS)} || '_' || CAST(i AS TEXT) END)"
    )
    owners = (
        f"'[\"team:' || {_case('i / 3', TEAMS)} || '\"'"
        f" || CASE WHEN i % 3 = 0 THEN ',\"' || {_case('i / 5', USERS)} || '@example.com\"' ELSE '' END || ']'"
    )
    tags = (
        f"'[\"' || {_case('i / 7', DOMAINS)} || '\",\"tier:' || {_case('i', ['bronze', 'silver', 'gold'])} || '\"'"
        " || CASE WHEN i % 20 = 0 THEN ',\"pii\"' ELSE '' END || ']'"
    )
    metadata = (
        f"'{{\"layer\":\"' || CASE WHEN i <= {sources} THEN 'source' ELSE 'mart' END || "
        f'\'","domain":"\' || {_case("i / 7", DOMAINS)} || \'","cost_center":"cc-\' || CAST(i % 97 AS TEXT) || \'"}}\''
    )
    edge_pairs = (
        f"SELECT {up1} AS up, i AS down FROM s WHERE i > {sources} "
        f"UNION SELECT {up2} AS up, i AS down FROM s WHERE i > {sources} AND i % 3 = 0"
    )
    return [
        (
            "jobs",
            f"WITH {dialect.series(shape.jobs)} "
            "INSERT INTO jobs (id, namespace, name, type, description, metadata, created_at, updated_at) "
            "SELECT i, 'airflow://bench', 'dag_' || CAST(i / 20 AS TEXT) || '.task_' || CAST(i AS TEXT), 'BATCH', "
            f"'Builds four tables', {js(chr(39) + '{}' + chr(39))}, {t('86400 * 30')}, {t('86400')} FROM s",
        ),
        (
            "runs",
            f"WITH {dialect.series(shape.jobs)} "
            "INSERT INTO runs (id, run_id, job_id, parent_id, state, started_at, ended_at, first_event_time, "
            "event_time, state_time, facets, facet_times, error_message, placeholder, created_at, updated_at) "
            f"SELECT i, 'run-' || CAST(i AS TEXT), i, NULL, 'COMPLETE', {t('i % 3600 + 600')}, {t('i % 3600')}, "
            f"{t('i % 3600 + 600')}, {t('i % 3600')}, {t('i % 3600')}, {js(chr(39) + '{}' + chr(39))}, "
            f"{js(chr(39) + '{}' + chr(39))}, NULL, false, {t('i % 3600')}, {t('i % 3600')} FROM s",
        ),
        (
            "assets",
            f"WITH {dialect.series(n)} "
            "INSERT INTO assets (id, key, namespace, name, type, display_name, description, owners, tags, metadata, "
            "fields, created_at, updated_at, last_materialized_at, last_run_id, last_status, deleted_at, "
            "described_at) "
            f"SELECT i, {namespace} || '/' || {name}, {namespace}, {name}, "
            f"CASE WHEN i <= {sources} AND i % 3 = 0 THEN 'file' ELSE 'table' END, NULL, "
            f"'Synthetic asset ' || CAST(i AS TEXT) || ' of the ' || {_case('i / 7', DOMAINS)} || ' domain', "
            f"{js(owners)}, {js(tags)}, {js(metadata)}, {js(fields)}, {t('86400 * 60')}, {t('i % 3600')}, "
            f"{t('i % 3600')}, {job}, 'COMPLETE', NULL, {t('i % 3600')} FROM s",
        ),
        (
            "run_assets",
            f"WITH {dialect.series(n)}, pairs AS ({edge_pairs}) "
            "INSERT INTO run_assets (run_id, asset_id, role, event_time, facets, facet_times) "
            f"SELECT {job}, i, 'output', {t('i % 3600')}, {js(chr(39) + '{}' + chr(39))}, "
            f"{js(chr(39) + '{}' + chr(39))} FROM s "
            f"UNION SELECT DISTINCT (down - 1) / 4 + 1, up, 'input', {t('((down - 1) / 4 + 1) % 3600 + 600')}, "
            f"{js(chr(39) + '{}' + chr(39))}, {js(chr(39) + '{}' + chr(39))} FROM pairs",
        ),
        (
            "lineage_edges",
            f"WITH {dialect.series(n)}, pairs AS ({edge_pairs}) "
            "INSERT INTO lineage_edges (upstream_id, downstream_id, job_id, origin, first_seen_at, last_seen_at, "
            "retired_at, last_run_id) "
            f"SELECT up, down, (down - 1) / 4 + 1, 'run', {t('86400 * 30')}, {t('down % 3600')}, NULL, "
            "(down - 1) / 4 + 1 FROM pairs",
        ),
    ]


async def create_database(url: str) -> None:
    target = make_url(url)
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        await admin.dispose()


async def drop_database(url: str) -> None:
    target = make_url(url)
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def load(engine: AsyncEngine, shape: Shape, dialect: Dialect) -> dict[str, Any]:
    steps: dict[str, float] = {}
    async with engine.begin() as connection:
        for step, sql in load_statements(shape, dialect):
            started = time.perf_counter()
            await connection.exec_driver_sql(sql)
            steps[step] = round(time.perf_counter() - started, 2)
            print(f"  load {step}: {steps[step]:.1f} s", file=sys.stderr)
        if dialect.name == "postgresql":
            for table in ("jobs", "runs", "assets"):
                await connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    started = time.perf_counter()
    async with engine.connect() as connection:
        if dialect.name == "postgresql":
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql("VACUUM (ANALYZE)")
        else:
            await connection.exec_driver_sql("ANALYZE")
            await connection.commit()
    steps["analyze"] = round(time.perf_counter() - started, 2)
    counts: dict[str, int] = {}
    async with engine.connect() as connection:
        for table in ("assets", "jobs", "runs", "run_assets", "lineage_edges", "changes"):
            counts[table] = (await connection.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one()
    return {"steps": steps, "seconds": round(sum(steps.values()), 2), "rows": counts}


# --- measuring -----------------------------------------------------------------------------------------------------


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(reset: bool) -> float:
    if reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def settle(db: Database) -> float:
    """Postgres hands out changes older than every running transaction, cluster-wide: wait for those to end."""
    if db.dialect != "postgresql":
        return 0.0
    started = time.perf_counter()
    query = "SELECT coalesce(max(txid), 0) < pg_snapshot_xmin(pg_current_snapshot())::text::bigint FROM changes"
    while time.perf_counter() - started < 600:
        async with db.session() as session:
            if (await session.execute(text(query))).scalar_one():
                break
        await asyncio.sleep(0.5)
    return round(time.perf_counter() - started, 1)


def shipper_config(kind: str, out: Path, name: str, receiver_url: str) -> dict[str, Any]:
    if kind == "file":
        return {"path": str(out / f"{name}.ndjson")}
    if kind == "datahub":
        return {"sink": "file", "path": str(out / f"{name}.json")}
    return {"transport": {"type": "http", "url": receiver_url}}


def _size_mb_and_remove(path: Path) -> float:
    size = path.stat().st_size
    path.unlink()
    return round(size / 2**20, 1)


async def export(
    db: Database, kind: str, full: bool, out: Path, receiver_url: str, batch_size: int, profile: bool, assets: int
) -> dict[str, Any]:
    name = f"bench-{kind}-{'full' if full else 'incremental'}"
    config = shipper_config(kind, out, name, receiver_url)
    spec = ShipperSpec(name=name, kind=kind, config=config, batch_size=batch_size)
    runner = ShipperRunner(db, spec, create_shipper(spec))
    waited = 0.0 if full else await settle(db)
    before = receiver_stats(receiver_url) if kind == "openlineage" else None
    profiler = cProfile.Profile() if profile else None
    # A full export ships the assets first: the moment the count passes theirs ends the asset pages.
    shipped = [0]
    asset_pages: list[float] = []

    def progress(count: int) -> None:
        shipped[0] += count
        if not asset_pages and shipped[0] >= assets:
            asset_pages.append(time.perf_counter() - started)

    reset = _reset_peak_rss()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    report = await runner.run(full=full, progress=progress)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    peak = _peak_rss_mb(reset)
    await runner.aclose()
    if report.error:
        raise RuntimeError(f"{name}: {report.error}")
    result: dict[str, Any] = {
        "shipper": kind,
        "mode": "full" if full else "incremental",
        "seconds": round(seconds, 2),
        "records": report.shipped,
        "batches": report.batches,
        "peak_rss_mb": peak,
        "waited_for_feed_s": waited,
    }
    if full and asset_pages:
        result["asset_pages_s"] = round(asset_pages[0], 2)
    if kind == "openlineage":
        assert before is not None
        after = receiver_stats(receiver_url)
        result["requests"] = after["requests"] - before["requests"]
        result["output_mb"] = round((after["bytes"] - before["bytes"]) / 2**20, 1)
    else:
        result["output_mb"] = _size_mb_and_remove(Path(config["path"]))
    if profiler:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
        stream.write("\n")
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
        (RESULTS / f"export-profile-{db.dialect}-{name}.txt").write_text(stream.getvalue())
    return result


async def bench_dialect(
    dialect: str, args: argparse.Namespace, shape: Shape, kinds: list[str], url: str
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-export-{dialect}-"))
    out = workdir / "out"
    out.mkdir()
    if dialect == "postgresql":
        database_url = url
        await create_database(url)
    else:
        database_url = f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
    engine = create_async_engine(database_url)
    db = None
    try:
        await migrate(engine)
        print(f"{dialect}: loading {shape.assets:,} assets", file=sys.stderr)
        loaded = await load(engine, shape, Dialect(dialect))
        await engine.dispose()
        db = Database(Settings(data_dir=workdir, database_url=database_url, auto_migrate=False))
        runs = []
        with receiver() as receiver_url:
            for kind in kinds:
                for full in (True, False):
                    profile = args.profile and kind == "file"
                    result = await export(db, kind, full, out, receiver_url, args.batch_size, profile, shape.assets)
                    result["assets_per_s"] = round(shape.assets / result["seconds"])
                    result["records_per_s"] = round(result["records"] / result["seconds"])
                    if "asset_pages_s" in result:
                        result["asset_pages_assets_per_s"] = round(shape.assets / result["asset_pages_s"])
                    print(
                        f"  {kind:<11} {result['mode']:<11} {result['seconds']:>7.1f} s "
                        f"{result['assets_per_s']:>7,} assets/s {result['records_per_s']:>7,} records/s "
                        f"peak RSS {result['peak_rss_mb']} MB",
                        file=sys.stderr,
                    )
                    runs.append(result)
        server = None
        if dialect == "postgresql":
            async with db.session() as session:
                server = (await session.execute(text("SHOW server_version"))).scalar_one()
        return {"dialect": dialect, "server": server, "load": loaded, "exports": runs}
    finally:
        if db is not None:
            await db.dispose()
        await engine.dispose()
        if args.keep:
            print(f"kept {database_url}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            if dialect == "postgresql":
                await drop_database(url)


def machine() -> dict[str, Any]:
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "python": platform.python_version()}


# --- the report ----------------------------------------------------------------------------------------------------

LABELS = {
    "file": "file (NDJSON)",
    "openlineage": "openlineage, http to loopback",
    "datahub": "datahub, file sink",
}


def markdown(results: dict[str, Any]) -> str:
    shape = results["assets"]
    lines = [
        MARK_BEGIN,
        "",
        "## Shipper export throughput (`benchmarks/export.py`)",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, {results['machine']['memory']};"
        f" Python {results['machine']['python']}; run {results['date']}.",
        "",
        "Reproduce (drops and recreates the Postgres database named in the URL):",
        "",
        f"    .venv/bin/python -m benchmarks.export --assets {shape} \\",
        f"        --database-url {results['database_url']}",
        "",
    ]
    for entry in results["dialects"]:
        rows = entry["load"]["rows"]
        server = f" ({entry['server'].split(' ')[0]})" if entry.get("server") else ""
        lines += [
            f"### {'Postgres' if entry['dialect'] == 'postgresql' else 'SQLite'}{server}",
            "",
            f"Data set: {rows['assets']:,} assets (8 fields, 1-2 owners, 2-3 tags, 3 metadata keys each), "
            f"{rows['jobs']:,} jobs with {rows['runs']:,} runs ({rows['run_assets']:,} run_assets), "
            f"{rows['lineage_edges']:,} lineage edges; {rows['changes']:,} changes in the feed. "
            f"Loaded in {entry['load']['seconds']} s.",
            "",
            "| shipper | export | wall time | assets/s | records/s | asset pages alone | peak RSS | output |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for run in entry["exports"]:
            what = "full" if run["mode"] == "full" else "incremental (all changes)"
            output = f"{run['output_mb']} MB"
            if run["shipper"] == "openlineage":
                output += f" in {run['requests']:,} POSTs"
            alone = (
                f"{run['asset_pages_s']} s, {run['asset_pages_assets_per_s']:,} assets/s"
                if "asset_pages_s" in run
                else ""
            )
            lines.append(
                f"| {LABELS.get(run['shipper'], run['shipper'])} | {what} | {run['seconds']} s | "
                f"{run['assets_per_s']:,} | {run['records_per_s']:,} | {alone} | {run['peak_rss_mb']} MB | {output} |"
            )
        lines.append("")
    lines += [
        "Assets/s is the data set's asset count over the export's wall time (the export also carries the jobs,",
        "runs and edges: records/s counts them all; for the incremental export a record is a change of the feed).",
        "A full export ships the assets first: *asset pages alone* is the time until the last asset page was shipped.",
        f"Target: at least {TARGET_FILE_ASSETS_PER_SECOND:,} assets/s to file. Peak RSS is the benchmark process's",
        "VmHWM during the export (it holds the SQLAlchemy engine and the shipper; the receiver is another process).",
        "",
    ]
    lines += list(results.get("notes", []))
    lines += ["", MARK_END]
    return "\n".join(lines)


def write_markdown(path: Path, section: str) -> None:
    write_section(path, section, MARK_BEGIN, MARK_END)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    shape = Shape(args.assets)
    available = shipper_kinds()
    kinds = [kind for kind in args.shippers.split(",") if kind]
    missing = [kind for kind in kinds if kind not in available]
    if missing:
        print(f"skipping shippers not installed: {', '.join(missing)}", file=sys.stderr)
        kinds = [kind for kind in kinds if kind in available]
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "assets": shape.assets,
        "batch_size": args.batch_size,
        "database_url": args.database_url,
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "dialects": [],
        "notes": args.note or [],
    }
    for dialect in args.dialect or ["sqlite", "postgresql"]:
        results["dialects"].append(await bench_dialect(dialect, args, shape, kinds, args.database_url))
    return results


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_markdown:
        write_markdown(Path(args.markdown), markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="the benchmark's own Postgres database (recreated)")
    parser.add_argument("--dialect", action="append", choices=["sqlite", "postgresql"], help="default: both")
    parser.add_argument("--shippers", default="file,openlineage,datahub")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile the file exports (to benchmarks/results)")
    parser.add_argument("--note", action="append", help="a line to add under the tables (repeatable)")
    parser.add_argument("--output", default=str(RESULTS / "export.json"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-markdown", action="store_true")
    parser.add_argument("--markdown-only", action="store_true", help="write BENCHMARKS.md from --output's results")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_serve_receiver())
        return
    if args.markdown_only:
        results = json.loads(Path(args.output).read_text())
        results["notes"] = args.note or results.get("notes", [])
        write_markdown(Path(args.markdown), markdown(results))
        return
    report(args, asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
