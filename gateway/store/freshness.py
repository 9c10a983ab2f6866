"""The stale-asset sweep: set-based SQL over every asset, yielding alert transitions.

Statements run over a per-sweep temporary table of verdicts, never a Python loop per asset:
governing policy -> learned cadence -> status -> downstream AT_RISK -> open/resolve alerts ->
asset_health rows rewritten only where the verdict changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import Alert, Asset, AssetHealth, FreshnessPolicy, LineageEdge, Run, RunAsset
from gateway.store.policies import governing_policy
from gateway.store.sql import dialect_name, epoch_seconds, insert

DEFAULT_TOLERANCE = 1.0
DEFAULT_MIN_HISTORY = 5
CADENCE_WINDOW = 20

_verdicts = Table(
    "sweep_verdicts",
    MetaData(),
    Column("asset_id", Integer, primary_key=True),
    Column("policy_id", Integer),
    Column("last_status", String(16)),
    Column("last_epoch", Float),
    Column("expected", Float),
    Column("history", Integer),
    Column("deadline_epoch", Float),
    Column("status", String(16)),
    Column("cause_asset_id", Integer),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def _epoch(session: AsyncSession, column: Any) -> ColumnElement[float]:
    """Seconds since 1970, exact to the millisecond on SQLite too. There `epoch_seconds` goes through
    julianday(), a float of days that puts a whole second some 10 µs off either way: enough to judge a
    materialization made exactly at a cron tick as before it. SQLite keeps times to the millisecond."""
    seconds = epoch_seconds(session, column)
    if dialect_name(session) == "sqlite":
        return func.round(seconds * 1000.0) / 1000.0  # type: ignore[return-value]
    return seconds


@dataclass
class SweepResult:
    assets_checked: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


async def _create_verdicts(session: AsyncSession) -> None:
    if dialect_name(session) == "sqlite":
        await session.execute(text("DROP TABLE IF EXISTS temp.sweep_verdicts"))
    await session.run_sync(lambda sync: _verdicts.create(sync.connection()))


async def _fill_verdicts(session: AsyncSession, policies: Sequence[FreshnessPolicy]) -> int:
    own = select(FreshnessPolicy.id).where(FreshnessPolicy.asset_id == Asset.id).scalar_subquery()
    rows = select(
        Asset.id,
        governing_policy(policies, own, dialect_name(session)),
        Asset.last_status,
        _epoch(session, func.coalesce(Asset.last_materialized_at, Asset.created_at)),
    ).where(Asset.deleted_at.is_(None))
    result = await session.execute(
        _verdicts.insert().from_select(["asset_id", "policy_id", "last_status", "last_epoch"], rows)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _learn_cadence(session: AsyncSession, auto_ids: Sequence[int]) -> None:
    """Median gap between an asset's recent successful materializations, and how many gaps there were."""
    v = _verdicts.c
    moment = _epoch(session, Run.state_time)
    recent = (
        select(
            RunAsset.asset_id.label("asset_id"),
            moment.label("t"),
            func.row_number().over(partition_by=RunAsset.asset_id, order_by=Run.state_time.desc()).label("rn"),
        )
        .join(Run, Run.id == RunAsset.run_id)
        .where(
            RunAsset.role == "output",
            Run.state == "COMPLETE",
            RunAsset.asset_id.in_(select(v.asset_id).where(v.policy_id.in_(list(auto_ids)))),
        )
        .subquery()
    )
    gaps = (
        select(
            recent.c.asset_id,
            (recent.c.t - func.lead(recent.c.t).over(partition_by=recent.c.asset_id, order_by=recent.c.rn)).label(
                "gap"
            ),
        )
        .where(recent.c.rn <= CADENCE_WINDOW + 1)
        .subquery()
    )
    ranked = (
        select(
            gaps.c.asset_id,
            gaps.c.gap,
            func.row_number().over(partition_by=gaps.c.asset_id, order_by=gaps.c.gap).label("i"),
            func.count().over(partition_by=gaps.c.asset_id).label("n"),
        )
        .where(gaps.c.gap.is_not(None))
        .subquery()
    )
    median = (
        select(ranked.c.asset_id, func.avg(ranked.c.gap).label("median"), func.max(ranked.c.n).label("n"))
        # Floor division (SQLAlchemy 2 compiles `/` on integers as true division): the middle row,
        # or the middle two for an even count.
        .where(ranked.c.i.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2]))
        .group_by(ranked.c.asset_id)
        .subquery()
    )
    await session.execute(
        update(_verdicts)
        .where(_verdicts.c.asset_id == median.c.asset_id)
        .values(expected=median.c.median, history=median.c.n)
    )


async def _judge(
    session: AsyncSession,
    policies: Sequence[FreshnessPolicy],
    deadlines: dict[int, float],
    now_epoch: float,
) -> None:
    v = _verdicts.c
    fixed = [(v.policy_id == policy_id, literal(deadline)) for policy_id, deadline in deadlines.items()]
    learned = []
    for policy in policies:
        if policy.kind == "auto":
            tolerance = policy.tolerance if policy.tolerance is not None else DEFAULT_TOLERANCE
            minimum = policy.min_history or DEFAULT_MIN_HISTORY
            learned.append(
                (
                    and_(v.policy_id == policy.id, v.history >= minimum),
                    literal(now_epoch) - v.expected * (1 + tolerance),
                )
            )
    whens = fixed + learned
    deadline = case(*whens, else_=None) if whens else literal(None)
    await session.execute(update(_verdicts).values(deadline_epoch=deadline))
    status = case(
        (v.last_status.in_(["FAIL", "ABORT"]), "FAILED"),
        (v.deadline_epoch.is_(None), "UNKNOWN"),
        (v.last_epoch < v.deadline_epoch, "STALE"),
        else_="FRESH",
    )
    await session.execute(update(_verdicts).values(status=status))


