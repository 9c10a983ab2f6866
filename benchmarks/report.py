"""What the benchmark scripts share in their reports: latency percentiles and their generated BENCHMARKS.md section."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

HEADER = "# Benchmarks\n\nFigures, not tests: nothing here runs in the test suite.\n"


def percentiles(latencies_ms: Sequence[float], digits: int = 2) -> dict[str, float]:
    if len(latencies_ms) < 2:
        only = latencies_ms[0] if latencies_ms else float("nan")
        return {"p50_ms": only, "p95_ms": only, "p99_ms": only, "mean_ms": only}
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], digits),
        "p95_ms": round(cuts[94], digits),
        "p99_ms": round(cuts[98], digits),
        "mean_ms": round(statistics.fmean(latencies_ms), digits),
    }


def write_section(path: Path, section: str, begin: str, end: str) -> None:
    """Replace the section between `begin` and `end` if it is there, else append it; the rest of the file stays."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if not current:
        current = HEADER
    if begin in current and end in current:
        before, rest = current.split(begin, 1)
        _, after = rest.split(end, 1)
        updated = before + section + after
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(updated, encoding="utf-8")
