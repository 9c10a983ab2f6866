"""Notifications end to end: FreshnessMonitor.run against a real HTTP receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.database import Database
from gateway.orm import AlertDelivery, MonitorRun
from monitors import freshness as freshness_module
from monitors.config import parse_notifiers, parse_policies
from monitors.freshness import IMMEDIATE_RETRIES, FreshnessMonitor
from monitors.notifiers import SIGNATURE_HEADER, TIMESTAMP_HEADER, build_notifiers
from tests.helpers import free_port
from tests.monitors import alerts_of, materialize, open_alerts, status
from tests.monitors.receiver import Receiver, Request
from tests.store.factories import at, declare

SECRET = "s3cret-for-tests"
ORDERS = "snowflake://acme/analytics.marts.orders"  # namespace snowflake://acme
USERS = "postgres://db:5432/public.users"  # namespace postgres://db:5432


def notifier(name: str, kind: str, url: str, **values: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "url": url, "timeout_seconds": 5, **values}


def make_monitor(
    db: Database, notifiers: list[dict[str, Any]], policies: list[dict[str, Any]] | None = None, **options: Any
) -> FreshnessMonitor:
    hourly = [{"name": "hourly", "selector": {"namespace_prefix": "snowflake://"}, "max_age": "1h"}]
    return FreshnessMonitor(
        db,
        parse_policies(hourly if policies is None else policies),
        build_notifiers(parse_notifiers(notifiers)),
        **options,
    )


async def monitor_runs(db: Database) -> list[MonitorRun]:
    async with db.session() as session:
        return list((await session.scalars(select(MonitorRun).order_by(MonitorRun.id))).all())


async def deliveries(db: Database) -> list[AlertDelivery]:
    async with db.session() as session:
        return list((await session.scalars(select(AlertDelivery).order_by(AlertDelivery.id))).all())


def verify_signature(request: Request, secret: str) -> None:
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    assert abs(int(timestamp) - time.time()) < 300
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER.lower()], f"sha256={expected}")


async def test_one_opened_and_one_resolved_notification_per_episode(
    db: Database, receiver: Receiver, now: datetime
) -> None:
    await declare(db, ORDERS, now=at(-120))
    await materialize(db, ORDERS, at(0), "r1")
    monitor = make_monitor(
        db,
        [
            notifier("hook", "webhook", receiver.url("/hook"), secret=SECRET, headers={"X-Team": "data"}),
            notifier("slack", "slack", receiver.url("/slack")),
        ],
    )
    try:
        await monitor.sync_policies(at(0))
        for minute in (10, 30, 59):
            await monitor.run(at(minute))
        assert receiver.requests == []

        for minute in range(61, 75):
            await monitor.run(at(minute))
        assert await status(db, ORDERS) == "STALE"
        [opened] = receiver.to("/hook")
        [slack_opened] = receiver.to("/slack")

        await materialize(db, ORDERS, at(80), "r2")
        for minute in range(81, 90):
            await monitor.run(at(minute))
        assert await status(db, ORDERS) == "FRESH"
    finally:
        await monitor.aclose()

    [alert] = await alerts_of(db, ORDERS)
    assert (alert.opened_at, alert.resolved_at) == (at(61), at(81))
    hook, slack = receiver.to("/hook"), receiver.to("/slack")
    assert [request.json()["event"] for request in hook] == ["opened", "resolved"]
    assert len(slack) == 2
    assert all(request.method == "POST" and request.status == 200 for request in receiver.requests)

    body = opened.json()
    assert body["alert"] == {
        "id": alert.id,
        "kind": "stale",
        "severity": "warn",
        "openedAt": at(61).isoformat(),
        "resolvedAt": None,
    }
    assert body["asset"] == {"key": ORDERS, "namespace": "snowflake://acme"}
    assert body["text"].startswith(f"STALE {ORDERS}")
    assert (opened.headers["content-type"], opened.headers["x-team"]) == ("application/json", "data")
    resolved = hook[1].json()
    assert (resolved["alert"]["id"], resolved["alert"]["resolvedAt"]) == (alert.id, at(81).isoformat())
    assert resolved["text"] == f"RESOLVED {ORDERS}: no longer stale"
    for request in hook:
        verify_signature(request, SECRET)
        with pytest.raises(AssertionError):
            verify_signature(request, "another secret")

    assert slack_opened.json() == {"text": body["text"]}
    assert slack[1].json() == {"text": resolved["text"]}
    assert SIGNATURE_HEADER.lower() not in slack_opened.headers

    rows = await deliveries(db)
    assert sorted((row.notifier, row.event) for row in rows) == [
        ("hook", "opened"),
        ("hook", "resolved"),
        ("slack", "opened"),
        ("slack", "resolved"),
    ]
    assert all((row.attempts, row.last_error) == (1, None) and row.delivered_at is not None for row in rows)

    runs = await monitor_runs(db)
    assert len(runs) == 3 + 14 + 9
    assert all(run.monitor == "freshness" and run.error is None and run.finished_at for run in runs)
    assert all(run.assets_checked == 1 for run in runs)
    by_time = {run.started_at: run for run in runs}
    assert (by_time[at(61)].alerts_opened, by_time[at(61)].alerts_resolved) == (1, 0)
    assert (by_time[at(81)].alerts_opened, by_time[at(81)].alerts_resolved) == (0, 1)
    assert sum(run.alerts_opened for run in runs) == sum(run.alerts_resolved for run in runs) == 1


async def test_routes_pick_notifiers_by_namespace_and_severity(db: Database, receiver: Receiver, now: datetime) -> None:
    await declare(db, ORDERS, now=at(-120))
    await declare(db, USERS, now=at(-120))
    await materialize(db, ORDERS, at(0), "r1")
    await materialize(db, USERS, at(0), "r2")
    policies = [{"name": "hourly", "selector": {"key_glob": "*"}, "max_age": "1h"}]
    monitor = make_monitor(
        db,
        [
            notifier("snowflake", "webhook", receiver.url("/snowflake"), route={"namespace_prefix": "snowflake://"}),
            notifier("postgres", "webhook", receiver.url("/postgres"), route={"namespace_prefix": "postgres://"}),
            notifier("errors", "webhook", receiver.url("/errors"), route={"min_severity": "error"}),
            notifier("tables", "slack", receiver.url("/tables"), route={"type": "table"}),
        ],
        policies,
    )
    try:
        await monitor.sync_policies(at(0))
        await monitor.run(at(61))  # both stale: 'warn' alerts
        assert [request.json()["asset"]["key"] for request in receiver.to("/snowflake")] == [ORDERS]
        assert [request.json()["asset"]["key"] for request in receiver.to("/postgres")] == [USERS]
        assert receiver.to("/errors") == []
        assert receiver.to("/tables") == []

        await materialize(db, USERS, at(62), "r3", state="FAIL")
        await monitor.run(at(63))  # USERS: stale resolved, failed ('error') opened
    finally:
        await monitor.aclose()
    postgres = [request.json() for request in receiver.to("/postgres")]
    assert sorted((body["alert"]["kind"], body["event"]) for body in postgres) == [
        ("failed", "opened"),
        ("stale", "opened"),
        ("stale", "resolved"),
    ]
    # The stale alert ended because the asset failed: the message must not call it fresh.
    [stale_resolved] = [body for body in postgres if body["event"] == "resolved"]
    assert stale_resolved["text"] == f"RESOLVED {USERS}: no longer stale"
    [failed] = receiver.to("/errors")
    assert (failed.json()["alert"]["kind"], failed.json()["alert"]["severity"]) == ("failed", "error")
    assert failed.json()["asset"]["key"] == USERS
    assert [request.json()["asset"]["key"] for request in receiver.to("/snowflake")] == [ORDERS]
    assert receiver.to("/tables") == []
    assert {row.notifier for row in await deliveries(db)} == {"snowflake", "postgres", "errors"}


async def test_a_failing_receiver_is_retried_later_and_delivered_once(
    db: Database, receiver: Receiver, now: datetime
) -> None:
    await declare(db, ORDERS, now=at(-120))
    await materialize(db, ORDERS, at(0), "r1")
    receiver.failures["/flaky"] = IMMEDIATE_RETRIES  # every immediate attempt of the first run fails
    monitor = make_monitor(
        db,
        [
            notifier("flaky", "webhook", receiver.url("/flaky"), secret=SECRET),
            notifier("steady", "slack", receiver.url("/steady")),
        ],
    )
    first = at(61)
    try:
        await monitor.sync_policies(at(0))
        record = await monitor.run(first)
        assert (record.error, record.alerts_opened, record.assets_checked) == (None, 1, 1)
        assert await status(db, ORDERS) == "STALE"
        assert [request.status for request in receiver.to("/flaky")] == [500] * IMMEDIATE_RETRIES
        assert len(receiver.accepted("/steady")) == 1  # the other notifier is not held up

        [flaky] = [row for row in await deliveries(db) if row.notifier == "flaky"]
        assert (flaky.attempts, flaky.delivered_at) == (1, None)
        assert flaky.last_error is not None
        assert "500" in flaky.last_error
        assert flaky.next_attempt_at > first

        # Not due yet: nothing is sent, however often the monitor runs.
        for seconds in (5, 10, 20):
            record = await monitor.run(first + timedelta(seconds=seconds))
            assert record.error is None
        assert len(receiver.to("/flaky")) == IMMEDIATE_RETRIES

        retry_at = flaky.next_attempt_at
        for offset in (0, 60, 600):
            await monitor.run(retry_at + timedelta(seconds=offset))
    finally:
        await monitor.aclose()
    assert len(receiver.accepted("/flaky")) == 1
    assert len(receiver.to("/flaky")) == IMMEDIATE_RETRIES + 1
    verify_signature(receiver.accepted("/flaky")[0], SECRET)
    [flaky] = [row for row in await deliveries(db) if row.notifier == "flaky"]
    assert (flaky.attempts, flaky.delivered_at, flaky.last_error) == (2, retry_at, None)
    assert len(receiver.to("/steady")) == 1
    assert len(await open_alerts(db, ORDERS)) == 1
    assert all(run.error is None for run in await monitor_runs(db))


async def test_a_receiver_that_is_down_does_not_disturb_the_sweep(db: Database, now: datetime) -> None:
    await declare(db, ORDERS, now=at(-120))
    await materialize(db, ORDERS, at(0), "r1")
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    monitor = make_monitor(db, [notifier("down", "webhook", down, timeout_seconds=2)], max_attempts=2)
    try:
        await monitor.sync_policies(at(0))
        started = time.monotonic()
        record = await monitor.run(at(61))
        assert time.monotonic() - started < 15
        assert (record.error, record.alerts_opened) == (None, 1)
        assert await status(db, ORDERS) == "STALE"
        [row] = await deliveries(db)
        assert (row.attempts, row.delivered_at) == (1, None)
        assert row.last_error is not None
        assert "Connect" in row.last_error

        await monitor.run(row.next_attempt_at)
        [row] = await deliveries(db)
        assert (row.attempts, row.delivered_at) == (2, None)

        # max_attempts reached: later runs leave it alone, and keep sweeping.
        await materialize(db, ORDERS, at(70), "r2")
        record = await monitor.run(at(120))
        assert (record.error, record.alerts_resolved) == (None, 1)
    finally:
        await monitor.aclose()
    rows = await deliveries(db)
    assert [(row.event, row.attempts) for row in rows] == [("opened", 2), ("resolved", 1)]
    assert await status(db, ORDERS) == "FRESH"


async def test_the_log_notifier_logs(db: Database, caplog: pytest.LogCaptureFixture, now: datetime) -> None:
    await declare(db, ORDERS, now=at(-120))
    monitor = make_monitor(db, [{"name": "log", "kind": "log"}])
    try:
        await monitor.sync_policies(at(0))
        with caplog.at_level(logging.WARNING, logger="gateway.alerts"):
            await monitor.run(at(0))
    finally:
        await monitor.aclose()
    [message] = [record for record in caplog.records if record.name == "gateway.alerts"]
    assert message.getMessage().startswith(f"STALE {ORDERS}")
    [row] = await deliveries(db)
    assert row.delivered_at == at(0)


async def test_a_failing_sweep_is_recorded_not_raised(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> None:
    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(freshness_module, "sweep", broken)
    monitor = make_monitor(db, [notifier("hook", "webhook", receiver.url("/hook"))])
    try:
        record = await monitor.run(now)
    finally:
        await monitor.aclose()
    assert record.error == "RuntimeError: the database went away"
    [stored] = await monitor_runs(db)
    assert (stored.error, stored.alerts_opened, stored.finished_at is not None) == (record.error, 0, True)
    assert receiver.requests == []
