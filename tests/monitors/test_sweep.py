"""The stale-asset sweep: statuses, alert transitions, deduplication, AT_RISK propagation, cron deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gateway.database import Database
from gateway.orm import Alert, AssetHealth, FreshnessPolicy
from gateway.store.assets import soft_delete_asset
from monitors.deadlines import deadline, deadlines, last_cron_tick
from tests.monitors import add_policy, alerts_of, health, materialize, open_alerts, run_sweep, status
from tests.store.factories import asset, at, declare

HOUR = 3600


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def alert_count(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(Alert))).scalar_one()


# Cron deadlines ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "now", "tick"),
    [
        # 06:00 in Paris is 05:00 UTC in winter (CET) and 04:00 UTC in summer (CEST).
        ("0 6 * * *", "Europe/Paris", "2026-11-02T12:00:00", "2026-11-02T05:00:00"),
        ("0 6 * * *", "Europe/Paris", "2026-11-02T04:59:59", "2026-11-01T05:00:00"),
        ("0 6 * * *", "Europe/Paris", "2026-11-02T05:00:00", "2026-11-02T05:00:00"),
        ("0 6 * * *", "Europe/Paris", "2026-07-01T12:00:00", "2026-07-01T04:00:00"),
        # 06:00 in New York is 11:00 UTC in winter (EST), 10:00 UTC in summer (EDT).
        ("0 6 * * *", "America/New_York", "2026-11-02T12:00:00", "2026-11-02T11:00:00"),
        ("0 6 * * *", "America/New_York", "2026-11-02T10:59:00", "2026-11-01T11:00:00"),
        ("0 6 * * *", "America/New_York", "2026-07-01T12:00:00", "2026-07-01T10:00:00"),
        # Across midnight: at 00:10 Paris time (23:10 UTC) the last 23:30 tick was the evening before.
        ("30 23 * * *", "Europe/Paris", "2026-11-02T23:10:00", "2026-11-02T22:30:00"),
        ("30 23 * * *", "Europe/Paris", "2026-11-02T22:29:00", "2026-11-01T22:30:00"),
        # DST starts in Paris on 2026-03-29 (02:00 -> 03:00): 06:00 that morning is already CEST.
        ("0 6 * * *", "Europe/Paris", "2026-03-29T05:00:00", "2026-03-29T04:00:00"),
        ("0 6 * * *", "Europe/Paris", "2026-03-29T03:59:00", "2026-03-28T05:00:00"),
        # DST ends in Paris on 2026-10-25 (03:00 -> 02:00): 06:00 that morning is CET again.
        ("0 6 * * *", "Europe/Paris", "2026-10-25T06:00:00", "2026-10-25T05:00:00"),
        ("0 6 * * *", "Europe/Paris", "2026-10-25T04:30:00", "2026-10-24T04:00:00"),
        # DST starts in New York on 2026-03-08.
        ("0 6 * * *", "America/New_York", "2026-03-08T11:00:00", "2026-03-08T10:00:00"),
        ("0 6 * * *", "America/New_York", "2026-03-08T09:59:00", "2026-03-07T11:00:00"),
        # A half-hour zone: India's hours start at :30 UTC.
        ("0 * * * *", "Asia/Kolkata", "2026-11-02T12:10:00", "2026-11-02T11:30:00"),
        # Weekdays only: on a Monday morning before 06:00 the last tick was Friday's.
        ("0 6 * * 1-5", "Europe/Paris", "2026-11-02T04:00:00", "2026-10-30T05:00:00"),
    ],
)
def test_last_cron_tick(expression: str, zone: str, now: str, tick: str) -> None:
    assert last_cron_tick(expression, zone, utc(now)) == utc(tick)


async def test_deadlines_per_kind(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.t")
    age = await add_policy(db, "age", "max_age", selector={"tag": "a"}, max_age_seconds=90 * 60)
    cron = await add_policy(db, "cron", "cron", selector={"tag": "b"}, cron="0 6 * * *", timezone="Europe/Paris")
    auto = await add_policy(db, "auto", "auto", selector={"tag": "c"})
    assert deadline(age, now) == now - timedelta(minutes=90)
    assert deadline(cron, now) == utc("2026-11-02T05:00:00")
    assert deadline(auto, now) is None
    assert deadlines([age, cron, auto], now) == {age.id: now - timedelta(minutes=90), cron.id: utc("2026-11-02T05:00")}


async def test_a_policy_that_cannot_be_evaluated_does_not_stop_the_sweep(db: Database, now: datetime) -> None:
    # Written around validation (an older row, a hand edit): only that policy's assets lose their verdict.
    await declare(db, "db://wh/good.t", tags=["good"])
    await declare(db, "db://wh/bad.t", tags=["bad"])
    await materialize(db, "db://wh/good.t", now - timedelta(hours=2), "g1")
    await add_policy(db, "good", "max_age", selector={"tag": "good"}, max_age_seconds=HOUR)
    bad = await add_policy(db, "bad", "cron", selector={"tag": "bad"}, cron="0 6 * * *")
    async with db.transaction() as session:
        stored = await session.get(FreshnessPolicy, bad.id)
        assert stored is not None
        stored.timezone = "Mars/Olympus"
    result = await run_sweep(db, now)
    assert result.assets_checked == 2
    assert await status(db, "db://wh/good.t") == "STALE"
    assert await status(db, "db://wh/bad.t") == "UNKNOWN"


async def test_cron_policy_across_the_paris_dst_change(db: Database) -> None:
    key = "db://wh/daily.report"
    await declare(db, key, now=utc("2026-03-27T00:00:00"))
    await add_policy(
        db, "daily", "cron", now=utc("2026-03-27T00:00:00"), asset_key=key, cron="0 6 * * *", timezone="Europe/Paris"
    )
    await materialize(db, key, utc("2026-03-28T05:30:00"), "r1")  # 06:30 CET on Saturday
    await run_sweep(db, utc("2026-03-29T03:59:00"))  # 05:59 CEST on Sunday: today's 06:00 has not come
    assert await status(db, key) == "FRESH"
    await run_sweep(db, utc("2026-03-29T04:01:00"))  # 06:01 CEST: the update due at 06:00 has not happened
    assert await status(db, key) == "STALE"
    [alert] = await open_alerts(db, key)
    # One second before the tick is still yesterday's data.
    await materialize(db, key, utc("2026-03-29T03:59:59"), "r2")
    await run_sweep(db, utc("2026-03-29T04:02:00"))
    assert await status(db, key) == "STALE"
    # Exactly at the tick counts.
    await materialize(db, key, utc("2026-03-29T04:00:00"), "r3")
    result = await run_sweep(db, utc("2026-03-29T04:05:00"))
    assert await status(db, key) == "FRESH"
    assert result.resolved == [alert.id]
    # The next tick, Monday 06:00 CEST, finds that materialization a day old.
    await run_sweep(db, utc("2026-03-30T03:59:59"))
    assert await status(db, key) == "FRESH"
    await run_sweep(db, utc("2026-03-30T04:00:00"))
    assert await status(db, key) == "STALE"


async def test_cron_policy_in_new_york(db: Database) -> None:
    key = "db://wh/ny.report"
    await declare(db, key, now=utc("2026-11-01T00:00:00"))
    await add_policy(
        db,
        "ny",
        "cron",
        now=utc("2026-11-01T00:00:00"),
        asset_key=key,
        cron="0 6 * * *",
        timezone="America/New_York",
    )
    await materialize(db, key, utc("2026-11-02T10:30:00"), "r1")  # 05:30 EST: after yesterday's 06:00
    await run_sweep(db, utc("2026-11-02T10:59:00"))
    assert await status(db, key) == "FRESH"
    await run_sweep(db, utc("2026-11-02T11:01:00"))  # 06:01 EST
    assert await status(db, key) == "STALE"
    await materialize(db, key, utc("2026-11-02T11:20:00"), "r2")
    await run_sweep(db, utc("2026-11-02T11:21:00"))
    assert await status(db, key) == "FRESH"


async def test_cron_policy_across_midnight(db: Database) -> None:
    on_time, late = "db://wh/nightly.on_time", "db://wh/nightly.late"
    for key in (on_time, late):
        await declare(db, key, tags=["nightly"], now=utc("2026-11-01T00:00:00"))
    await add_policy(
        db,
        "nightly",
        "cron",
        now=utc("2026-11-01T00:00:00"),
        selector={"tag": "nightly"},
        cron="30 23 * * *",
        timezone="Europe/Paris",
    )
    await materialize(db, on_time, utc("2026-11-02T22:40:00"), "r1")  # 23:40 Paris, after the 23:30 tick
    await materialize(db, late, utc("2026-11-02T22:20:00"), "r2")  # 23:20 Paris, before it
    await run_sweep(db, utc("2026-11-02T23:10:00"))  # 00:10 Paris, the next day
    assert (await status(db, on_time), await status(db, late)) == ("FRESH", "STALE")


async def test_max_age_boundary(db: Database, now: datetime) -> None:
    key = "db://wh/a.t"
    await declare(db, key, now=now - timedelta(days=1))
    await add_policy(db, "hourly", "max_age", asset_key=key, max_age_seconds=HOUR)
    await materialize(db, key, now, "r1")
    await run_sweep(db, now + timedelta(hours=1))
    assert await status(db, key) == "FRESH"
    await run_sweep(db, now + timedelta(hours=1, seconds=1))
    assert await status(db, key) == "STALE"


# Transitions and alerts -------------------------------------------------------------------------------------------


async def test_every_transition_opens_and_resolves_the_right_alert(db: Database, now: datetime) -> None:
    key = "db://wh/sales.orders"
    await declare(db, key, now=now - timedelta(hours=2))
    policy = await add_policy(db, "hourly", "max_age", asset_key=key, max_age_seconds=HOUR)
    await materialize(db, key, at(0), "r1")

    result = await run_sweep(db, at(30))
    assert (await status(db, key), result.opened, result.resolved) == ("FRESH", [], [])
    assert await alerts_of(db, key) == []

    # FRESH -> STALE opens a 'stale' alert with the policy's severity.
    result = await run_sweep(db, at(61))
    assert await status(db, key) == "STALE"
    [stale] = await alerts_of(db, key)
    assert result.opened == [stale.id]
    assert (stale.kind, stale.severity, stale.policy_id, stale.opened_at, stale.resolved_at) == (
        "stale",
        "warn",
        policy.id,
        at(61),
        None,
    )

    # The same episode, swept again and again, keeps that one alert.
    for minute in range(62, 82):
        result = await run_sweep(db, at(minute))
        assert (result.opened, result.resolved) == ([], [])
    assert [alert.id for alert in await alerts_of(db, key)] == [stale.id]
    assert await alert_count(db) == 1

    # STALE -> FRESH after a new materialization resolves it.
    await materialize(db, key, at(90), "r2")
    result = await run_sweep(db, at(91))
    assert await status(db, key) == "FRESH"
    assert (result.opened, result.resolved) == ([], [stale.id])
    [resolved] = await alerts_of(db, key)
    assert resolved.resolved_at == at(91)

    # A new episode after recovery is a new alert.
    result = await run_sweep(db, at(151))
    assert await status(db, key) == "STALE"
    first, second = await alerts_of(db, key)
    assert (first.id, second.id) == (stale.id, result.opened[0])
    assert (second.kind, second.resolved_at) == ("stale", None)

    # STALE -> FAILED: the stale alert resolves, a 'failed' alert (severity error) opens.
    await materialize(db, key, at(155), "r3", state="FAIL")
    result = await run_sweep(db, at(156))
    assert await status(db, key) == "FAILED"
    assert result.resolved == [second.id]
    [failed] = await open_alerts(db, key)
    assert result.opened == [failed.id]
    assert (failed.kind, failed.severity, failed.policy_id) == ("failed", "error", policy.id)
    for minute in range(157, 162):
        assert (await run_sweep(db, at(minute))).opened == []

    # FAILED -> FRESH once a later run completes.
    await materialize(db, key, at(170), "r4")
    result = await run_sweep(db, at(171))
    assert await status(db, key) == "FRESH"
    assert (result.opened, result.resolved) == ([], [failed.id])
    assert await open_alerts(db, key) == []
    assert len(await alerts_of(db, key)) == 3


async def test_fresh_to_failed_and_failure_outranks_staleness(db: Database, now: datetime) -> None:
    failing, old_and_failing = "db://wh/a.failing", "db://wh/a.old_and_failing"
    for key in (failing, old_and_failing):
        await declare(db, key, tags=["hourly"], now=now - timedelta(days=1))
    await add_policy(db, "hourly", "max_age", severity="warn", selector={"tag": "hourly"}, max_age_seconds=HOUR)
    await materialize(db, failing, at(0), "r1")
    await materialize(db, old_and_failing, at(-600), "r2")
    await run_sweep(db, at(5))
    assert (await status(db, failing), await status(db, old_and_failing)) == ("FRESH", "STALE")
    await materialize(db, failing, at(10), "r3", state="FAIL")
    await materialize(db, old_and_failing, at(10), "r4", state="ABORT")
    await run_sweep(db, at(11))
    assert (await status(db, failing), await status(db, old_and_failing)) == ("FAILED", "FAILED")
    for key in (failing, old_and_failing):
        [alert] = await open_alerts(db, key)
        assert (alert.kind, alert.severity) == ("failed", "error")


async def test_the_policy_severity_goes_on_stale_alerts(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.critical", tags=["critical"], now=now - timedelta(days=1))
    await add_policy(db, "critical", "max_age", severity="error", selector={"tag": "critical"}, max_age_seconds=HOUR)
    await run_sweep(db, now)  # never materialized: judged from its creation a day ago
    [alert] = await open_alerts(db, "db://wh/a.critical")
    assert (alert.kind, alert.severity) == ("stale", "error")


async def test_since_keeps_the_time_of_the_last_status_change(db: Database, now: datetime) -> None:
    key = "db://wh/a.t"
    await declare(db, key, now=now - timedelta(hours=2))
    await add_policy(db, "hourly", "max_age", asset_key=key, max_age_seconds=HOUR)
    await materialize(db, key, at(0), "r1")
    await run_sweep(db, at(10))
    for minute in range(11, 40, 7):
        await run_sweep(db, at(minute))
        found = await health(db, key)
        assert found is not None
        assert (found.status, found.since) == ("FRESH", at(10))
    await run_sweep(db, at(61))
    for minute in range(62, 100, 9):
        await run_sweep(db, at(minute))
        found = await health(db, key)
        assert found is not None
        assert (found.status, found.since) == ("STALE", at(61))
    await materialize(db, key, at(100), "r2")
    await run_sweep(db, at(101))
    found = await health(db, key)
    assert found is not None
    assert (found.status, found.since) == ("FRESH", at(101))


async def test_assets_without_a_policy_are_unknown_or_failed(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.declared", now=now - timedelta(days=30))
    await materialize(db, "db://wh/a.built", now - timedelta(days=30), "r1")
    await materialize(db, "db://wh/a.broken", now - timedelta(hours=1), "r2", state="FAIL")
    result = await run_sweep(db, now)
    assert result.assets_checked == 3
    for key in ("db://wh/a.declared", "db://wh/a.built"):
        found = await health(db, key)
        assert found is not None
        assert (found.status, found.policy_id) == ("UNKNOWN", None)
        assert await alerts_of(db, key) == []
    assert await status(db, "db://wh/a.broken") == "FAILED"
    [alert] = await alerts_of(db, "db://wh/a.broken")
    assert (alert.kind, alert.severity, alert.policy_id) == ("failed", "error", None)
    assert result.opened == [alert.id]


async def test_a_deleted_assets_open_alert_resolves(db: Database, now: datetime) -> None:
    gone, kept = "db://wh/a.gone", "db://wh/a.kept"
    for key in (gone, kept):
        await declare(db, key, tags=["t"], now=now - timedelta(days=1))
    await add_policy(db, "hourly", "max_age", selector={"tag": "t"}, max_age_seconds=HOUR)
    first = await run_sweep(db, now)
    assert first.assets_checked == 2
    [alert] = await open_alerts(db, gone)
    async with db.transaction() as session:
        await soft_delete_asset(session, gone, now + timedelta(minutes=1))
    result = await run_sweep(db, now + timedelta(minutes=2))
    assert result.assets_checked == 1
    assert result.resolved == [alert.id]
    [resolved] = await alerts_of(db, gone)
    assert resolved.resolved_at == now + timedelta(minutes=2)
    assert await health(db, gone) is None
    assert len(await open_alerts(db, kept)) == 1


# AT_RISK -------------------------------------------------------------------------------------------------------------


async def test_downstream_of_a_stale_asset_is_at_risk_across_hops_and_cycles(db: Database, now: datetime) -> None:
    # src -> mid -> leaf -> x -> y -> leaf (a cycle); `other` stands apart.
    src, mid, leaf, x, y, other = (f"db://wh/g.{name}" for name in ("src", "mid", "leaf", "x", "y", "other"))
    created = now - timedelta(days=1)
    await declare(db, src, now=created)
    await declare(db, mid, upstream_keys=[src], now=created)
    await declare(db, leaf, upstream_keys=[mid], now=created)
    await declare(db, x, upstream_keys=[leaf], now=created)
    await declare(db, y, upstream_keys=[x], now=created)
    await declare(db, leaf, upstream_keys=[mid, y], now=created)
    await declare(db, other, now=created)
    await add_policy(db, "src", "max_age", asset_key=src, max_age_seconds=HOUR)
    await add_policy(db, "mid", "max_age", asset_key=mid, max_age_seconds=HOUR)
    await materialize(db, src, at(0), "r1")
    await materialize(db, mid, at(50), "r2")

    await run_sweep(db, at(30))
    assert [await status(db, key) for key in (src, mid, leaf, x, y, other)] == [
        "FRESH",
        "FRESH",
        "UNKNOWN",
        "UNKNOWN",
        "UNKNOWN",
        "UNKNOWN",
    ]

    result = await run_sweep(db, at(61))
    src_id = (await asset(db, src)).id
    assert await status(db, src) == "STALE"
    for key in (mid, leaf, x, y):  # mid is fresh by its own policy, but its input is stale
        found = await health(db, key)
        assert found is not None
        assert (key, found.status, found.cause_asset_id) == (key, "AT_RISK", src_id)
    other_health = await health(db, other)
    assert other_health is not None
    assert (other_health.status, other_health.cause_asset_id) == ("UNKNOWN", None)
    # Being at risk is not an alert of its own.
    [alert] = await alerts_of(db, src)
    assert result.opened == [alert.id]
    assert await alert_count(db) == 1

    # Retired edges carry no risk: leaf now reads nothing, so leaf, x and y are cut off from src.
    await declare(db, leaf, upstream_keys=[], now=at(62))
    await run_sweep(db, at(63))
    assert [await status(db, key) for key in (mid, leaf, x, y)] == ["AT_RISK", "UNKNOWN", "UNKNOWN", "UNKNOWN"]

    # Once src is fresh again nothing downstream is at risk.
    await materialize(db, src, at(70), "r3")
    await run_sweep(db, at(71))
    found = await health(db, mid)
    assert found is not None
    assert (found.status, found.cause_asset_id) == ("FRESH", None)


async def test_lineage_from_runs_carries_risk_from_a_failed_asset(db: Database, now: datetime) -> None:
    raw, clean, report = "db://wh/r.raw", "db://wh/r.clean", "db://wh/r.report"
    await materialize(db, raw, at(0), "load-1")
    await materialize(db, clean, at(5), "clean-1", inputs=[raw])
    await materialize(db, report, at(10), "report-1", inputs=[clean])
    await materialize(db, raw, at(20), "load-2", state="FAIL")
    await run_sweep(db, at(21))
    raw_id = (await asset(db, raw)).id
    assert await status(db, raw) == "FAILED"
    for key in (clean, report):
        found = await health(db, key)
        assert found is not None
        assert (found.status, found.cause_asset_id) == ("AT_RISK", raw_id)


async def test_the_cause_is_the_lowest_id_root_and_since_survives_a_new_cause(db: Database, now: datetime) -> None:
    a, b, c = "db://wh/m.a", "db://wh/m.b", "db://wh/m.c"
    created = now - timedelta(days=1)
    await declare(db, a, now=created)
    await declare(db, b, now=created)
    await declare(db, c, upstream_keys=[a, b], now=created)
    a_id, b_id = (await asset(db, a)).id, (await asset(db, b)).id
    assert a_id < b_id
    await add_policy(db, "a", "max_age", asset_key=a, max_age_seconds=2 * HOUR)
    await add_policy(db, "b", "max_age", asset_key=b, max_age_seconds=HOUR)
    await materialize(db, a, at(0), "ra")
    await materialize(db, b, at(0), "rb")

    await run_sweep(db, at(61))  # only b is stale
    found = await health(db, c)
    assert found is not None
    assert (found.status, found.cause_asset_id, found.since) == ("AT_RISK", b_id, at(61))

    await run_sweep(db, at(121))  # both are: the lower id is named, the status (and its since) stay
    found = await health(db, c)
    assert found is not None
    assert (found.status, found.cause_asset_id, found.since) == ("AT_RISK", a_id, at(61))


async def test_health_rows_are_rewritten_only_when_the_verdict_changes(db: Database, now: datetime) -> None:
    for index in range(5):
        await declare(db, f"db://wh/h.t{index}", tags=["h"], now=now - timedelta(hours=3))
    await add_policy(db, "h", "max_age", selector={"tag": "h"}, max_age_seconds=HOUR)
    await run_sweep(db, now)

    async def snapshot() -> list[tuple[int, str, datetime]]:
        async with db.session() as session:
            rows = await session.scalars(select(AssetHealth).order_by(AssetHealth.asset_id))
            return [(row.asset_id, row.status, row.since) for row in rows]

    before = await snapshot()
    assert [row[1] for row in before] == ["STALE"] * 5
    for minute in range(1, 6):
        await run_sweep(db, now + timedelta(minutes=minute))
    assert await snapshot() == before
