"""What live subscriptions read: the changes of committed transactions, new alerts, and which of a batch of
changed rows a subscription's filter and namespace grants select (one statement per filter and batch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, select, tuple_, union
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import Alert, Asset, AssetAlias, Change, Run, RunAsset
from gateway.store.alerts import AlertFilter, alert_conditions
from gateway.store.asset_filters import AssetFilter, asset_conditions
from gateway.store.changes import START, Cursor
from gateway.store.runs import RunFilter, run_conditions
from gateway.store.sql import dialect_name, one_of


@dataclass(frozen=True)
class ExecutionMatch:
    """The executions filter (with the caller's grants), plus an asset the execution read or wrote (key or alias)."""

    runs: RunFilter
    asset_key: str | None = None


async def read_transaction_changes(
    session: AsyncSession, txids: Sequence[int], after: Cursor, limit: int
) -> list[Change]:
    """Up to `limit` changes of the given (committed) transactions after `after`, in feed order."""
    if not txids:
        return []
    statement = (
        select(Change)
        .where(one_of(session, Change.txid, txids), tuple_(Change.txid, Change.id) > tuple_(*after))
        .order_by(Change.txid, Change.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def read_committed_changes(session: AsyncSession, after: Cursor, limit: int) -> list[Change]:
    """Up to `limit` changes after `after` that are committed now, in feed order, whatever still runs.

    Unlike `changes.read_changes`, a later read may find rows before the last one returned here (a transaction
    older than it that commits later): this read is for delivering early, not for moving a durable cursor.
    """
    statement = select(Change).where(tuple_(Change.txid, Change.id) > tuple_(*after))
    return list((await session.scalars(statement.order_by(Change.txid, Change.id).limit(limit))).all())


async def read_committed_txids_after(session: AsyncSession, after: Cursor) -> set[int]:
    """The transactions with changes after `after` that are committed now."""
    statement = select(Change.txid).where(tuple_(Change.txid, Change.id) > tuple_(*after)).distinct()
    return set((await session.scalars(statement)).all())


async def committed_head(session: AsyncSession) -> Cursor:
    row = (
        await session.execute(select(Change.txid, Change.id).order_by(Change.txid.desc(), Change.id.desc()).limit(1))
    ).first()
    return (int(row[0]), int(row[1])) if row else START


async def latest_alert_id(session: AsyncSession) -> int:
    return int((await session.execute(select(func.coalesce(func.max(Alert.id), 0)))).scalar_one())


async def read_alert_ids_after(session: AsyncSession, after: int, limit: int) -> list[int]:
    rows = await session.scalars(select(Alert.id).where(Alert.id > after).order_by(Alert.id).limit(limit))
    return list(rows.all())


async def match_asset_ids(session: AsyncSession, ids: Sequence[int], asset_filter: AssetFilter) -> set[int]:
    """The ids among `ids` of the assets the filter (with its grants) selects."""
    if not ids:
        return set()
    conditions = asset_conditions(asset_filter, dialect_name(session))
    statement = select(Asset.id).where(one_of(session, Asset.id, ids), *conditions)
    return set((await session.scalars(statement)).all())


def _touches(asset_key: str) -> ColumnElement[bool]:
    named = union(
        select(Asset.id).where(Asset.key == asset_key),
        select(AssetAlias.asset_id).where(AssetAlias.alias == asset_key),
    ).scalar_subquery()
    return exists().where(RunAsset.run_id == Run.id, RunAsset.asset_id.in_(named))


async def match_run_ids(session: AsyncSession, ids: Sequence[int], match: ExecutionMatch) -> set[int]:
    """The ids among `ids` of the runs the filter selects (the grants apply to their jobs' namespaces)."""
    if not ids:
        return set()
    conditions = run_conditions(match.runs, dialect_name(session))
    if match.asset_key is not None:
        conditions.append(_touches(match.asset_key))
    statement = select(Run.id).where(one_of(session, Run.id, ids), *conditions)
    return set((await session.scalars(statement)).all())


async def match_alert_ids(session: AsyncSession, ids: Sequence[int], alert_filter: AlertFilter) -> set[int]:
    """The ids among `ids` of the alerts the filter selects (the grants apply to their assets' namespaces)."""
    if not ids:
        return set()
    conditions = alert_conditions(alert_filter, dialect_name(session))
    statement = select(Alert.id).where(one_of(session, Alert.id, ids), *conditions)
    return set((await session.scalars(statement)).all())
