"""Prometheus figures of one gateway app, served at /metrics.

Each app owns its CollectorRegistry: create_app may run many times in one process (tests, several apps behind one
server), and prometheus-client's global default registry refuses a second metric of the same name.

Under `serve --workers` each worker counts into prometheus-client's multiprocess files (the variable
PROMETHEUS_MULTIPROC_DIR, set by the parent before the workers start) and /metrics, whichever worker answers it,
sums them: counters and histograms over the workers, last-success times their maximum. Process figures (memory,
CPU) are then left out: they would describe only the worker that answered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

UNMATCHED_ROUTE = "unmatched"
ANONYMOUS_OPERATION = "anonymous"
OTHER_OPERATION = "other"
# Operation names are chosen by clients: past this many distinct ones, new names count as "other", so that a
# client generating names cannot grow the registry (and every scrape) without bound.
MAX_OPERATION_NAMES = 500
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,127}")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INGEST_OUTCOMES = ("accepted", "duplicate", "rejected")


class MonitorResult(Protocol):
    """What a monitor run reports (gateway.orm.MonitorRun)."""

    @property
    def assets_checked(self) -> int | None: ...

    @property
    def alerts_opened(self) -> int | None: ...

    @property
    def alerts_resolved(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...


class ShipperResult(Protocol):
    """What a shipper run reports (shippers.runner.ShipReport)."""

    @property
    def shipped(self) -> int: ...

    @property
    def parked(self) -> int: ...

    @property
    def error(self) -> str | None: ...


class GatewayMetrics:
    def __init__(
        self, monitors: Iterable[str] = (), shippers: Iterable[str] = (), multiprocess_dir: Path | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        registry = self.registry
        if multiprocess_dir is None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time from receiving an HTTP request to the end of its response.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.graphql_operations = Counter(
            "gateway_graphql_operations",
            "GraphQL operations executed, by operation name, type and outcome (ok, or error when any error).",
            ["operation", "type", "outcome"],
            registry=registry,
        )
        self.graphql_latency = Histogram(
            "gateway_graphql_operation_duration_seconds",
            "Time to parse, validate and execute a GraphQL operation.",
            ["operation", "type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ingested_events = Counter(
            "gateway_ingested_events",
            "OpenLineage events received on /api/v1/lineage: accepted (stored), duplicate, rejected (invalid).",
            ["outcome"],
            registry=registry,
        )
        self.monitor_runs = Counter("gateway_monitor_runs", "Monitor runs.", ["monitor"], registry=registry)
        self.monitor_failures = Counter(
            "gateway_monitor_failures", "Monitor runs that ended in an error.", ["monitor"], registry=registry
        )
        self.monitor_assets_checked = Counter(
            "gateway_monitor_assets_checked", "Assets judged by monitor runs.", ["monitor"], registry=registry
        )
        self.monitor_alerts_opened = Counter(
            "gateway_monitor_alerts_opened", "Alerts opened by monitor runs.", ["monitor"], registry=registry
        )
        self.monitor_alerts_resolved = Counter(
            "gateway_monitor_alerts_resolved", "Alerts resolved by monitor runs.", ["monitor"], registry=registry
        )
        self.monitor_last_success = Gauge(
            "gateway_monitor_last_success_timestamp_seconds",
            "Unix time at which the monitor last finished a run without error (0: not since start).",
            ["monitor"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.shipper_shipped = Counter(
            "gateway_shipper_shipped_changes",
            "Changes (or entities, in a full export) accepted by the shipper's target.",
            ["shipper"],
            registry=registry,
        )
        self.shipper_failed_runs = Counter(
            "gateway_shipper_failed_runs", "Shipper runs that stopped on an error.", ["shipper"], registry=registry
        )
        self.shipper_parked_batches = Counter(
            "gateway_shipper_parked_batches",
            "Batches parked (dead-lettered) after failing too many runs.",
            ["shipper"],
            registry=registry,
        )
        self.shipper_last_success = Gauge(
            "gateway_shipper_last_success_timestamp_seconds",
            "Unix time at which the shipper last finished a run without error (0: not since start).",
            ["shipper"],
            registry=registry,
            multiprocess_mode="max",
        )
        self._operation_names: set[str] = set()
        # Series exist from the start, so that rate() and absent() work before the first event or run.
        for outcome in INGEST_OUTCOMES:
            self.ingested_events.labels(outcome)
        for name in monitors:
            for family in (
                self.monitor_runs,
                self.monitor_failures,
                self.monitor_assets_checked,
                self.monitor_alerts_opened,
                self.monitor_alerts_resolved,
            ):
                family.labels(name)
            self.monitor_last_success.labels(name)
        for name in shippers:
            for family in (self.shipper_shipped, self.shipper_failed_runs, self.shipper_parked_batches):
                family.labels(name)
            self.shipper_last_success.labels(name)

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_latency.labels(route, method).observe(seconds)

    def observe_graphql(self, operation: str | None, operation_type: str, ok: bool, seconds: float) -> None:
        name = self._operation_label(operation)
        self.graphql_operations.labels(name, operation_type, "ok" if ok else "error").inc()
        self.graphql_latency.labels(name, operation_type).observe(seconds)

    def _operation_label(self, operation: str | None) -> str:
        if not operation:
            return ANONYMOUS_OPERATION
        if operation in self._operation_names:
            return operation
        # `operationName` is any string a client sends; only a GraphQL name can be a label.
        if len(self._operation_names) >= MAX_OPERATION_NAMES or not _GRAPHQL_NAME.fullmatch(operation):
            return OTHER_OPERATION
        self._operation_names.add(operation)
        return operation

    def count_ingested(self, accepted: int, duplicates: int, rejected: int) -> None:
        for outcome, count in zip(INGEST_OUTCOMES, (accepted, duplicates, rejected), strict=True):
            if count:
                self.ingested_events.labels(outcome).inc(count)

    def monitor_finished(self, name: str, record: MonitorResult | None) -> None:
        """One run of monitor `name`; None when it could not even be recorded (the database was away)."""
        self.monitor_runs.labels(name).inc()
        if record is None or record.error:
            self.monitor_failures.labels(name).inc()
        if record is None:
            return
        self.monitor_assets_checked.labels(name).inc(record.assets_checked or 0)
        self.monitor_alerts_opened.labels(name).inc(record.alerts_opened or 0)
        self.monitor_alerts_resolved.labels(name).inc(record.alerts_resolved or 0)
        if not record.error:
            self.monitor_last_success.labels(name).set(time.time())

    def shipper_finished(self, name: str, report: ShipperResult) -> None:
        self.shipper_shipped.labels(name).inc(report.shipped)
        self.shipper_parked_batches.labels(name).inc(report.parked)
        if report.error:
            self.shipper_failed_runs.labels(name).inc()
        else:
            self.shipper_last_success.labels(name).set(time.time())

    def exposition(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(workers)


async def metrics_endpoint(request: Request) -> Response:
    metrics: GatewayMetrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
