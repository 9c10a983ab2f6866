"""Benchmark: the gateway as production runs it, loaded with the reference workload and measured over HTTP.

    .venv/bin/python -m benchmarks.harness --size S --dialect postgresql
    .venv/bin/python -m benchmarks.harness --size S --dialect sqlite
    .venv/bin/python -m benchmarks.harness --size M --dialect postgresql        # the size of the targets
    .venv/bin/python -m benchmarks.harness --size M --dialect postgresql --max-load-seconds 180   # load rates only
    .venv/bin/python -m benchmarks.harness --size S --dialect postgresql --label profiled \
        --profile ingest-single --profile ingest-batch --profile catalog

One run:

1. Takes the workload file of the size (`--workload PATH`, or benchmarks/results/workloads/, generated there the
   first time by benchmarks/workload.py: the reference format, seed 42).
2. Creates a fresh database: on Postgres it drops and creates the database named in `--database-url` (its name
   must contain "bench"); on SQLite a file in a temporary folder. Then `asset-gateway migrate` and
   `asset-gateway token create --scope admin --namespace '*'`: auth is on, every request carries the token.
3. Starts `asset-gateway --config <its own settings file> serve` (uvicorn, one process, log level warning, the
   scheduler off so that no sweep runs while measuring), and loads the workload through the public ingest path,
   POST /api/v1/lineage:
   * each asset as an OpenLineage JobEvent of the job that builds it (job `workload/<asset key>`): its dependencies
     as inputs, the asset as output with its type, owner, tags (`domain:<d>`, `tier:<t>`) and description facets:
     declared lineage; sent as NDJSON, `--batch-size` events per POST;
   * each materialization as a RunEvent of that job (COMPLETE, or FAIL with an errorMessage facet, at its time;
     inputs the dependencies, output the asset with an outputStatistics facet of rowCount and size; a run id of
     its own, the workload's run as its parent run, unless `--no-parent`). The first `--single-events` are POSTed
     one per request at `--concurrency`, the rest as NDJSON batches of `--batch-size` at `--batch-concurrency`:
     the two ingest figures. The single POSTs stop after `--single-seconds`, the rest going in batches; with
   `--max-load-seconds` each batched phase stops too, and the run reports only the load rates and how long the
   whole load would take (a first look at size M, whose full load is long).
   On a Postgres server without autovacuum (a CI machine's may turn it off), the harness does its work during
   the load (VACUUM or ANALYZE of each table past autovacuum's default thresholds, every 15 s).
   Then a tree of 1,877 assets of its own (namespace `bench-wide`: a root, then levels of 4, 16, 64, 256 and
   1,536 assets, each reading one asset of the level above) as JobEvents in NDJSON, for the wide lineage figure:
   the workload's widest walk of five hops reaches under 200 assets, the target speaks of up to 2,000.
   Then one freshness sweep (the runMonitor mutation) so that assets have a health row, and on Postgres
   VACUUM ANALYZE and a CHECKPOINT (what autovacuum and the checkpointer would have done by then).
4. Measures GraphQL over HTTP (aiohttp, one client process; warm-up requests first): the catalog's first page of 100
   assets with owners, tags, lastMaterializedAt and status (at concurrency 1 and `--concurrency`), a filtered page
   (namespacePrefix and a tag), a text search, an asset's detail page (its 20 latest executions, one hop of lineage
   both ways) over the hottest assets, 100 materializations of the hottest asset, upstream lineage at depth 5
   and 20 from the deepest mart, and downstream lineage at depth 5 from the root of the tree (1,877 nodes).
   Latencies are client-side (request sent to response read).
5. Times the same SQL straight through the database driver (benchmarks/floor.py), for each figure's ratio over
   its raw SQL floor, and samples the gateway's RSS (VmRSS) throughout (the figure is the maximum) and its CPU
   time per phase.

`--profile PHASE` attaches py-spy (`record --gil --nonblocking`, 100 Hz; `--profile-native` adds C and Cython
frames but pauses the gateway at each sample) for that phase and summarizes where the gateway's Python time went;
the raw stacks stay in benchmarks/results/. A profiled run perturbs its own figures: give it a `--label` so that
it is filed beside the plain run instead of replacing it.

Results go to benchmarks/results/harness.json (one entry per size, dialect and label; a new run replaces its
entry) and to the generated section of BENCHMARKS.md, with the commit and a digest of any uncommitted changes to
the gateway's packages. The client shares the machine with the gateway and the database:
figures from a busy machine are indicative only. `--markdown-only` rewrites the section from the results file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

from benchmarks import floor
from benchmarks.report import percentiles, write_section
from benchmarks.workload import (
    SIZES,
    Asset,
    Materialization,
    iter_assets,
    iter_materializations,
    read_header,
    summarize,
)
from benchmarks.workload import Summary as WorkloadSummary
from benchmarks.workload import workload_file as default_workload_file

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_FILE = RESULTS / "harness.json"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/asset_gateway_bench"
MARK_BEGIN = "<!-- benchmarks.harness: generated section, begin -->"
MARK_END = "<!-- benchmarks.harness: generated section, end -->"

PRODUCER = "urn:asset-gateway:benchmarks"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
JOB_NAMESPACE = "workload"
PARENT_JOB = "workload-run"
RUN_IDS = uuid.UUID("6f1d3a52-8c43-4b7e-9a61-0b5cf3c1d2e7")  # uuid5 namespace of the per-event run ids

# Targets of the issue (size M, Postgres) and Dagster's reference figures, for the report.
TARGETS = {
    "ingest_single_eps": 2_000.0,
    "ingest_batch_eps": 15_000.0,
    "catalog_p50_ms": 10.0,
    "catalog_c16_rps": 400.0,
    "detail_p50_ms": 10.0,
    "materializations_p50_ms": 10.0,
    "lineage5_p50_ms": 50.0,
    "floor_ratio": 3.0,
    "rss_mb": 300.0,
}
DAGSTER = {"catalog_p50_ms": 56.0, "catalog_c16_rps": 11.0, "materializations_p50_ms": 23.0, "ingest_eps": 350.0}


# The GraphQL operations -----------------------------------------------------------------------------------------

CATALOG = """query Catalog($first: Int!, $filter: AssetFilterInput) {
  assets(first: $first, filter: $filter) {
    edges { node { key type owners tags lastMaterializedAt lastStatus status } }
    pageInfo { hasNextPage endCursor }
  }
}"""

DETAIL = """query AssetDetail($key: String!) {
  asset(key: $key) {
    key namespace name type displayName description owners tags metadata
    createdAt updatedAt lastMaterializedAt lastStatus status
    upstream { key type }
    downstream { key type }
    executions(first: 20) {
      edges { node {
        role eventTime facets
        execution { runId state startedAt endedAt errorMessage job { namespace name } }
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

MATERIALIZATIONS = """query Materializations($key: String!) {
  asset(key: $key) {
    executions(first: 100, role: OUTPUT) {
      edges { node { eventTime facets execution { runId state endedAt errorMessage } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

LINEAGE = """query Lineage($key: String!, $depth: Int!, $direction: LineageDirection! = UPSTREAM) {
  lineage(key: $key, direction: $direction, depth: $depth) {
    nodes { depth asset { key type } }
    edges { upstreamKey downstreamKey }
    truncated
  }
}"""

RUN_MONITOR = "mutation { runMonitor { assetsChecked alertsOpened alertsResolved } }"

FILTER_NAMESPACE_PREFIX = "warehouse"
FILTER_TAG = "domain:finance"
SEARCH_TEXT = "finance"
DETAIL_ASSETS = 50  # the detail page rotates over the hottest assets


# OpenLineage events from the workload ---------------------------------------------------------------------------


def split(key: str) -> tuple[str, str]:
    """An asset key as an OpenLineage (namespace, name): the gateway joins them back with a slash."""
    namespace, _, name = key.partition("/")
    return namespace, name


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _facet(name: str, **values: Any) -> dict[str, Any]:
    schema = f"{PRODUCER}:{name}" if name == "WorkloadRunFacet" else f"{SPEC}#/$defs/{name}"
    return {"_producer": PRODUCER, "_schemaURL": schema, **values}


def _dataset(key: str) -> dict[str, Any]:
    namespace, name = split(key)
    return {"namespace": namespace, "name": name}


def job_event(asset: Asset, event_time: float) -> dict[str, Any]:
    """The asset declared by the job that builds it: its dependencies as inputs, itself as output."""
    owner_type = "team" if asset.owner.startswith("team:") else "user"
    output = _dataset(asset.key)
    output["facets"] = {
        "datasetType": _facet("DatasetTypeDatasetFacet", datasetType=asset.asset_type.upper()),
        "documentation": _facet("DocumentationDatasetFacet", description=asset.description),
        "ownership": _facet("OwnershipDatasetFacet", owners=[{"name": asset.owner, "type": owner_type}]),
        "tags": _facet(
            "TagsDatasetFacet",
            tags=[{"key": name, "value": value, "source": "workload"} for name, value in asset.tags.items()],
        ),
    }
    return {
        "eventTime": iso(event_time),
        "producer": PRODUCER,
        "schemaURL": f"{SPEC}#/$defs/JobEvent",
        "job": {
            "namespace": JOB_NAMESPACE,
            "name": asset.key,
            "facets": {
                "jobType": _facet("JobTypeJobFacet", processingType="BATCH", integration="WORKLOAD", jobType="ASSET")
            },
        },
        "inputs": [_dataset(dep) for dep in asset.deps],
        "outputs": [output],
    }


def run_event(event: Materialization, deps: Sequence[str], parent: bool) -> dict[str, Any]:
    """One materialization: a run of the asset's job that read its dependencies and wrote it."""
    run_facets: dict[str, Any] = {
        "workload": _facet(
            "WorkloadRunFacet", seq=event.seq, workloadRunId=event.run_id, durationMs=event.metadata.get("duration_ms")
        )
    }
    if parent:
        run_facets["parent"] = _facet(
            "ParentRunFacet",
            run={"runId": event.run_id},
            job={"namespace": JOB_NAMESPACE, "name": PARENT_JOB},
        )
    output = _dataset(event.asset_key)
    if event.failed:
        run_facets["errorMessage"] = _facet(
            "ErrorMessageRunFacet", message=str(event.metadata.get("error")), programmingLanguage="python"
        )
    else:
        statistics_facet = _facet(
            "OutputStatisticsOutputDatasetFacet", rowCount=event.metadata["row_count"], size=event.metadata["bytes"]
        )
        output["outputFacets"] = {"outputStatistics": statistics_facet}
    return {
        "eventType": "FAIL" if event.failed else "COMPLETE",
        "eventTime": iso(event.timestamp),
        "producer": PRODUCER,
        "schemaURL": f"{SPEC}#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid5(RUN_IDS, f"{event.run_id}/{event.seq}")), "facets": run_facets},
        "job": {"namespace": JOB_NAMESPACE, "name": event.asset_key},
        "inputs": [_dataset(dep) for dep in deps],
        "outputs": [output],
    }


# The wide lineage figure. The reference workload's widest walk of five hops reaches under 200 assets (at M),
# while the target bounds walks of up to 2,000 nodes: the harness declares a tree of its own beside the workload,
# each level's assets reading one asset of the level above, for a downstream walk of five levels from its root.
WIDE_NAMESPACE = "bench-wide"
WIDE_FANOUTS = (4, 4, 4, 4, 6)  # 1 + 4 + 16 + 64 + 256 + 1,536 = 1,877 assets, under the 2,000-node cap


def wide_tree_keys() -> list[tuple[str, str | None]]:
    """(asset key, the key of the asset it reads) of the tree, level by level from its root (which reads none)."""
    tree: list[tuple[str, str | None]] = [(f"{WIDE_NAMESPACE}/root", None)]
    level = [tree[0][0]]
    for depth, fanout in enumerate(WIDE_FANOUTS, start=1):
        following = [f"{WIDE_NAMESPACE}/level{depth}/node_{len(tree) + n}" for n in range(len(level) * fanout)]
        tree += [(key, level[n // fanout]) for n, key in enumerate(following)]
        level = following
    return tree


def wide_tree_events(event_time: float) -> list[dict[str, Any]]:
    """JobEvents declaring the tree: the job of each asset reads its parent and writes it."""
    events = []
    for key, parent in wide_tree_keys():
        event = {
            "eventTime": iso(event_time),
            "producer": PRODUCER,
            "schemaURL": f"{SPEC}#/$defs/JobEvent",
            "job": {"namespace": JOB_NAMESPACE, "name": key},
            "inputs": [] if parent is None else [_dataset(parent)],
            "outputs": [_dataset(key)],
        }
        events.append(event)
    return events


def ndjson(events: Iterable[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(event) for event in events) + b"\n"


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# The gateway process ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def gateway_command() -> list[str]:
    script = Path(sys.executable).parent / "asset-gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def clean_environment() -> dict[str, str]:
    """The caller's environment without GATEWAY_* variables (they would beat the settings file)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}


@dataclass
class Gateway:
    """`asset-gateway serve` in a subprocess, with its own settings file."""

    config: Path
    port: int
    log: Path
    serve_environment: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*gateway_command(), "--config", str(self.config), *args],
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"asset-gateway {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    async def start(self, ready_within: float = 120.0) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *gateway_command(),
                "--config",
                str(self.config),
                "serve",
                env={**clean_environment(), **self.serve_environment},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
            )
        deadline = time.monotonic() + ready_within
        async with httpx.AsyncClient(base_url=self.url) as client:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the gateway exited with {self.process.returncode}; see {self.log}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz", timeout=2.0)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway was not ready within {ready_within:.0f} s; see {self.log}")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Stop a background task of the harness and wait until it has."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def read_rss_kb(pid: int, field_name: str = "VmRSS") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (the workers of `serve --workers`)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RssSampler:
    """The gateway's VmRSS every `interval` seconds (the maximum per phase) and its CPU time per phase, summed over
    its processes (one, or a `serve --workers` parent and its workers)."""

    pid: int
    interval: float = 0.1
    phase: str = "startup"
    peaks_kb: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: int = 0
    _task: asyncio.Task[None] | None = None
    _phase_started: tuple[float, float] = (0.0, 0.0)

    def enter(self, phase: str) -> None:
        """Close the current phase's CPU account and start `phase`."""
        now, cpu = time.perf_counter(), sum(read_cpu_seconds(pid) or 0.0 for pid in process_tree(self.pid))
        began, cpu_began = self._phase_started
        if began:
            account = self.cpu.setdefault(self.phase, {"wall_s": 0.0, "cpu_s": 0.0})
            account["wall_s"] = round(account["wall_s"] + now - began, 2)
            account["cpu_s"] = round(account["cpu_s"] + cpu - cpu_began, 2)
        self.phase = phase
        self._phase_started = (now, cpu)

    async def _run(self) -> None:
        tree = [self.pid]
        while True:
            if self.samples % 20 == 0:  # workers may be replaced; /proc is read every 2 s, not every sample
                tree = process_tree(self.pid)
            sizes = [rss for pid in tree if (rss := read_rss_kb(pid)) is not None]
            if sizes:
                self.samples += 1
                self.peaks_kb[self.phase] = max(self.peaks_kb.get(self.phase, 0), sum(sizes))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.enter(self.phase)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel(self._task)

    def as_json(self) -> dict[str, Any]:
        phases = {phase: round(kb / 1024, 1) for phase, kb in self.peaks_kb.items()}
        busy = {
            phase: {**account, "busy": round(account["cpu_s"] / account["wall_s"], 2) if account["wall_s"] else None}
            for phase, account in self.cpu.items()
        }
        return {
            "max_mb": max(phases.values(), default=0.0),
            "by_phase_mb": phases,
            "samples": self.samples,
            "cpu": busy,
        }


# Profiling (py-spy) -----------------------------------------------------------------------------------------------


@dataclass
class Profiler:
    """`py-spy record` attached to the gateway for the phases named in `phases`."""

    pid: int
    phases: set[str]
    directory: Path
    tag: str
    rate: int = 100
    native: bool = False
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        if name not in self.phases:
            yield
            return
        executable = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if executable is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy, or the project's dev extra)")
        raw = self.directory / f"profile-{self.tag}-{name}.txt"
        arguments = ["record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw", "--gil"]
        # Native frames (C and Cython, e.g. inside asyncpg) need the process paused at each sample.
        arguments.append("--native" if self.native else "--nonblocking")
        spy = await asyncio.create_subprocess_exec(
            executable,
            *arguments,
            "--output",
            str(raw),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # attached before the phase starts
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                _, errors = await asyncio.wait_for(spy.communicate(), 60)
            except TimeoutError:
                spy.kill()
                _, errors = await spy.communicate()
            if raw.exists():
                self.reports[name] = {"file": str(raw.relative_to(ROOT)), **summarize_profile(raw)}
            else:
                self.reports[name] = {"error": errors.decode(errors="replace").strip()[-500:]}


PROJECT = "gateway (this project)"


def _frame_name(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/file.py:line)": keep the function and a short module path.
    function, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path})" if path else function


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks -> the functions with the most samples: on top of the stack (self) and anywhere (total)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame and not frame.startswith("process ")]
        frames = [frame for frame in frames if not frame.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if _package(frame) == PROJECT:
                inclusive[frame] += count
        packages[_package(stack.split(";")[-1])] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * count / total, 1)] for name, count in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "self": share(own),
        "project_inclusive": share(inclusive),
        "self_by_package": share(packages),
    }


def _package(frame: str) -> str:
    where = frame.partition(" (")[2].rstrip(")")
    if "site-packages/" in where:
        return where.split("site-packages/", 1)[1].split("/", 1)[0]
    if where.startswith((f"{ROOT}/", "gateway/", "schema/", "monitors/", "shippers/")):
        return PROJECT
    if "lib/python3." in where:
        return "python stdlib"
    return where.split(":", 1)[0] or "other"


# Measuring --------------------------------------------------------------------------------------------------------


class BenchmarkError(RuntimeError):
    """A request the benchmark needs was refused or failed."""


def graphql_errors(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:500].decode(errors='replace')}"
    if b'"errors"' in body:
        document = orjson.loads(body)
        if document.get("errors"):
            return json.dumps(document["errors"])[:1000]
    return None


class HttpClient:
    """The load's HTTP client (aiohttp). It shares the machine's two cores with the gateway and Postgres: httpx
    spent about 1.2 ms of CPU per request here, aiohttp about 0.15 ms, which leaves the cores to what is measured."""

    def __init__(self, base_url: str, headers: dict[str, str], connections: int) -> None:
        self.base_url = base_url
        self.headers = headers
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        self._session = aiohttp.ClientSession(
            self.base_url,
            headers=self.headers,
            # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) closes them server-side: a
            # request sent on a connection the server is closing fails with a broken pipe.
            connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=3.0),
            timeout=aiohttp.ClientTimeout(total=300.0),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """(status, body) of a POST."""
        assert self._session is not None, "use HttpClient in `async with`"
        for attempt in (1, 2):
            try:
                async with self._session.post(path, data=body, headers={"content-type": content_type}) as response:
                    return response.status, await response.read()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # The connection was closed under the request (the race above): once more on a new one. Safe for
                # these POSTs: queries read, and an event sent twice is stored once.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


async def graphql(client: HttpClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = await client.post("/graphql", orjson.dumps({"query": query, "variables": variables or {}}))
    error = graphql_errors(status, body)
    if error:
        raise BenchmarkError(error)
    data: dict[str, Any] = orjson.loads(body)["data"]
    return data


async def timed_requests(
    client: HttpClient,
    bodies: Sequence[bytes],
    concurrency: int,
    requests: int,
    max_seconds: float,
    warmup: int,
    check: Callable[[int, bytes], str | None] = graphql_errors,
    path: str = "/graphql",
) -> dict[str, Any]:
    """POST `requests` bodies (round robin) from `concurrency` workers; latencies and throughput."""
    for index in range(warmup):
        status, body = await client.post(path, bodies[index % len(bodies)])
        error = check(status, body)
        if error:
            raise BenchmarkError(error)
    latencies: list[float] = []
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds
    first_error: list[str] = []

    async def worker() -> None:
        for index in counter:
            if time.perf_counter() > deadline or first_error:
                return
            started = time.perf_counter()
            status, body = await client.post(path, bodies[index % len(bodies)])
            elapsed = time.perf_counter() - started
            error = check(status, body)
            if error:
                first_error.append(error)
                return
            latencies.append(elapsed * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    if first_error:
        raise BenchmarkError(first_error[0])
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1),
        **percentiles(latencies),
    }


def graphql_body(query: str, variables: dict[str, Any]) -> bytes:
    return orjson.dumps({"query": query, "variables": variables})


# The load ---------------------------------------------------------------------------------------------------------


def ingest_errors(status: int, body: bytes) -> str | None:
    return None if status == 201 else f"HTTP {status}: {body[:500].decode(errors='replace')}"


async def post_batches(
    client: HttpClient,
    batches: Iterator[list[dict[str, Any]]],
    concurrency: int,
    max_seconds: float | None = None,
) -> tuple[int, float, list[float]]:
    """NDJSON batches from `concurrency` workers, until `batches` ends or `max_seconds` passed; (events, seconds,
    per-POST latencies in ms)."""
    sent = 0
    latencies: list[float] = []
    first_error: list[str] = []
    started = time.perf_counter()
    reported = started
    deadline = started + max_seconds if max_seconds is not None else None

    async def worker() -> None:
        nonlocal sent, reported
        while not first_error and (deadline is None or time.perf_counter() < deadline):
            batch = next(batches, None)  # a shared iterator: each batch goes to one worker
            if batch is None:
                return
            body = ndjson(batch)
            began = time.perf_counter()
            status, answer = await client.post("/api/v1/lineage", body, "application/x-ndjson")
            latencies.append((time.perf_counter() - began) * 1000)
            error = ingest_errors(status, answer)
            if error:
                first_error.append(error)
                return
            sent += len(batch)
            now = time.perf_counter()
            if now - reported >= 30:
                reported = now
                print(
                    f"    {sent:,} events in {now - started:,.0f} s: {sent / (now - started):,.0f}/s", file=sys.stderr
                )

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if first_error:
        raise BenchmarkError(f"ingest refused: {first_error[0]}")
    return sent, seconds, latencies


async def post_singles(
    client: HttpClient, events: Iterator[dict[str, Any]], concurrency: int, max_seconds: float
) -> tuple[int, float, list[float]]:
    """One event per POST from `concurrency` workers, until `events` ends or `max_seconds` passed (the events not
    taken stay in the iterator)."""
    latencies: list[float] = []
    first_error: list[str] = []
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        while not first_error and time.perf_counter() < deadline:
            event = next(events, None)
            if event is None:
                return
            body = orjson.dumps(event)
            began = time.perf_counter()
            status, answer = await client.post("/api/v1/lineage", body)
            latencies.append((time.perf_counter() - began) * 1000)
            error = ingest_errors(status, answer)
            if error:
                first_error.append(error)
                return

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if first_error:
        raise BenchmarkError(f"ingest refused: {first_error[0]}")
    return len(latencies), seconds, latencies


def load_figure(events: int, seconds: float, latencies: Sequence[float], **extra: Any) -> dict[str, Any]:
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1) if seconds else None,
        "post_latency": percentiles(latencies) if latencies else None,
        **extra,
    }


# The database -----------------------------------------------------------------------------------------------------


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def recreate_postgres(url: str) -> None:
    name = make_url(url).database
    if not name or "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the benchmark database's name must contain 'bench'")
    connection = await asyncpg.connect(asyncpg_dsn(url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_postgres(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await connection.close()


TABLES = ("assets", "jobs", "runs", "run_assets", "lineage_edges", "lineage_events", "asset_health", "changes")


async def database_facts(dialect: str, url: str, sqlite_path: Path | None) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if dialect == "postgresql":
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for table in TABLES:
                facts[table] = await connection.fetchval(f"SELECT count(*) FROM {table}")
            facts["database_mb"] = round(
                await connection.fetchval("SELECT pg_database_size(current_database())") / 2**20, 1
            )
            facts["server"] = await connection.fetchval("SHOW server_version")
            facts["settings"] = {
                name: await connection.fetchval(f"SHOW {name}")
                for name in ("shared_buffers", "work_mem", "effective_cache_size", "synchronous_commit")
            }
        finally:
            await connection.close()
    else:
        import sqlite3

        assert sqlite_path is not None
        with contextlib.closing(sqlite3.connect(sqlite_path)) as connection:
            for table in TABLES:
                facts[table] = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            facts["server"] = f"SQLite {connection.execute('SELECT sqlite_version()').fetchone()[0]}"
        size = sum(path.stat().st_size for path in sqlite_path.parent.glob(sqlite_path.name + "*"))
        facts["database_mb"] = round(size / 2**20, 1)
    return facts


async def settle_postgres(url: str) -> float:
    """VACUUM ANALYZE and CHECKPOINT: what autovacuum and the checkpointer do shortly after a bulk load."""
    started = time.perf_counter()
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("VACUUM ANALYZE")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()
    return time.perf_counter() - started


# Statistics of a CI-tuned server's tables: what the planner needs during a long load, done by the harness when
# the server runs without autovacuum (PG 15's default thresholds).
AUTOANALYZE = (50, 0.1)  # changed rows since the last ANALYZE: base + fraction of the table
AUTOVACUUM = (50, 0.2)  # dead rows
AUTOVACUUM_INSERTS = (1000, 0.2)  # rows inserted since the last VACUUM
TABLES_DUE = """
SELECT s.relname,
       s.n_mod_since_analyze > $1 + $2 * greatest(c.reltuples, 0) AS analyze,
       s.n_dead_tup > $3 + $4 * greatest(c.reltuples, 0)
           OR s.n_ins_since_vacuum > $5 + $6 * greatest(c.reltuples, 0) AS vacuum
FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
"""


@dataclass
class AutovacuumStandIn:
    """Autovacuum's work while the workload loads, for a server that runs without it (a CI machine's Postgres may
    turn it off): every `interval` seconds, VACUUM or ANALYZE each table past autovacuum's default thresholds.
    Without it the planner never learns how the tables grew, and a long load measures plans made for empty
    tables. On a server with autovacuum on it does nothing."""

    url: str
    interval: float = 15.0
    enabled: bool = False
    analyzed: int = 0
    vacuumed: int = 0
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            self.enabled = await connection.fetchval("SHOW autovacuum") == "off"
        finally:
            await connection.close()
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            while True:
                await asyncio.sleep(self.interval)
                due = await connection.fetch(TABLES_DUE, *AUTOANALYZE, *AUTOVACUUM, *AUTOVACUUM_INSERTS)
                for table, analyze, vacuum in due:
                    if vacuum:
                        await connection.execute(f'VACUUM (ANALYZE) "{table}"')
                        self.vacuumed += 1
                        self.analyzed += 1
                    elif analyze:
                        await connection.execute(f'ANALYZE "{table}"')
                        self.analyzed += 1
        finally:
            await connection.close()

    async def stop(self) -> None:
        await cancel(self._task)

    def as_json(self) -> dict[str, Any]:
        if not self.enabled:
            return {"autovacuum": "on"}
        return {"autovacuum": "off, stood in by the harness", "analyzed": self.analyzed, "vacuumed": self.vacuumed}


# One run ----------------------------------------------------------------------------------------------------------


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
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "load_average": load}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("asset-gateway", "uvicorn", "starlette", "strawberry-graphql", "sqlalchemy", "asyncpg"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    for package in ("aiosqlite", "aiohttp", "orjson", "uvloop", "httptools"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def source_tree() -> dict[str, Any]:
    """Which gateway code ran: the commit, and a digest of uncommitted changes to the product's packages."""
    import hashlib

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout if done.returncode == 0 else ""

    packages = ["gateway", "schema", "monitors", "shippers"]
    digest = hashlib.sha256(git("diff", "HEAD", "--", *packages).encode())
    untracked = sorted(git("ls-files", "--others", "--exclude-standard", "--", *packages).split())
    for name in untracked:
        with contextlib.suppress(OSError):
            digest.update(name.encode() + (ROOT / name).read_bytes())
    changed = sorted(set(git("diff", "HEAD", "--name-only", "--", *packages).split()) | set(untracked))
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_files": len(changed),
        "uncommitted_digest": digest.hexdigest()[:12] if changed else None,
    }


@dataclass
class Plan:
    size: str
    dialect: str
    label: str | None
    workload: Path
    database_url: str
    concurrency: int
    batch_size: int
    batch_concurrency: int
    single_events: int | None
    single_seconds: float
    max_load_seconds: float | None
    requests: int
    warmup: int
    max_seconds: float
    parent: bool
    profile: set[str]
    profile_native: bool
    keep: bool
    floor: bool
    echo_sql: bool
    workers: int = 1
    # Further gateway settings (`--gateway-setting NAME=VALUE`), as the settings file would hold them.
    gateway_settings: dict[str, Any] = field(default_factory=dict)


def settings_yaml(
    database_url: str, port: int, data_dir: Path, workers: int = 1, extra: dict[str, Any] | None = None
) -> str:
    settings = {
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        "log_level": "warning",
        "scheduler_enabled": False,
        "data_dir": str(data_dir),
        **(extra or {}),
    }
    return json.dumps(settings, indent=1)  # JSON is YAML


async def run(plan: Plan) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    tag = "-".join(part for part in (plan.size, plan.dialect, plan.label) if part)
    work = Path(tempfile.mkdtemp(prefix="asset-gateway-bench-"))
    sqlite_path: Path | None = None
    if plan.dialect == "sqlite":
        sqlite_path = work / "gateway.db"
        database_url = f"sqlite+aiosqlite:///{sqlite_path}"
    else:
        database_url = plan.database_url
        await recreate_postgres(database_url)
    started = time.perf_counter()
    print(f"[{tag}] summarizing {plan.workload}", file=sys.stderr)
    summary = summarize(plan.workload)
    header = summary.header
    single_events = plan.single_events
    if single_events is None:
        single_events = min(header.events // 5, 20_000)
    single_events = min(single_events, header.events)

    port = free_port()
    config = work / "settings.yaml"
    config.write_text(settings_yaml(database_url, port, work, plan.workers, plan.gateway_settings), encoding="utf-8")
    log = RESULTS / f"gateway-{tag}.log"
    log.write_bytes(b"")
    gateway = Gateway(config, port, log, {"GATEWAY_DATABASE_ECHO": "true"} if plan.echo_sql else {})
    gateway.cli("migrate")
    printed = gateway.cli("token", "create", "--name", "bench", "--scope", "admin", "--namespace", "*")
    token = printed.strip().splitlines()[-1]
    await gateway.start()
    sampler = RssSampler(gateway.pid)
    sampler.start()
    profiler = Profiler(gateway.pid, plan.profile, RESULTS, tag, native=plan.profile_native)
    results: dict[str, Any] = {
        "size": plan.size,
        "dialect": plan.dialect,
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "tree": source_tree(),
        "workload": {"file": plan.workload.name, **summary.as_json()},
        "settings": {
            "workers": plan.workers,
            **({"gateway": plan.gateway_settings} if plan.gateway_settings else {}),
            "concurrency": plan.concurrency,
            "batch_size": plan.batch_size,
            "batch_concurrency": plan.batch_concurrency,
            "single_events": single_events,
            "single_seconds": plan.single_seconds,
            "parent_runs": plan.parent,
            "requests": plan.requests,
            "warmup": plan.warmup,
            "max_seconds": plan.max_seconds,
            "max_load_seconds": plan.max_load_seconds,
        },
    }
    connections = max(plan.concurrency, plan.batch_concurrency) + 4
    headers = {"authorization": f"Bearer {token}"}
    try:
        async with HttpClient(gateway.url, headers, connections) as client:
            maintenance = AutovacuumStandIn(database_url)
            if plan.dialect == "postgresql":
                await maintenance.start()
            try:
                results["load"] = await load(client, plan, summary, single_events, sampler, profiler, tag)
            finally:
                await maintenance.stop()
            if plan.dialect == "postgresql":
                results["load"]["maintenance"] = maintenance.as_json()
            if "partial" in results["load"]:
                results["database"] = await database_facts(plan.dialect, database_url, sqlite_path)
                sampler.enter("idle")
                results["rss"] = sampler.as_json()
                results["profile"] = profiler.reports
                return results
            sampler.enter("sweep")
            began = time.perf_counter()
            sweep = (await graphql(client, RUN_MONITOR))["runMonitor"]
            results["load"]["sweep"] = {"seconds": round(time.perf_counter() - began, 2), **sweep}
            if plan.dialect == "postgresql":
                sampler.enter("settle")
                results["load"]["vacuum_analyze_checkpoint_s"] = round(await settle_postgres(database_url), 2)
            results["database"] = await database_facts(plan.dialect, database_url, sqlite_path)
            print(f"[{tag}] database: {results['database']}", file=sys.stderr)
            targets = floor.Targets(
                namespace_prefix=FILTER_NAMESPACE_PREFIX,
                tag=FILTER_TAG,
                search=SEARCH_TEXT,
                detail_keys=[key for key, _ in summary.hot_assets(DETAIL_ASSETS)],
                materializations_key=summary.hot_assets(1)[0][0],
                lineage_key=summary.deepest_mart or summary.hot_assets(1)[0][0],
                wide_lineage_key=wide_tree_keys()[0][0],
            )
            results["queries"] = await queries(client, plan, targets, sampler, profiler)
            sampler.enter("idle")
            results["rss"] = sampler.as_json()
            results["rss"]["vmhwm_mb"] = round((read_rss_kb(gateway.pid, "VmHWM") or 0) / 1024, 1)
        if plan.floor:
            print(f"[{tag}] raw SQL floor", file=sys.stderr)
            results["floor"] = await floor.measure(
                plan.dialect,
                database_url,
                targets,
                requests=plan.requests,
                warmup=plan.warmup,
                max_seconds=plan.max_seconds,
            )
        results["profile"] = profiler.reports
    finally:
        await sampler.stop()
        await gateway.stop()
        if not plan.keep:
            shutil.rmtree(work, ignore_errors=True)
            if plan.dialect == "postgresql":
                await drop_postgres(database_url)
        else:
            print(f"[{tag}] kept the database ({database_url}) and settings ({config})", file=sys.stderr)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


async def load(
    client: HttpClient,
    plan: Plan,
    summary: WorkloadSummary,
    single_events: int,
    sampler: RssSampler,
    profiler: Profiler,
    tag: str,
) -> dict[str, Any]:
    header = summary.header
    deps = {asset.key: asset.deps for asset in iter_assets(plan.workload)}
    declarations = (job_event(asset, header.window_start) for asset in iter_assets(plan.workload))

    figures: dict[str, Any] = {}
    print(f"[{tag}] declaring {header.assets:,} assets (JobEvents, NDJSON)", file=sys.stderr)
    sampler.enter("load: declarations")
    async with profiler.phase("ingest-declarations"):
        sent, seconds, latencies = await post_batches(
            client, chunked(declarations, plan.batch_size), plan.batch_concurrency, plan.max_load_seconds
        )
    figures["declarations"] = load_figure(sent, seconds, latencies, batch_size=plan.batch_size)
    print(f"[{tag}]   {figures['declarations']['events_per_s']:,} events/s", file=sys.stderr)

    events: Iterator[dict[str, Any]] = (
        run_event(event, deps[event.asset_key], plan.parent) for event in iter_materializations(plan.workload)
    )
    print(
        f"[{tag}] up to {single_events:,} materializations, one per POST at c{plan.concurrency}, for at most"
        f" {plan.single_seconds:.0f} s",
        file=sys.stderr,
    )
    sampler.enter("load: single POSTs")
    singles = itertools.islice(events, single_events)
    async with profiler.phase("ingest-single"):
        sent, seconds, latencies = await post_singles(client, singles, plan.concurrency, plan.single_seconds)
    figures["single"] = load_figure(sent, seconds, latencies, concurrency=plan.concurrency)
    print(f"[{tag}]   {figures['single']['events_per_s']:,} events/s", file=sys.stderr)
    # Whatever the single POSTs did not take goes in batches.
    events = itertools.chain(singles, events)

    rest = header.events - sent
    print(
        f"[{tag}] {rest:,} materializations in NDJSON batches of {plan.batch_size} at c{plan.batch_concurrency}",
        file=sys.stderr,
    )
    sampler.enter("load: batches")
    batches = chunked(events, plan.batch_size)
    async with profiler.phase("ingest-batch"):
        sent, seconds, latencies = await post_batches(client, batches, plan.batch_concurrency, plan.max_load_seconds)
    figures["batched"] = load_figure(
        sent, seconds, latencies, batch_size=plan.batch_size, concurrency=plan.batch_concurrency
    )
    print(f"[{tag}]   {figures['batched']['events_per_s']:,} events/s", file=sys.stderr)
    tree = wide_tree_events(header.window_start)
    print(f"[{tag}] declaring the wide lineage tree: {len(tree):,} assets (JobEvents, NDJSON)", file=sys.stderr)
    sampler.enter("load: wide tree")
    sent, seconds, latencies = await post_batches(client, chunked(iter(tree), plan.batch_size), 1)
    figures["wide_tree"] = load_figure(sent, seconds, latencies, batch_size=plan.batch_size)
    total_events = header.assets + header.events
    total_seconds = sum(figures[name]["seconds"] for name in ("declarations", "single", "batched"))
    figures["total"] = {"events": total_events, "seconds": round(total_seconds, 1)}
    loaded = figures["declarations"]["events"] + figures["single"]["events"] + figures["batched"]["events"]
    if loaded < total_events:
        # Stopped by --max-load-seconds: what the whole load would take at the rates measured.
        expected = (
            header.assets / figures["declarations"]["events_per_s"]
            + figures["single"]["seconds"]
            + (header.events - figures["single"]["events"]) / figures["batched"]["events_per_s"]
        )
        figures["partial"] = {"loaded_events": loaded, "expected_full_load_s": round(expected)}
        print(f"[{tag}] partial load; the whole load would take about {expected / 60:,.0f} min", file=sys.stderr)
    return figures


async def queries(
    client: HttpClient, plan: Plan, targets: floor.Targets, sampler: RssSampler, profiler: Profiler
) -> dict[str, Any]:
    figures: dict[str, Any] = {}

    async def measure(name: str, bodies: list[bytes], concurrencies: Sequence[int], profile: str = "") -> None:
        figure: dict[str, Any] = {}
        for concurrency in concurrencies:
            sampler.enter(f"query: {name} c{concurrency}")
            print(f"  {name} at c{concurrency}", file=sys.stderr)
            requests = plan.requests * (4 if concurrency > 1 else 1)
            try:
                if profile and concurrency > 1:
                    async with profiler.phase(profile):
                        measured = await timed_requests(
                            client, bodies, concurrency, requests, plan.max_seconds, plan.warmup
                        )
                else:
                    measured = await timed_requests(
                        client, bodies, concurrency, requests, plan.max_seconds, plan.warmup
                    )
            except BenchmarkError as error:
                figure[f"c{concurrency}"] = {"error": str(error)}
                print(f"    refused: {error}", file=sys.stderr)
                continue
            figure[f"c{concurrency}"] = measured
            print(f"    p50 {measured['p50_ms']} ms, {measured['rps']} req/s", file=sys.stderr)
        figures[name] = figure

    both = (1, plan.concurrency)
    await measure("catalog", [graphql_body(CATALOG, {"first": 100})], both, profile="catalog")
    filtered = {"namespacePrefix": targets.namespace_prefix, "tags": [targets.tag]}
    await measure("catalog_filtered", [graphql_body(CATALOG, {"first": 100, "filter": filtered})], both)
    await measure("catalog_search", [graphql_body(CATALOG, {"first": 100, "filter": {"search": targets.search}})], both)
    detail = [graphql_body(DETAIL, {"key": key}) for key in targets.detail_keys]
    await measure("detail", detail, both)
    await measure("materializations", [graphql_body(MATERIALIZATIONS, {"key": targets.materializations_key})], both)
    for depth in targets.lineage_depths:
        body = graphql_body(LINEAGE, {"key": targets.lineage_key, "depth": depth})
        await measure(f"lineage{depth}", [body], (1,))
        with contextlib.suppress(BenchmarkError):
            answer = (await graphql(client, LINEAGE, {"key": targets.lineage_key, "depth": depth}))["lineage"]
            figures[f"lineage{depth}"]["nodes"] = len(answer["nodes"])
            figures[f"lineage{depth}"]["edges"] = len(answer["edges"])
            figures[f"lineage{depth}"]["truncated"] = answer["truncated"]
    if targets.wide_lineage_key is not None:
        variables = {"key": targets.wide_lineage_key, "depth": 5, "direction": "DOWNSTREAM"}
        await measure("lineage_wide", [graphql_body(LINEAGE, variables)], (1,))
        with contextlib.suppress(BenchmarkError):
            answer = (await graphql(client, LINEAGE, variables))["lineage"]
            figures["lineage_wide"].update(
                key=targets.wide_lineage_key,
                nodes=len(answer["nodes"]),
                edges=len(answer["edges"]),
                truncated=answer["truncated"],
            )
    # What the answers hold, for the report.
    with contextlib.suppress(BenchmarkError):
        page = await graphql(client, CATALOG, {"first": 100, "filter": filtered})
        figures["catalog_filtered"]["rows"] = len(page["assets"]["edges"])
        page = await graphql(client, CATALOG, {"first": 100, "filter": {"search": targets.search}})
        figures["catalog_search"]["rows"] = len(page["assets"]["edges"])
        rows = await graphql(client, MATERIALIZATIONS, {"key": targets.materializations_key})
        figures["materializations"]["rows"] = len(rows["asset"]["executions"]["edges"])
        figures["materializations"]["key"] = targets.materializations_key
        figures["lineage5"]["key"] = targets.lineage_key
    return figures


# The report -------------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _verdict(ok: bool) -> str:
    return "✓" if ok else "✗"


def _p50(results: dict[str, Any], name: str, concurrency: str = "c1") -> float | None:
    figure = results.get("queries", {}).get(name, {}).get(concurrency, {})
    value = figure.get("p50_ms")
    return float(value) if value is not None else None


def _rps(results: dict[str, Any], name: str, concurrency: str) -> float | None:
    value = results.get("queries", {}).get(name, {}).get(concurrency, {}).get("rps")
    return float(value) if value is not None else None


def _floor_ratio(results: dict[str, Any], name: str) -> str:
    graph = _p50(results, name)
    raw = results.get("floor", {}).get(name, {}).get("p50_ms")
    if graph is None or not raw:
        return ""
    ratio = graph / raw
    return f"{raw:,.2f} ms; {ratio:,.1f}x {_verdict(ratio <= TARGETS['floor_ratio'])}"


def _error(results: dict[str, Any], name: str) -> str:
    figures = results.get("queries", {}).get(name, {}).values()
    errors = [figure["error"] for figure in figures if isinstance(figure, dict) and "error" in figure]
    return f"refused: {errors[0][:160]}" if errors else ""


def figure_rows(results: dict[str, Any]) -> list[list[str]]:
    """(figure, measured, target, verdict at target, raw SQL floor and ratio, Dagster's)."""
    load = results.get("load", {})
    queries = results.get("queries", {})
    concurrency = results["settings"]["concurrency"]
    rows: list[list[str]] = []

    def add(label: str, measured: str, target: str, ok: bool | None, raw: str = "", dagster: str = "") -> None:
        rows.append([label, measured, target, "" if ok is None else _verdict(ok), raw, dagster])

    single = load.get("single", {}).get("events_per_s")
    if single is not None:
        add(
            f"ingest, single-event POSTs at c{concurrency}",
            f"{single:,.0f} events/s",
            f"≥ {TARGETS['ingest_single_eps']:,.0f} events/s",
            single >= TARGETS["ingest_single_eps"],
            dagster=f"~{DAGSTER['ingest_eps']:.0f} events/s",
        )
    batched = load.get("batched", {})
    if batched.get("events_per_s") is not None:
        add(
            f"ingest, NDJSON batches of {batched['batch_size']:,} at c{batched['concurrency']}",
            f"{batched['events_per_s']:,.0f} events/s",
            f"≥ {TARGETS['ingest_batch_eps']:,.0f} events/s",
            batched["events_per_s"] >= TARGETS["ingest_batch_eps"],
        )

    def latency(name: str, label: str, target: float | None, dagster: float | None = None) -> None:
        error = _error(results, name)
        p50 = _p50(results, name)
        figure = queries.get(name, {}).get("c1", {})
        if p50 is None:
            add(label, error or "not measured", "" if target is None else f"p50 ≤ {target:.0f} ms", None)
            return
        measured = f"p50 {_ms(p50)} (p95 {_ms(figure.get('p95_ms'))}, p99 {_ms(figure.get('p99_ms'))})"
        add(
            label,
            measured,
            "" if target is None else f"p50 ≤ {target:.0f} ms",
            None if target is None else p50 <= target,
            _floor_ratio(results, name),
            "" if dagster is None else f"{dagster:.0f} ms p50",
        )

    latency("catalog", "catalog: first page of 100 assets, c1", TARGETS["catalog_p50_ms"], DAGSTER["catalog_p50_ms"])
    rps = _rps(results, "catalog", f"c{concurrency}")
    c16 = queries.get("catalog", {}).get(f"c{concurrency}", {})
    if rps is not None:
        add(
            f"catalog: first page, c{concurrency}",
            f"{rps:,.0f} pages/s (p50 {_ms(c16.get('p50_ms'))}, p99 {_ms(c16.get('p99_ms'))})",
            f"≥ {TARGETS['catalog_c16_rps']:,.0f} pages/s",
            rps >= TARGETS["catalog_c16_rps"],
            dagster=f"{DAGSTER['catalog_c16_rps']:.0f} pages/s",
        )
    filtered_rows = queries.get("catalog_filtered", {}).get("rows")
    latency(
        "catalog_filtered",
        f"catalog filtered: namespacePrefix `{FILTER_NAMESPACE_PREFIX}` + tag `{FILTER_TAG}`"
        + (f" ({filtered_rows} rows)" if filtered_rows is not None else "")
        + ", c1",
        None,
    )
    search_rows = queries.get("catalog_search", {}).get("rows")
    latency(
        "catalog_search",
        f'catalog text search "{SEARCH_TEXT}"' + (f" ({search_rows} rows)" if search_rows is not None else "") + ", c1",
        None,
    )
    latency("detail", "asset detail: 20 latest executions, one hop of lineage, c1", TARGETS["detail_p50_ms"])
    rows_of = queries.get("materializations", {}).get("rows")
    latency(
        "materializations",
        f"{rows_of or 100} materializations of one asset, c1",
        TARGETS["materializations_p50_ms"],
        DAGSTER["materializations_p50_ms"],
    )
    for depth in (5, 20):
        name = f"lineage{depth}"
        nodes = queries.get(name, {}).get("nodes")
        label = f"lineage upstream, depth {depth}" + (f" ({nodes:,} nodes)" if nodes is not None else "") + ", c1"
        latency(name, label, TARGETS["lineage5_p50_ms"] if depth == 5 else None)
    if "lineage_wide" in queries:
        nodes = queries["lineage_wide"].get("nodes")
        label = "lineage downstream, depth 5, the declared tree" + (f" ({nodes:,} nodes)" if nodes else "") + ", c1"
        latency("lineage_wide", label, TARGETS["lineage5_p50_ms"])
    rss = results.get("rss", {}).get("max_mb")
    by_phase: dict[str, float] = results.get("rss", {}).get("by_phase_mb", {})
    if rss is not None:
        # The phase in which the maximum was first reached (memory once taken is kept: later phases show it too).
        where = next((phase for phase, mb in by_phase.items() if mb >= rss - 1), "")
        add(
            "gateway RSS, max (VmRSS)",
            f"{rss:,.0f} MB (reached during {where})" if where else f"{rss:,.0f} MB",
            f"≤ {TARGETS['rss_mb']:.0f} MB",
            rss <= TARGETS["rss_mb"],
        )
    return rows


def _tree(tree: dict[str, Any] | None) -> str:
    if not tree:
        return ""
    if not tree.get("uncommitted_files"):
        return f"gateway at commit {tree['commit']}, "
    return (
        f"gateway at commit {tree['commit']} with {tree['uncommitted_files']} files of work in progress"
        f" (digest {tree['uncommitted_digest']}), "
    )


def _maintenance_note(maintenance: dict[str, Any] | None) -> str:
    if not maintenance or maintenance.get("autovacuum") == "on":
        return ""
    return (
        f" The server runs without autovacuum: during the load the harness ran its thresholds itself"
        f" ({maintenance['analyzed']} ANALYZE, {maintenance['vacuumed']} of them with VACUUM)."
    )


def markdown(all_results: dict[str, dict[str, Any]]) -> str:
    lines = [
        MARK_BEGIN,
        "",
        "## Gateway over HTTP: ingest, catalog, detail, lineage (`benchmarks/harness.py`)",
        "",
        "The gateway as production runs it (`asset-gateway serve`: uvicorn, one process, auth on, log level",
        "warning, scheduler off while measuring), loaded with the reference workload (benchmarks/workload.py, seed 42)",
        "through POST /api/v1/lineage, then measured over HTTP by one aiohttp client on the same machine. Targets are",
        "the issue's, for size M on Postgres; the Dagster column is Dagster's reference figure for the same measure.",
        "",
        "Reproduce (Postgres: drops and recreates the database named in `--database-url`, default",
        "`asset_gateway_bench`; SQLite: a file in a temporary folder):",
        "",
        "    .venv/bin/python -m benchmarks.harness --size S --dialect postgresql",
        "    .venv/bin/python -m benchmarks.harness --size S --dialect sqlite",
        "    .venv/bin/python -m benchmarks.harness --size M --dialect postgresql",
        "    .venv/bin/python -m benchmarks.harness --size M --dialect postgresql --max-load-seconds 180"
        "   # load rates only",
        "    .venv/bin/python -m benchmarks.harness --size S --dialect postgresql --label profiled \\",
        "        --profile ingest-single --profile ingest-batch --profile catalog",
    ]
    sizes = list(SIZES)
    order = sorted(
        all_results, key=lambda key: (sizes.index(key.split("-")[0]) if key.split("-")[0] in sizes else 99, key)
    )
    for key in order:
        results = all_results[key]
        load = results.get("load", {})
        database = results.get("database", {})
        workload = results.get("workload", {})
        m = results["machine"]
        v = results["versions"]
        s = results["settings"]
        dialect = "Postgres" if results["dialect"] == "postgresql" else "SQLite"
        label = results.get("label")
        profiled = ", ".join(sorted(results.get("profile", {})))
        lines += [
            "",
            f"### Size {results['size']}, {dialect}" + (f" ({label})" if label else ""),
            "",
            (
                f"`serve --workers {s['workers']}`: the gateway's RSS and CPU are the sums over its processes. "
                if s.get("workers", 1) > 1
                else ""
            )
            + f"Run {results['run_at'][:10]} on {m['cpu']}, {m['cores']} cores, {m['memory']} (load average at the"
            f" start {m.get('load_average', '?')}; the machine is shared: figures are indicative). Python"
            f" {v.get('python')}, uvicorn {v.get('uvicorn')}, Starlette {v.get('starlette')}, Strawberry"
            f" {v.get('strawberry-graphql')}, SQLAlchemy {v.get('sqlalchemy')}, "
            + _tree(results.get("tree"))
            + (
                f"asyncpg {v.get('asyncpg')}, PostgreSQL {database.get('server')} on the same machine"
                f" ({', '.join(f'{k} {val}' for k, val in database.get('settings', {}).items())})."
                if results["dialect"] == "postgresql"
                else f"aiosqlite {v.get('aiosqlite')}, {database.get('server')} (WAL)."
            ),
            "",
            f"Data set: the reference workload `{workload.get('file')}`: {workload.get('assets', 0):,} assets"
            f" ({workload.get('edges', 0):,} declared edges, lineage up to {workload.get('max_depth')} deep),"
            f" {workload.get('events', 0):,} materializations"
            f" ({workload.get('failures', 0):,} failed) in {workload.get('runs', 0):,} workload runs"
            f"{' (each the parent run of its events)' if s.get('parent_runs') else ''}; in the database"
            f" {database.get('runs', 0):,} runs, {database.get('run_assets', 0):,} run_assets,"
            f" {database.get('lineage_edges', 0):,} lineage edges, {database.get('lineage_events', 0):,} stored"
            f" events, {database.get('database_mb', 0):,} MB"
            + (
                f" (with the {load['wide_tree']['events']:,} assets of the wide lineage tree, declared after the load)."
                if "wide_tree" in load
                else "."
            ),
        ]
        declarations = load.get("declarations", {})
        single = load.get("single", {})
        batched = load.get("batched", {})
        cpu: dict[str, dict[str, float]] = results.get("rss", {}).get("cpu", {})

        def busy(phase: str, events: int, cpu: dict[str, dict[str, float]] = cpu) -> str:
            account = cpu.get(phase)
            if not account or not events:
                return ""
            return f"; gateway CPU {account['busy']:.0%} of a core, {1000 * account['cpu_s'] / events:,.1f} ms/event"

        if declarations:
            lines += [
                "",
                f"Load: {declarations['events']:,} JobEvents (the assets) in {declarations['seconds']:,} s"
                f" ({declarations['events_per_s']:,.0f}/s, batches of {declarations.get('batch_size')} at"
                f" c{s['batch_concurrency']}{busy('load: declarations', declarations['events'])});"
                f" {single.get('events', 0):,} RunEvents one per POST at c{s['concurrency']} in"
                f" {single.get('seconds', 0):,} s ({single.get('events_per_s', 0):,.0f}/s"
                f"{busy('load: single POSTs', single.get('events', 0))});"
                f" {batched.get('events', 0):,} RunEvents in batches in {batched.get('seconds', 0):,} s"
                f" ({batched.get('events_per_s', 0):,.0f}/s{busy('load: batches', batched.get('events', 0))});"
                f" total {load.get('total', {}).get('seconds', 0):,} s."
                + (f" One freshness sweep afterwards: {load['sweep']['seconds']} s" if "sweep" in load else "")
                + (
                    f"; VACUUM ANALYZE and CHECKPOINT {load.get('vacuum_analyze_checkpoint_s')} s."
                    if "vacuum_analyze_checkpoint_s" in load
                    else ("." if "sweep" in load else "")
                )
                + _maintenance_note(load.get("maintenance")),
            ]
        partial = load.get("partial")
        if partial:
            lines += [
                "",
                f"**Load rates only**: the batched phases were limited to {s.get('max_load_seconds'):,.0f} s each"
                f" ({partial['loaded_events']:,} of {load['total']['events']:,} events loaded"
                + (
                    "; the materializations of assets not declared yet create them"
                    if declarations.get("events", 0) < workload.get("assets", 0)
                    else ""
                )
                + "). At these rates the whole load would take about"
                f" {partial['expected_full_load_s'] / 60:,.0f} minutes; nothing was measured on the partial data.",
            ]
        if profiled:
            lines += [
                "",
                f"py-spy was attached to the gateway during {profiled} (sampling without pausing it, 100 Hz):"
                " those figures carry its cost.",
            ]
        if partial:
            rows = [row for row in figure_rows(results) if row[0].startswith(("ingest", "gateway RSS"))]
        elif label and profiled:
            rows = [row for row in figure_rows(results) if row[0].startswith(("ingest", "catalog: first"))]
        else:
            rows = figure_rows(results)
        lines += [
            "",
            "| figure | measured | target (M, Postgres) | | raw SQL floor (p50); GraphQL over it | Dagster |",
            "|---|---|---|:-:|---|---|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        other = []
        for name in ("catalog_filtered", "catalog_search", "detail", "materializations"):
            figure = results.get("queries", {}).get(name, {}).get(f"c{s['concurrency']}", {})
            if "rps" in figure:
                other.append(f"{name.replace('_', ' ')} {figure['rps']:,.0f}/s (p50 {_ms(figure['p50_ms'])})")
        if other and not label:
            lines += ["", f"At c{s['concurrency']}: " + "; ".join(other) + "."]
        for phase, report in results.get("profile", {}).items():
            if "self" not in report:
                continue
            top = "; ".join(f"`{name}` {share}%" for name, share in report["self"][:8])
            packages = "; ".join(f"{name} {share}%" for name, share in report["self_by_package"][:6])
            ours = [
                f"`{name}` {share}%"
                for name, share in report.get("project_inclusive", [])
                if "__call__" not in name and not name.startswith(("serve ", "run_transaction "))
            ]
            lines += [
                "",
                f"Profile of the gateway during {phase} (py-spy `--gil`: shares of the {report['samples']:,} samples"
                " in which the gateway ran Python). Self time:",
                f"{top}. By package: {packages}. Inclusive, in the gateway's own code: {'; '.join(ours[:8])}.",
            ]
    lines += [
        "",
        "Latencies are the client's (request sent to response read), after warm-up requests; p50/p95/p99 over "
        "every request of the measure. The raw SQL floor runs the statements the gateway issues for the same "
        "answer (benchmarks/floor.py) straight through the driver (asyncpg, or sqlite3 for SQLite), one "
        "connection, no ORM, no GraphQL, no HTTP.",
        "",
        MARK_END,
    ]
    return "\n".join(lines)


def write_markdown(path: Path, section: str) -> None:
    write_section(path, section, MARK_BEGIN, MARK_END)


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    stored: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return stored


# Command line -----------------------------------------------------------------------------------------------------


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except the empty ones."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, []):
            return action.help or ""
        return super()._get_help_string(action) or ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness",
        description="Load the reference workload into a fresh gateway through its HTTP API and measure ingest, "
        "catalog, asset detail, materializations and lineage over HTTP, with the raw SQL floor and the gateway's "
        "RSS. Results: benchmarks/results/harness.json and a generated section of BENCHMARKS.md.",
        formatter_class=_Help,
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="S", help="S: 10k assets/50k events; M: 100k/500k")
    parser.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--workload",
        type=Path,
        help="a workload file; without it, the size's is generated once into results/workloads/",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_POSTGRES_URL,
        help="Postgres only: the database to DROP and recreate (its name must contain 'bench')",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="of the single POSTs and the c-N figures")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per NDJSON POST")
    parser.add_argument(
        "--batch-concurrency",
        type=int,
        default=1,
        help="NDJSON POSTs in flight (a batch is one transaction: concurrent batches wait on each other's locks)",
    )
    parser.add_argument(
        "--single-events",
        type=int,
        help="at most this many materializations one per POST, the rest in batches; without it a fifth, at most 20,000",
    )
    parser.add_argument(
        "--single-seconds", type=float, default=60.0, help="time limit of the single POSTs; the rest goes in batches"
    )
    parser.add_argument(
        "--max-load-seconds",
        type=float,
        help="stop each batched load phase after this long and only report the load rates (and the expected "
        "duration of the whole load): for a first look at size M",
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query at c1 (4x at c-N)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests before each measure")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time limit of one measure")
    parser.add_argument(
        "--no-parent", action="store_true", help="leave out the parent run facet (the workload's run) of each RunEvent"
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        choices=("ingest-declarations", "ingest-single", "ingest-batch", "catalog"),
        help="attach py-spy to the gateway during this phase (repeatable; catalog is its c-N measure)",
    )
    parser.add_argument(
        "--profile-native", action="store_true", help="with native frames (C, Cython); pauses the gateway per sample"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve --workers N (Postgres); RSS and CPU are then the sums over the processes; file it under --label",
    )
    parser.add_argument(
        "--gateway-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a further gateway setting (a JSON value, else a string), e.g. ingest_writers=4; file it under --label",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the raw SQL floor")
    parser.add_argument("--echo-sql", action="store_true", help="run the gateway with database_echo (SQL in its log)")
    parser.add_argument(
        "--label", help="file the run under this label beside the plain one (e.g. 'profiled'), not in its place"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the settings file afterwards")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="results file (JSON)")
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md", help="where the section goes")
    parser.add_argument("--no-markdown", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the section from the results file")
    return parser.parse_args(argv)


def _gateway_setting(text: str) -> tuple[str, Any]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise SystemExit(f"--gateway-setting {text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown_only:
        write_markdown(args.markdown, markdown(read_results(args.output)))
        return 0
    if args.workers > 1 and (args.dialect != "postgresql" or args.profile or not args.label):
        raise SystemExit("--workers needs --dialect postgresql and a --label, and cannot be profiled")
    workload = args.workload or default_workload_file(RESULTS / "workloads", args.size)
    header = read_header(workload)
    # A file of other dimensions than the size's is filed as "custom", never in the place of a size's figures.
    size = args.size if (header.assets, header.events) == SIZES[args.size] else "custom"
    plan = Plan(
        size=size,
        label=args.label,
        dialect=args.dialect,
        workload=workload,
        database_url=args.database_url,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        batch_concurrency=args.batch_concurrency,
        single_events=args.single_events,
        single_seconds=args.single_seconds,
        max_load_seconds=args.max_load_seconds,
        requests=args.requests,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
        parent=not args.no_parent,
        profile=set(args.profile),
        profile_native=args.profile_native,
        keep=args.keep,
        floor=not args.no_floor,
        echo_sql=args.echo_sql,
        workers=args.workers,
        gateway_settings=dict(_gateway_setting(text) for text in args.gateway_setting),
    )
    results = asyncio.run(run(plan))
    stored = read_results(args.output)
    if args.label:
        results["label"] = args.label
    stored["-".join(part for part in (plan.size, plan.dialect, plan.label) if part)] = results
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({key: results[key] for key in ("load", "queries", "rss") if key in results}, indent=1))
    if not args.no_markdown:
        write_markdown(args.markdown, markdown(stored))
    return 0


if __name__ == "__main__":
    sys.exit(main())
