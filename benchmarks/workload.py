"""The reference benchmark workload: its generator and a streaming reader.

The format is the reference lineage workload's (`lineage-workload`, version 1): JSON Lines, one header line, then
the assets in topological order, then the materializations sorted by time. The generator below reproduces the
reference generator exactly: the same flags give the same bytes (the same seeded `random.Random` calls in the same
order, the same JSON encoding). Sizes used for the figures: S = 10,000 assets / 50,000 events, M = 100,000 /
500,000 (seed 42).

    .venv/bin/python -m benchmarks.workload generate --size S -o ds_S.jsonl --summary
    .venv/bin/python -m benchmarks.workload generate --assets 1000 --events 5000 --seed 7 -o small.jsonl
    .venv/bin/python -m benchmarks.workload summary ds_S.jsonl

Line format (every line a JSON object, "\\n" terminated):

* header: `{"type":"header","format":"lineage-workload","version":1,"seed":42,"assets":N,"events":M,
  "window_start":1735689600.0,"window_end":1738281600.0,"layers":{"source":..,"staging":..,"mart":..,
  "dashboard":..},"generator":"gen_dataset.py"}`; the window is 30 days from 2025-01-01T00:00:00Z.
* asset: `{"type":"asset","id":17,"key":"warehouse/staging/table_000017","asset_type":"table","layer":"staging",
  "owner":"team:data-platform","description":"...","tags":{"domain":"finance","tier":"silver"},"deps":[keys]}`:
  keys are "/"-separated segments (`raw/<domain>/<file|table>_<id>`, `warehouse/staging/table_<id>`,
  `warehouse/analytics/<table|model>_<id>`, `bi/dashboards/dashboard_<id>`); a dependency always has a smaller id.
* materialization: `{"type":"materialization","seq":0,"asset_key":"...","run_id":"<uuid4>","timestamp":1735690012.417,
  "status":"SUCCESS","metadata":{"row_count":1234,"duration_ms":5678,"bytes":99999}}`; a FAILURE carries
  `{"error":"<message>","duration_ms":n}`. Events of one run share its run_id; seq is the line's event number.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

FORMAT = "lineage-workload"
VERSION = 1
GENERATOR = "gen_dataset.py"  # the name the reference generator writes into its header
WINDOW_START = 1735689600.0  # 2025-01-01T00:00:00Z
WINDOW_DAYS = 30
WINDOW_END = WINDOW_START + WINDOW_DAYS * 86400.0

LAYER_FRACTIONS = [("source", 0.30), ("staging", 0.30), ("mart", 0.25), ("dashboard", 0.15)]
DOMAINS = ["finance", "sales", "marketing", "product", "hr", "ops", "support", "growth"]
DOMAINS += ["risk", "logistics", "billing", "identity"]
TEAMS = ["data-platform", "analytics-eng", "finance-data", "growth-analytics", "ml-platform", "bi-team"]
TEAMS += ["revenue-ops", "core-data"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj"]
USERS += ["olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter"]
TIER = {"source": "bronze", "staging": "silver", "mart": "gold", "dashboard": "presentation"}
ERRORS = ["upstream data missing", "schema mismatch: column dropped", "timeout after 3600s"]
ERRORS += ["permission denied on target", "row count check failed", "OOM in transform step"]

EVENT_SKEW = 0.7  # power-law exponent of asset popularity
FAILURE_RATE = 0.03  # probability that a materialization fails

SIZES: dict[str, tuple[int, int]] = {"S": (10_000, 50_000), "M": (100_000, 500_000)}
DEFAULT_SEED = 42


# Reading ------------------------------------------------------------------------------------------------------------


class WorkloadError(ValueError):
    """The file is not a workload of this format, or breaks its order."""


@dataclass(frozen=True)
class Header:
    seed: int
    assets: int
    events: int
    window_start: float
    window_end: float
    layers: dict[str, int]


@dataclass(frozen=True)
class Asset:
    id: int
    key: str
    asset_type: str
    layer: str
    owner: str
    description: str
    tags: dict[str, str]
    deps: tuple[str, ...]


@dataclass(frozen=True)
class Materialization:
    seq: int
    asset_key: str
    run_id: str
    timestamp: float
    status: str  # SUCCESS | FAILURE
    metadata: dict[str, Any]

    @property
    def failed(self) -> bool:
        return self.status == "FAILURE"


def _header(line: bytes, path: Path) -> Header:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise WorkloadError(f"{path}: line 1 is not JSON: {error}") from None
    if not isinstance(record, dict) or record.get("type") != "header":
        raise WorkloadError(f"{path}: the first line is not a header")
    if record.get("format") != FORMAT or record.get("version") != VERSION:
        raise WorkloadError(
            f"{path}: format {record.get('format')!r} version {record.get('version')!r} is not {FORMAT} 1"
        )
    return Header(
        seed=int(record["seed"]),
        assets=int(record["assets"]),
        events=int(record["events"]),
        window_start=float(record["window_start"]),
        window_end=float(record["window_end"]),
        layers={str(name): int(count) for name, count in record["layers"].items()},
    )


def read_header(path: Path) -> Header:
    with path.open("rb") as lines:
        return _header(lines.readline(), path)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as lines:
        next(lines, None)  # the header
        for number, line in enumerate(lines, start=2):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise WorkloadError(f"{path}: line {number} is not JSON: {error}") from None
            if not isinstance(record, dict):
                raise WorkloadError(f"{path}: line {number} is not a JSON object")
            yield number, record


def iter_assets(path: Path) -> Iterator[Asset]:
    """The assets, in file (topological) order, one line at a time."""
    for number, record in _records(path):
        kind = record.get("type")
        if kind == "materialization":
            return
        if kind != "asset":
            raise WorkloadError(f"{path}: line {number} has type {kind!r} among the assets")
        yield Asset(
            id=int(record["id"]),
            key=str(record["key"]),
            asset_type=str(record["asset_type"]),
            layer=str(record["layer"]),
            owner=str(record["owner"]),
            description=str(record["description"]),
            tags={str(name): str(value) for name, value in record["tags"].items()},
            deps=tuple(str(dep) for dep in record["deps"]),
        )


def iter_materializations(path: Path) -> Iterator[Materialization]:
    """The materializations, in file (time) order, one line at a time (the asset lines are skipped)."""
    for number, record in _records(path):
        kind = record.get("type")
        if kind == "asset":
            continue
        if kind != "materialization":
            raise WorkloadError(f"{path}: line {number} has type {kind!r}")
        yield Materialization(
            seq=int(record["seq"]),
            asset_key=str(record["asset_key"]),
            run_id=str(record["run_id"]),
            timestamp=float(record["timestamp"]),
            status=str(record["status"]),
            metadata=dict(record["metadata"]),
        )


@dataclass
class Summary:
    """What a benchmark needs to know of a workload, read in one pass."""

    header: Header
    edges: int = 0
    failures: int = 0
    runs: int = 0
    max_depth: int = 0
    deepest_mart: str | None = None
    deepest_mart_depth: int | None = None
    events_per_asset: Counter[str] = field(default_factory=Counter)
    layer_of: dict[str, str] = field(default_factory=dict)
    depth_of: dict[str, int] = field(default_factory=dict)

    def hot_assets(self, count: int) -> list[tuple[str, int]]:
        return self.events_per_asset.most_common(count)

    def as_json(self) -> dict[str, Any]:
        return {
            "assets": self.header.assets,
            "events": self.header.events,
            "layers": self.header.layers,
            "failures": self.failures,
            "runs": self.runs,
            "assets_with_events": len(self.events_per_asset),
            "top5_hot_assets": self.hot_assets(5),
            "max_depth": self.max_depth,
            "deepest_mart": self.deepest_mart,
            "deepest_mart_depth": self.deepest_mart_depth,
            "edges": self.edges,
        }


def summarize(path: Path) -> Summary:
    summary = Summary(read_header(path))
    depth = summary.depth_of
    marts: list[str] = []
    for asset in iter_assets(path):
        depth[asset.key] = 1 + max(depth[dep] for dep in asset.deps) if asset.deps else 0
        summary.layer_of[asset.key] = asset.layer
        summary.edges += len(asset.deps)
        if asset.layer == "mart":
            marts.append(asset.key)
    runs: set[str] = set()
    for event in iter_materializations(path):
        summary.events_per_asset[event.asset_key] += 1
        summary.failures += event.failed
        runs.add(event.run_id)
    summary.runs = len(runs)
    summary.max_depth = max(depth.values(), default=0)
    if marts:
        summary.deepest_mart = max(marts, key=lambda key: (depth[key], key))
        summary.deepest_mart_depth = depth[summary.deepest_mart]
    return summary


# Generating ---------------------------------------------------------------------------------------------------------


def layer_sizes(n: int) -> list[tuple[str, int]]:
    sizes: list[tuple[str, int]] = []
    remaining = n
    for i, (name, fraction) in enumerate(LAYER_FRACTIONS):
        if i == len(LAYER_FRACTIONS) - 1:
            count = remaining
        else:
            count = max(1, round(n * fraction)) if n >= len(LAYER_FRACTIONS) else (1 if remaining > 0 else 0)
            count = min(count, remaining)
        sizes.append((name, count))
        remaining -= count
    return sizes


def generate_assets(n: int, rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The asset lines (as dicts in line order) and the layer sizes: the reference's calls on `rng`, in its order."""
    width = max(4, len(str(max(n - 1, 0))))
    sizes = layer_sizes(n)
    assets: list[dict[str, Any]] = []
    by_layer: dict[str, list[int]] = {name: [] for name, _ in LAYER_FRACTIONS}

    def pick(pool: list[int], k: int) -> list[int]:
        k = min(k, len(pool))
        return rng.sample(pool, k) if k else []

    asset_id = 0
    for layer, count in sizes:
        for _ in range(count):
            domain = rng.choice(DOMAINS)
            deps: list[int]
            if layer == "source":
                asset_type = "file" if rng.random() < 0.35 else "table"
                key = f"raw/{domain}/{asset_type}_{asset_id:0{width}d}"
                deps = []
            elif layer == "staging":
                asset_type = "table"
                key = f"warehouse/staging/table_{asset_id:0{width}d}"
                k = rng.randint(1, 4)
                earlier = by_layer["staging"]
                if earlier and rng.random() < 0.2:
                    deps = pick(by_layer["source"], k - 1) + pick(earlier, 1)
                else:
                    deps = pick(by_layer["source"], k)
            elif layer == "mart":
                asset_type = "model" if rng.random() < 0.3 else "table"
                key = f"warehouse/analytics/{asset_type}_{asset_id:0{width}d}"
                k = rng.randint(1, 4)
                earlier = by_layer["mart"]
                if earlier and rng.random() < 0.35:
                    # Chained onto a recent mart: lineage deeper than the four layers.
                    recent = earlier[-min(len(earlier), 50) :]
                    chained = rng.randint(1, min(2, k))
                    deps = pick(by_layer["staging"] or by_layer["source"], k - chained) + pick(recent, chained)
                else:
                    deps = pick(by_layer["staging"] or by_layer["source"], k)
            else:
                asset_type = "dashboard"
                key = f"bi/dashboards/dashboard_{asset_id:0{width}d}"
                k = rng.randint(1, 4)
                deps = pick(by_layer["mart"] or by_layer["staging"] or by_layer["source"], k)
            owner = f"team:{rng.choice(TEAMS)}" if rng.random() < 0.6 else f"{rng.choice(USERS)}@example.com"
            assets.append(
                {
                    "type": "asset",
                    "id": asset_id,
                    "key": key,
                    "asset_type": asset_type,
                    "layer": layer,
                    "owner": owner,
                    "description": f"{layer.capitalize()} {asset_type} for the {domain} domain "
                    f"(synthetic asset #{asset_id}).",
                    "tags": {"domain": domain, "tier": TIER[layer]},
                    "deps": sorted(set(deps)),  # ids until every key is known
                }
            )
            by_layer[layer].append(asset_id)
            asset_id += 1
    keys = [asset["key"] for asset in assets]
    for asset in assets:
        asset["deps"] = [keys[dep] for dep in asset["deps"]]
    return assets, dict(sizes)


