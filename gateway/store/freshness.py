"""The stale-asset sweep: set-based SQL over every asset, yielding alert transitions.

Statements run over per-sweep temporary tables, never a Python loop per asset:

1. one pass over the live assets fills the verdict table: the governing policy, the last materialization, the
   verdict for fixed-deadline policies, and what the previous sweep stored (health row, open alerts);
2. learned cadence, only for the assets an `auto` policy governs;
3. AT_RISK: the lowest stale or failed upstream id, spread downstream one lineage hop per statement over the
   assets whose cause changed (a fixed point, so cycles end), instead of every (asset, cause) pair;
4. open and resolve alerts; 5. rewrite asset_health only where the verdict changed.

No INSERT reads the table it writes: the previous state of asset_health and alerts is read once, in step 1.
(An INSERT ... WHERE NOT EXISTS against its own table is quadratic when the planner believes that table is
empty, as it does after an ANALYZE of an empty table: it scans the table again for every row inserted.)
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
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import Alert, Asset, AssetHealth, FreshnessPolicy, LineageEdge, Run, RunAsset
from gateway.store.policies import governing_policy
from gateway.store.sql import dialect_name, epoch_seconds, insert
from gateway.types import Identifier

DEFAULT_TOLERANCE = 1.0
DEFAULT_MIN_HISTORY = 5
CADENCE_WINDOW = 20
BAD = ("STALE", "FAILED")

_metadata = MetaData()


def _temporary(name: str, *columns: Any) -> Table:
    return Table(name, _metadata, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


# No primary key: maintaining its index costs more, on a million rows, than the joins on asset_id save.
_verdicts = _temporary(
    "sweep_verdicts",
    Column("asset_id", Identifier, nullable=False),
    Column("policy_id", Identifier),
    Column("last_epoch", Float),
    Column("expected", Float),
    Column("status", String(16)),
    # What the previous sweep left: its health row, and which kinds of alert are open.
    Column("old_status", String(16)),
    Column("old_policy_id", Identifier),
    Column("old_expected", Float),
    Column("old_cause_id", Identifier),
    Column("open_stale", Integer),
    Column("open_failed", Integer),
)
# One row per policy: what the verdict needs to know about it, joined instead of a CASE per policy.
_policies = _temporary(
    "sweep_policies",
    Column("policy_id", Identifier, primary_key=True, autoincrement=False),
    Column("deadline_epoch", Float),
    Column("severity", String(8)),
    Column("tolerance", Float),
    Column("min_history", Integer),
)
# Assets downstream of a stale or failed one: the lowest such upstream id, and the step that last lowered it.
_risk = _temporary(
    "sweep_risk",
    Column("asset_id", Identifier, primary_key=True, autoincrement=False),
    Column("cause_id", Identifier),
    Column("step", Integer),
    Index("ix_sweep_risk_step", "step"),
)
_TABLES = (_verdicts, _policies, _risk)


def _epoch(session: AsyncSession, column: Any) -> ColumnElement[float]:
    """Seconds since 1970, exact to the millisecond on SQLite too. There `epoch_seconds` goes through
    julianday(), a float of days that puts a whole second some 10 µs off either way: enough to judge a
    materialization made exactly at a cron tick as before it. SQLite keeps times to the millisecond.

    On Postgres, date_part() gives the same value as a double; extract() would compute it as a numeric,
    several times slower over a million rows (and the arithmetic on it, in the cadence windows, too)."""
    if dialect_name(session) == "postgresql":
        return func.date_part("epoch", column, type_=Float)
    seconds = epoch_seconds(session, column)
    return func.round(seconds * 1000.0) / 1000.0  # type: ignore[return-value]


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class SweepResult:
    assets_checked: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


async def _drop_temporary(session: AsyncSession) -> None:
    # Postgres drops them at commit; SQLite keeps them for the connection's life.
    if dialect_name(session) == "sqlite":
        for table in _TABLES:
            await session.execute(text(f"DROP TABLE IF EXISTS temp.{table.name}"))


async def _create_temporary(session: AsyncSession) -> None:
    # No just-in-time compilation here either (gateway/database.py turns it off on every Postgres connection): for
    # the sweep's large CASE expressions it cost about half a second per statement, more than it saved.
    await _drop_temporary(session)
    await session.run_sync(lambda sync: _metadata.create_all(sync.connection(), checkfirst=False))


async def _fill_policies(
    session: AsyncSession, policies: Sequence[FreshnessPolicy], deadlines: dict[int, float]
) -> None:
    rows = [
        {
            "policy_id": policy.id,
            "deadline_epoch": deadlines.get(policy.id),
            "severity": policy.severity,
            "tolerance": policy.tolerance if policy.tolerance is not None else DEFAULT_TOLERANCE,
            "min_history": policy.min_history or DEFAULT_MIN_HISTORY,
        }
        for policy in policies
    ]
    if rows:
        await session.execute(_policies.insert(), rows)


async def _fill_verdicts(session: AsyncSession, policies: Sequence[FreshnessPolicy]) -> int:
    own = FreshnessPolicy.__table__.alias("own")
    previous = AssetHealth.__table__.alias("previous")
    open_alerts = (
        select(
            Alert.asset_id,
            func.max(case((Alert.kind == "stale", 1), else_=0)).label("stale"),
            func.max(case((Alert.kind == "failed", 1), else_=0)).label("failed"),
        )
        .where(Alert.resolved_at.is_(None))
        .group_by(Alert.asset_id)
        .subquery("open_alerts")
    )
    governed = (
        select(
            Asset.id.label("asset_id"),
            governing_policy(policies, own.c.id, dialect_name(session)).label("policy_id"),
            Asset.last_status.label("last_status"),
            _epoch(session, func.coalesce(Asset.last_materialized_at, Asset.created_at)).label("last_epoch"),
            previous.c.status.label("old_status"),
            previous.c.policy_id.label("old_policy_id"),
            previous.c.expected_interval_seconds.label("old_expected"),
            previous.c.cause_asset_id.label("old_cause_id"),
            func.coalesce(open_alerts.c.stale, 0).label("open_stale"),
            func.coalesce(open_alerts.c.failed, 0).label("open_failed"),
        )
        .select_from(Asset)
        .outerjoin(own, own.c.asset_id == Asset.id)
        .outerjoin(previous, previous.c.asset_id == Asset.id)
        .outerjoin(open_alerts, open_alerts.c.asset_id == Asset.id)
        .where(Asset.deleted_at.is_(None))
        # OFFSET 0 keeps the planner from copying the governing-policy CASE into every expression below
        # that uses policy_id: it is evaluated once per asset.
        .offset(0)
        .subquery("governed")
    )
    g, p = governed.c, _policies.c
    # Learned-cadence assets are UNKNOWN until `_learn_cadence` judges them.
    status = case(
        (g.last_status.in_(["FAIL", "ABORT"]), "FAILED"),
        (p.deadline_epoch.is_(None), "UNKNOWN"),
        (g.last_epoch < p.deadline_epoch, "STALE"),
        else_="FRESH",
    )
    columns = ["asset_id", "policy_id", "last_epoch", "status", "old_status", "old_policy_id", "old_expected"]
    columns += ["old_cause_id", "open_stale", "open_failed"]
    rows = (
        select(
            g.asset_id,
            g.policy_id,
            g.last_epoch,
            status,
            g.old_status,
            g.old_policy_id,
            g.old_expected,
            g.old_cause_id,
            g.open_stale,
            g.open_failed,
        )
        .select_from(governed)
        .outerjoin(_policies, p.policy_id == g.policy_id)
    )
    result = await session.execute(_verdicts.insert().from_select(columns, rows))
    return _rowcount(result)


async def _learn_cadence(session: AsyncSession, auto_ids: Sequence[int], now_epoch: float) -> None:
    """Median gap between an asset's recent successful materializations, and how many gaps there were;
    then the verdict of the assets an `auto` policy governs."""
    v = _verdicts.c
    moment = _epoch(session, Run.state_time)

    def newest_first(function: Any) -> Any:
        return function.over(partition_by=RunAsset.asset_id, order_by=Run.state_time.desc())

    # One window: each run's rank from the newest, and the gap back to the run before it.
    recent = (
        select(
            RunAsset.asset_id.label("asset_id"),
            newest_first(func.row_number()).label("rn"),
            (moment - newest_first(func.lead(moment))).label("gap"),
        )
        .select_from(_verdicts)
        .join(RunAsset, RunAsset.asset_id == v.asset_id)
        .join(Run, Run.id == RunAsset.run_id)
        .where(v.policy_id.in_(list(auto_ids)), RunAsset.role == "output", Run.state == "COMPLETE")
        .subquery()
    )
    # The gaps between the newest CADENCE_WINDOW + 1 runs.
    gaps = recent.select().where(recent.c.rn <= CADENCE_WINDOW, recent.c.gap.is_not(None)).subquery()
    ranked = select(
        gaps.c.asset_id,
        gaps.c.gap,
        func.row_number().over(partition_by=gaps.c.asset_id, order_by=gaps.c.gap).label("i"),
        func.count().over(partition_by=gaps.c.asset_id).label("n"),
    ).subquery()
    median = (
        select(ranked.c.asset_id, func.avg(ranked.c.gap).label("median"), func.max(ranked.c.n).label("n"))
        # Floor division (SQLAlchemy 2 compiles `/` on integers as true division): the middle row,
        # or the middle two for an even count.
        .where(ranked.c.i.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2]))
        .group_by(ranked.c.asset_id)
        .subquery()
    )
    p = _policies.c
    enough = median.c.n >= p.min_history
    deadline = literal(now_epoch) - median.c.median * (1 + p.tolerance)
    status = case(
        (v.status == "FAILED", "FAILED"),
        (~enough, "UNKNOWN"),
        (v.last_epoch < deadline, "STALE"),
        else_="FRESH",
    )
    await session.execute(
        update(_verdicts)
        .where(v.asset_id == median.c.asset_id, p.policy_id == v.policy_id)
        .values(expected=median.c.median, status=status)
    )


def _downstream(source: Any, asset_id: Any, cause_id: Any, step: int) -> Any:
    """(downstream asset, lowest cause, step) over the live lineage edges leaving `source`'s assets."""
    return (
        select(LineageEdge.downstream_id, func.min(cause_id), literal(step))
        .select_from(source)
        .join(LineageEdge, and_(LineageEdge.upstream_id == asset_id, LineageEdge.retired_at.is_(None)))
    )


