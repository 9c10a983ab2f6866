"""Read side of the API: catalog, asset pages, lineage, executions, jobs, namespaces."""

from __future__ import annotations

import enum
from dataclasses import replace
from datetime import datetime
from typing import Annotated

import strawberry

from gateway.store import catalog, jobs, runs
from gateway.store.asset_filters import AssetFilter
from schema.context import Info
from schema.inputs import AssetFilterInput, ExecutionFilterInput
from schema.types.asset import Asset, assets_of
from schema.types.common import Connection, as_utc, connection_edges, page_size, selects
from schema.types.execution import Execution
from schema.types.job import Job
from schema.types.lineage import LineageDirection, LineageGraph, LineagePath, resolve_lineage, resolve_lineage_path


@strawberry.enum
class AssetOrder(enum.Enum):
    KEY = "KEY"
    NAME = "NAME"
    UPDATED_AT_DESC = "UPDATED_AT_DESC"
    MATERIALIZED_AT_DESC = "MATERIALIZED_AT_DESC"


@strawberry.type
class AssetConnection(Connection[Asset]):
    filter: strawberry.Private[AssetFilter]

    @strawberry.field(description="How many assets match the filter, all pages together.")
    async def total_count(self, info: Info) -> int:
        async with info.context.db.session() as session:
            return await catalog.count_assets(session, self.filter)


@strawberry.type
class TypeCount:
    type: str | None
    count: int


@strawberry.type
class Namespace:
    name: str
    asset_count: int
    types: list[TypeCount]


@strawberry.type
class Query:
    @strawberry.field(description="One asset by key, or by one of its aliases.")
    async def asset(self, info: Info, key: str) -> Asset | None:
        row = await info.context.loaders.asset_by_key.load(key)
        return None if row is None else Asset.from_row(row)

    @strawberry.field(description="The catalog: assets matching a filter, a page at a time.")
    async def assets(
        self,
        info: Info,
        filter: AssetFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
        order_by: AssetOrder = AssetOrder.KEY,
    ) -> AssetConnection:
        asset_filter = replace((filter or AssetFilterInput()).to_filter(), grants=info.context.loaders.grants)
        # The status of every asset of the page comes with the page: one statement, not a second one for health.
        with_health = selects(info, "status")
        async with info.context.db.session() as session:
            page = await catalog.list_assets(
                session, asset_filter, page_size(info, first), after, catalog.AssetOrder(order_by.value), with_health
            )
        if with_health:
            statuses = [status for (status,) in page.columns]
            assets = [Asset.from_row(row, status) for row, status in zip(page.items, statuses, strict=True)]
        else:
            assets = await assets_of(info, page.items)
        by_id = {asset.id: asset for asset in assets}
        edges, page_info = connection_edges(page, lambda row: by_id[row.id])
        return AssetConnection(edges=edges, page_info=page_info, filter=asset_filter)

    @strawberry.field(description="The lineage graph around an asset.")
    async def lineage(
        self,
        info: Info,
        key: str,
        direction: LineageDirection = LineageDirection.BOTH,
        depth: int | None = None,
        as_of: datetime | None = None,
        include_jobs: bool = False,
        limit: int | None = None,
    ) -> LineageGraph:
        return await resolve_lineage(info, key, direction, depth, as_of, include_jobs, limit)

    @strawberry.field(description="The shortest chain of lineage edges between two assets, or null.")
    async def lineage_path(
        self, info: Info, from_key: Annotated[str, strawberry.argument(name="from")], to: str
    ) -> LineagePath | None:
        return await resolve_lineage_path(info, from_key, to)

    @strawberry.field
    async def execution(self, info: Info, run_id: str) -> Execution | None:
        row = await info.context.loaders.run_by_run_id.load(run_id)
        return None if row is None else Execution.from_row(row)

    @strawberry.field(description="Executions, newest event first.")
    async def executions(
        self,
        info: Info,
        filter: ExecutionFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Execution]:
        f = filter or ExecutionFilterInput()
        limit = page_size(info, first)
        run_filter = runs.RunFilter(
            job_namespace=f.job_namespace,
            job_name=f.job_name,
            states=[state.value for state in f.states] if f.states is not None else None,
            after=as_utc(f.after),
            before=as_utc(f.before),
            grants=info.context.loaders.grants,
        )
        async with info.context.db.session() as session:
            page = await runs.list_runs(session, run_filter, limit, after)
        edges, page_info = connection_edges(page, Execution.from_row)
        return Connection(edges=edges, page_info=page_info)

    @strawberry.field
    async def job(self, info: Info, namespace: str, name: str) -> Job | None:
        row = await info.context.loaders.job_by_name.load((namespace, name))
        return None if row is None else Job.from_row(row)

    @strawberry.field(description="Jobs ordered by namespace and name.")
    async def jobs(
        self,
        info: Info,
        namespace: str | None = None,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Job]:
        async with info.context.db.session() as session:
            page = await jobs.list_jobs(
                session, namespace, search, page_size(info, first), after, info.context.loaders.grants
            )
        edges, page_info = connection_edges(page, Job.from_row)
        return Connection(edges=edges, page_info=page_info)

    @strawberry.field(description="Asset namespaces with their asset counts per type.")
    async def namespaces(self, info: Info) -> list[Namespace]:
        async with info.context.db.session() as session:
            rows = await catalog.count_assets_by_namespace_and_type(session, info.context.loaders.grants)
        grouped: dict[str, list[TypeCount]] = {}
        for namespace, type_, count in rows:
            grouped.setdefault(namespace, []).append(TypeCount(type=type_, count=count))
        return [
            Namespace(name=name, asset_count=sum(item.count for item in types), types=types)
            for name, types in grouped.items()
        ]