# An event while generating: (timestamp, asset key, run id, status, metadata); its seq is its place after sorting.
_Event = tuple[float, str, str, str, dict[str, Any]]


def generate_events(assets: list[dict[str, Any]], m: int, rng: random.Random) -> list[_Event]:
    n = len(assets)
    if n == 0 or m == 0:
        return []
    ranking = list(range(n))
    rng.shuffle(ranking)  # ranking[r] is the asset of popularity rank r
    weights = [1.0 / (r + 1) ** EVENT_SKEW for r in range(n)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]

    def pick_asset() -> int:
        return ranking[bisect.bisect_left(cumulative, rng.random() * total)]

    events: list[_Event] = []
    while len(events) < m:
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        moment = rng.uniform(WINDOW_START, WINDOW_END - 3600.0)
        size = min(rng.randint(1, 12), m - len(events))
        for _ in range(size):
            moment += rng.uniform(0.5, 300.0)
            key = assets[pick_asset()]["key"]
            duration = rng.randint(200, 600_000)
            metadata: dict[str, Any]
            if rng.random() < FAILURE_RATE:
                status = "FAILURE"
                metadata = {"error": rng.choice(ERRORS), "duration_ms": duration}
            else:
                status = "SUCCESS"
                row_count = rng.randint(0, 50_000_000)
                metadata = {
                    "row_count": row_count,
                    "duration_ms": duration,
                    "bytes": rng.randint(1_000, 50_000_000_000),
                }
            events.append((round(min(moment, WINDOW_END - 0.001), 3), key, run_id, status, metadata))
    events.sort(key=lambda event: event[0])  # stable: equal times keep their generation order
    return events