async def _mark_at_risk(session: AsyncSession) -> bool:
    """Assets downstream of a stale or failed asset are at risk; the cause is the lowest id among those
    upstream assets. Each step follows one hop from the assets whose cause the previous step lowered, so the
    work is about one visit per at-risk asset, not one per (asset, upstream cause) pair. False if none."""
    v, r = _verdicts.c, _risk.c
    columns = ["asset_id", "cause_id", "step"]
    roots = _downstream(_verdicts, v.asset_id, v.asset_id, 0).where(v.status.in_(BAD))
    seeded = await session.execute(_risk.insert().from_select(columns, roots.group_by(LineageEdge.downstream_id)))
    if not _rowcount(seeded):
        return False
    step = 0
    while True:
        spread = _downstream(_risk, r.asset_id, r.cause_id, step + 1).where(r.step == step)
        statement = insert(session, _risk).from_select(columns, spread.group_by(LineageEdge.downstream_id))
        statement = statement.on_conflict_do_update(
            index_elements=["asset_id"],
            set_={"cause_id": statement.excluded.cause_id, "step": statement.excluded.step},
            where=statement.excluded.cause_id < r.cause_id,
        )
        if not _rowcount(await session.execute(statement)):
            return True
        step += 1


async def _open_alerts(session: AsyncSession, now: datetime) -> list[int]:
    v, p = _verdicts.c, _policies.c
    severity = case((v.status == "FAILED", "error"), else_=func.coalesce(p.severity, "warn"))
    kind = case((v.status == "STALE", "stale"), else_="failed")
    rows = (
        select(
            v.asset_id,
            kind,
            severity,
            v.policy_id,
            literal(now, Alert.opened_at.type),
            literal({}, Alert.details.type),
        )
        .select_from(_verdicts)
        .outerjoin(_policies, p.policy_id == v.policy_id)
        .where(or_(and_(v.status == "STALE", v.open_stale == 0), and_(v.status == "FAILED", v.open_failed == 0)))
    )
    statement = (
        insert(session, Alert)
        .from_select(["asset_id", "kind", "severity", "policy_id", "opened_at", "details"], rows)
        # An alert opened since the verdicts were read (say, by a concurrent sweep) stays the only one.
        .on_conflict_do_nothing(index_elements=["asset_id", "kind"], index_where=Alert.resolved_at.is_(None))
        .returning(Alert.id)
    )
    return list((await session.scalars(statement)).all())


