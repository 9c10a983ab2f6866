"""Each keyset list reads its first rows from an index, in order: no sort of every matching row.

An asset's audit log is the worst case: a hot asset has thousands of entries, and a page wants the newest 20 or 100.
The statements are the ones the store sends (caught on their way to the driver), explained by the database itself,
with sorting discouraged (Postgres) so that a sort in the plan means no index can give the order."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database
from gateway.orm import Asset
from gateway.store import alerts, catalog, runs
from gateway.store.asset_filters import AssetFilter
from gateway.store.catalog import AssetOrder
from tests.helpers import caught_statements

Listing = Callable[[AsyncSession], Awaitable[Any]]

LISTINGS: dict[str, Listing] = {
    "audit log": lambda session: runs.list_asset_executions(session, 1, None, 20, None),
    "audit log, outputs": lambda session: runs.list_asset_executions(session, 1, "output", 100, None),
    "alerts": lambda session: alerts.list_alerts(session, alerts.AlertFilter(), 100, None),
    "catalog by key": lambda session: catalog.list_assets(session, AssetFilter(), 100, None, AssetOrder.KEY),
    "catalog by key, with health": lambda session: catalog.list_assets(
        session, AssetFilter(), 100, None, AssetOrder.KEY, with_health=True
    ),
    "catalog by name": lambda session: catalog.list_assets(session, AssetFilter(), 100, None, AssetOrder.NAME),
    "catalog, recently updated": lambda session: catalog.list_assets(
        session, AssetFilter(), 100, None, AssetOrder.UPDATED_AT_DESC
    ),
}


async def _plan(db: Database, listing: Listing) -> list[str]:
    with caught_statements(db.read_engine, lambda sql: sql.lstrip().upper().startswith("SELECT")) as caught:
        async with db.session() as session:
            await listing(session)
    assert len(caught) == 1, caught
    statement, parameters = caught[0]
    async with db.engine.connect() as connection:
        if db.engine.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET enable_sort = off")
            result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            return [str(row[0]) for row in result]
        result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return [str(row[-1]) for row in result]


def _sorts_everything(plan: list[str], dialect: str) -> bool:
    if dialect == "postgresql":
        # "Incremental Sort" orders the rows of equal values the index gives in order: a key's few, not all.
        return any(re.match(r"\s*(->\s+)?Sort\s+\(", line) for line in plan)
    return any("USE TEMP B-TREE FOR ORDER BY" in line for line in plan)


@pytest.mark.parametrize("name", sorted(LISTINGS))
async def test_a_page_reads_its_rows_in_index_order(db: Database, dialect: str, name: str) -> None:
    plan = await _plan(db, LISTINGS[name])
    assert not _sorts_everything(plan, dialect), "\n".join(plan)


async def test_the_check_sees_a_sort(db: Database, dialect: str) -> None:
    # The same check on a list whose order no index gives (assets by when they were created) finds the sort.
    async def by_creation(session: AsyncSession) -> Any:
        return (await session.scalars(select(Asset.id).order_by(Asset.created_at.desc()).limit(10))).all()

    plan = await _plan(db, by_creation)
    assert _sorts_everything(plan, dialect), "\n".join(plan)