def _dump(record: dict[str, Any]) -> str:
    # The reference's encoding: the standard library's, compact, ASCII only.
    return json.dumps(record, separators=(",", ":")) + "\n"


def write_workload(out: IO[str], assets: int, events: int, seed: int) -> tuple[list[dict[str, Any]], list[_Event]]:
    rng = random.Random(seed)
    asset_lines, sizes = generate_assets(assets, rng)
    event_list = generate_events(asset_lines, events, random.Random(seed * 1_000_003 + 7))
    header = {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "seed": seed,
        "assets": len(asset_lines),
        "events": len(event_list),
        "window_start": WINDOW_START,
        "window_end": WINDOW_END,
        "layers": sizes,
        "generator": GENERATOR,
    }
    out.write(_dump(header))
    for asset in asset_lines:
        out.write(_dump(asset))
    for seq, (timestamp, key, run_id, status, metadata) in enumerate(event_list):
        line = {"type": "materialization", "seq": seq, "asset_key": key, "run_id": run_id}
        line.update(timestamp=timestamp, status=status, metadata=metadata)
        out.write(_dump(line))
    return asset_lines, event_list


def generate(path: Path, assets: int, events: int, seed: int = DEFAULT_SEED) -> Path:
    """Write the workload to `path` (through a temporary file, so a partial file never has the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        write_workload(out, assets, events, seed)
    partial.replace(path)
    return path


def workload_file(directory: Path, size: str, seed: int = DEFAULT_SEED) -> Path:
    """The workload of a named size, generated into `directory` the first time."""
    assets, events = SIZES[size]
    path = directory / f"workload-{size}-seed{seed}.jsonl"
    if not path.exists():
        generate(path, assets, events, seed)
    return path


# Command line -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workload",
        description="Generate or summarize the reference lineage workload (JSON Lines, lineage-workload version 1).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a workload; the same flags always give the same bytes")
    gen.add_argument("--size", choices=sorted(SIZES), help="S = 10,000 assets / 50,000 events, M = 100,000 / 500,000")
    gen.add_argument("--assets", type=int, help="number of assets (default 10,000, or the --size's)")
    gen.add_argument("--events", type=int, help="number of materializations (default 50,000, or the --size's)")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 42)")
    gen.add_argument("-o", "--output", default="-", help="output path, '-' for stdout (default)")
    gen.add_argument("--summary", action="store_true", help="also print statistics to stderr")
    summary = commands.add_parser("summary", help="print a workload file's statistics (hot assets, deepest mart)")
    summary.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "summary":
        print(json.dumps(summarize(args.path).as_json(), indent=1))
        return 0
    default_assets, default_events = SIZES[args.size] if args.size else SIZES["S"]
    assets = default_assets if args.assets is None else args.assets
    events = default_events if args.events is None else args.events
    if assets < 1 or events < 0:
        parser.error("--assets must be >= 1 and --events >= 0")
    if args.summary and args.output == "-":
        parser.error("--summary needs -o PATH")
    if args.output == "-":
        write_workload(sys.stdout, assets, events, args.seed)
    else:
        generate(Path(args.output), assets, events, args.seed)
    if args.summary:
        print(json.dumps(summarize(Path(args.output)).as_json(), indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