async def _mark_at_risk(session: AsyncSession) -> None:
    """Assets downstream of a stale or failed asset are at risk; the cause is that upstream asset."""
    v = _verdicts.c
    roots = (
        select(LineageEdge.downstream_id.label("asset_id"), v.asset_id.label("cause_id"))
        .join(_verdicts, and_(LineageEdge.upstream_id == v.asset_id, LineageEdge.retired_at.is_(None)))
        .where(v.status.in_(["STALE", "FAILED"]))
    )
    risk = roots.cte("risk", recursive=True)
    step = select(LineageEdge.downstream_id, risk.c.cause_id).join(
        risk, and_(LineageEdge.upstream_id == risk.c.asset_id, LineageEdge.retired_at.is_(None))
    )
    risk = risk.union(step)
    causes = select(risk.c.asset_id, func.min(risk.c.cause_id).label("cause_id")).group_by(risk.c.asset_id).subquery()
    await session.execute(
        update(_verdicts)
        .where(v.asset_id == causes.c.asset_id, v.status.in_(["FRESH", "UNKNOWN"]))
        .values(status="AT_RISK", cause_asset_id=causes.c.cause_id)
    )


async def _open_alerts(session: AsyncSession, policies: Sequence[FreshnessPolicy], now: datetime) -> list[int]:
    v = _verdicts.c
    severity = case(
        (v.status == "FAILED", "error"),
        *[(v.policy_id == policy.id, policy.severity) for policy in policies],
        else_="warn",
    )
    kind = case((v.status == "STALE", "stale"), else_="failed")
    rows = select(
        v.asset_id,
        kind,
        severity,
        v.policy_id,
        literal(now, Alert.opened_at.type),
        literal({}, Alert.details.type),
    ).where(v.status.in_(["STALE", "FAILED"]))
    statement = (
        insert(session, Alert)
        .from_select(["asset_id", "kind", "severity", "policy_id", "opened_at", "details"], rows)
        .on_conflict_do_nothing(index_elements=["asset_id", "kind"], index_where=Alert.resolved_at.is_(None))
        .returning(Alert.id)
    )
    return list((await session.scalars(statement)).all())


async def _resolve_alerts(session: AsyncSession, now: datetime) -> list[int]:
    v = _verdicts.c
    still = exists().where(
        v.asset_id == Alert.asset_id, v.status == case((Alert.kind == "stale", "STALE"), else_="FAILED")
    )
    statement = (
        update(Alert)
        .where(Alert.resolved_at.is_(None), ~still)
        .values(resolved_at=now)
        .returning(Alert.id)
        .execution_options(synchronize_session=False)
    )
    return list((await session.scalars(statement)).all())


async def _record_health(session: AsyncSession, now: datetime) -> None:
    v, h = _verdicts.c, AssetHealth.__table__.c
    changed = select(
        v.asset_id, v.status, v.policy_id, v.expected, v.cause_asset_id, literal(now, AssetHealth.since.type)
    ).where(
        ~exists().where(
            h.asset_id == v.asset_id,
            h.status == v.status,
            h.policy_id.is_not_distinct_from(v.policy_id),
            h.expected_interval_seconds.is_not_distinct_from(v.expected),
            h.cause_asset_id.is_not_distinct_from(v.cause_asset_id),
        )
    )
    statement = insert(session, AssetHealth).from_select(
        ["asset_id", "status", "policy_id", "expected_interval_seconds", "cause_asset_id", "since"], changed
    )
    stored, new = AssetHealth.__table__.c, statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["asset_id"],
        set_={
            "status": new.status,
            "policy_id": new.policy_id,
            "expected_interval_seconds": new.expected_interval_seconds,
            "cause_asset_id": new.cause_asset_id,
            "since": case((stored.status == new.status, stored.since), else_=new.since),
        },
    )
    await session.execute(statement)
    await session.execute(delete(AssetHealth).where(~exists().where(v.asset_id == AssetHealth.asset_id)))


async def sweep(
    session: AsyncSession, policies: Sequence[FreshnessPolicy], deadlines: dict[int, datetime], now: datetime
) -> SweepResult:
    """One sweep at `now`. `deadlines` gives, per max-age or cron policy, the time before which the
    last materialization counts as stale. The caller owns the transaction."""
    result = SweepResult()
    await _create_verdicts(session)
    result.assets_checked = await _fill_verdicts(session, policies)
    auto_ids = [policy.id for policy in policies if policy.kind == "auto"]
    if auto_ids:
        await _learn_cadence(session, auto_ids)
    await _judge(session, policies, {pid: moment.timestamp() for pid, moment in deadlines.items()}, now.timestamp())
    await _mark_at_risk(session)
    result.opened = await _open_alerts(session, policies, now)
    result.resolved = await _resolve_alerts(session, now)
    await _record_health(session, now)
    if dialect_name(session) == "sqlite":
        await session.execute(text("DROP TABLE IF EXISTS temp.sweep_verdicts"))
    return result