async def _resolve_alerts(session: AsyncSession, now: datetime) -> list[int]:
    """An open alert ends when its asset's verdict no longer matches its kind, or the asset was deleted."""
    v = _verdicts.c
    ended = or_(
        and_(Alert.kind == "stale", v.open_stale == 1, v.status != "STALE"),
        and_(Alert.kind == "failed", v.open_failed == 1, v.status != "FAILED"),
    )
    resolved: list[int] = []
    for condition in (
        # The verdicts say which assets had an open alert: only those rows are joined.
        and_(Alert.asset_id == v.asset_id, ended),
        Alert.asset_id.in_(select(Asset.id).where(Asset.deleted_at.is_not(None))),
    ):
        statement = (
            update(Alert)
            .where(Alert.resolved_at.is_(None), condition)
            .values(resolved_at=now)
            .returning(Alert.id)
            .execution_options(synchronize_session=False)
        )
        resolved += (await session.scalars(statement)).all()
    return resolved


async def _record_health(session: AsyncSession, now: datetime, at_risk: bool) -> None:
    v, r = _verdicts.c, _risk.c
    source: Any = _verdicts
    status: ColumnElement[Any] = v.status
    cause: ColumnElement[Any] = literal(None, Identifier)
    if at_risk:
        source = _verdicts.outerjoin(_risk, and_(r.asset_id == v.asset_id, v.status.in_(["FRESH", "UNKNOWN"])))
        status = case((r.asset_id.is_not(None), "AT_RISK"), else_=v.status)
        cause = r.cause_id
    changed = (
        select(v.asset_id, status, v.policy_id, v.expected, cause, literal(now, AssetHealth.since.type))
        .select_from(source)
        .where(
            or_(
                status.is_distinct_from(v.old_status),
                v.policy_id.is_distinct_from(v.old_policy_id),
                v.expected.is_distinct_from(v.old_expected),
                cause.is_distinct_from(v.old_cause_id),
            )
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
    # Every live asset has a verdict: the rows left over are those of deleted assets.
    deleted = select(Asset.id).where(Asset.deleted_at.is_not(None))
    await session.execute(
        delete(AssetHealth).where(AssetHealth.asset_id.in_(deleted)).execution_options(synchronize_session=False)
    )


async def sweep(
    session: AsyncSession, policies: Sequence[FreshnessPolicy], deadlines: dict[int, datetime], now: datetime
) -> SweepResult:
    """One sweep at `now`. `deadlines` gives, per max-age or cron policy, the time before which the
    last materialization counts as stale. The caller owns the transaction."""
    result = SweepResult()
    await _create_temporary(session)
    await _fill_policies(session, policies, {pid: moment.timestamp() for pid, moment in deadlines.items()})
    result.assets_checked = await _fill_verdicts(session, policies)
    if dialect_name(session) == "postgresql":
        # A temporary table has no statistics until it is analyzed; the statements below join on it.
        await session.execute(text(f"ANALYZE {_verdicts.name}"))
    auto_ids = [policy.id for policy in policies if policy.kind == "auto"]
    if auto_ids:
        await _learn_cadence(session, auto_ids, now.timestamp())
    at_risk = await _mark_at_risk(session)
    result.opened = await _open_alerts(session, now)
    result.resolved = await _resolve_alerts(session, now)
    await _record_health(session, now, at_risk)
    await _drop_temporary(session)
    return result
