"""The asset catalog: filtered, ordered, keyset-paginated lists and their counts."""

from __future__ import annotations

import enum
from operator import attrgetter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.auth import NamespaceGrants
from gateway.orm import Asset, AssetHealth
from gateway.store.asset_filters import AssetFilter, asset_conditions
from gateway.store.asset_records import ASSET_RECORD, AssetRecord
from gateway.store.grants import namespace_clause
from gateway.store.pagination import KeysetOrder, Page, keyset_page
from gateway.store.sql import dialect_name


class AssetOrder(enum.Enum):
    KEY = "KEY"
    NAME = "NAME"
    UPDATED_AT_DESC = "UPDATED_AT_DESC"
    MATERIALIZED_AT_DESC = "MATERIALIZED_AT_DESC"


def _order(
    order: AssetOrder, column: Any, descending: bool, holds_times: bool, nullable: bool
) -> KeysetOrder[AssetRecord]:
    read = attrgetter(column.key)
    return KeysetOrder(order.value, column, Asset.id, descending, holds_times, read, _asset_id, nullable)


def _asset_id(asset: AssetRecord) -> int:
    return asset.id


_ORDERS: dict[AssetOrder, KeysetOrder[AssetRecord]] = {
    AssetOrder.KEY: _order(AssetOrder.KEY, Asset.key, False, False, nullable=False),
    AssetOrder.NAME: _order(AssetOrder.NAME, Asset.name, False, False, nullable=False),
    AssetOrder.UPDATED_AT_DESC: _order(AssetOrder.UPDATED_AT_DESC, Asset.updated_at, True, True, nullable=False),
    AssetOrder.MATERIALIZED_AT_DESC: _order(
        AssetOrder.MATERIALIZED_AT_DESC, Asset.last_materialized_at, True, True, nullable=True
    ),
}


# An alias: the filter's own subqueries on asset_health (health statuses) must not correlate to the page's join.
# Made once: SQLAlchemy keys its statement cache on the alias, which costs far more for a new one per statement.
_HEALTH = aliased(AssetHealth, name="page_health")


async def list_assets(
    session: AsyncSession,
    asset_filter: AssetFilter,
    first: int,
    after: str | None = None,
    order: AssetOrder = AssetOrder.KEY,
    with_health: bool = False,
) -> Page[AssetRecord]:
    """A page of the catalog; `with_health` reads each asset's sweep verdict in the same statement (in
    `Page.columns`: the status, or None when never swept)."""
    statement = select(ASSET_RECORD).where(*asset_conditions(asset_filter, dialect_name(session)))
    if with_health:
        statement = statement.add_columns(_HEALTH.status).outerjoin(_HEALTH, _HEALTH.asset_id == Asset.id)
    return await keyset_page(session, statement, _ORDERS[order], first, after)


async def count_assets(session: AsyncSession, asset_filter: AssetFilter) -> int:
    conditions = asset_conditions(asset_filter, dialect_name(session))
    return (await session.execute(select(func.count()).select_from(Asset).where(*conditions))).scalar_one()


async def count_assets_by_namespace_and_type(
    session: AsyncSession, grants: NamespaceGrants | None = None
) -> list[tuple[str, str | None, int]]:
    rows = await session.execute(
        select(Asset.namespace, Asset.type, func.count())
        .where(Asset.deleted_at.is_(None), namespace_clause(grants, Asset.namespace, dialect_name(session)))
        .group_by(Asset.namespace, Asset.type)
        # NULLs last on both dialects (SQLite would put them first).
        .order_by(Asset.namespace, Asset.type.asc().nulls_last())
    )
    return [(namespace, type_, count) for namespace, type_, count in rows]
