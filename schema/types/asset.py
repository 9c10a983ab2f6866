"""Asset: anything a pipeline reads or writes, with its audit log and its neighbours in the graph."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from types import EllipsisType
from typing import Any

import strawberry
from graphql.pyutils import Undefined, UndefinedType
from strawberry.scalars import JSON

from gateway import orm
from gateway.store import alerts as alert_store
from gateway.store import runs
from gateway.store.asset_records import AssetColumns
from monitors.messages import explain, policy_deadline
from schema.context import Info
from schema.execution import AT_HAND
from schema.loaders import Neighbourhood
from schema.types.common import (
    Connection,
    Role,
    RunState,
    as_json,
    connection_edges,
    page_size,
    reference_field,
    selects,
)
from schema.types.execution import Execution
from schema.types.job import Job
from schema.types.monitoring import Alert, AssetStatus, Freshness, FreshnessPolicy


@strawberry.type(description="A field of an asset's schema (a column of a table, a field of a topic).")
class SchemaField:
    name: str
    type: str | None
    description: str | None


@strawberry.type(description="One entry of an asset's audit log: an execution that read or wrote it.")
class AssetExecution:
    run_pk: strawberry.Private[int]
    role: Role
    event_time: datetime
    facets: JSON
    # The run and its job, when the page read those of all its entries at once (see `Asset.executions`).
    run: strawberry.Private[runs.RunColumns | None] = None
    job: strawberry.Private[orm.Job | None] = None

    def execution_at_hand(self) -> Execution | UndefinedType:
        return Undefined if self.run is None else Execution.from_row(self.run, self.job)

    @strawberry.field(graphql_type=Execution, metadata={AT_HAND: execution_at_hand})
    def execution(self, info: Info) -> Execution | Awaitable[Execution]:
        # Synchronous when the page brought the run: an awaitable per entry costs graphql-core a task each.
        at_hand = self.execution_at_hand()
        return self._load_execution(info) if isinstance(at_hand, UndefinedType) else at_hand

    async def _load_execution(self, info: Info) -> Execution:
        row = await info.context.loaders.run_by_id.load(self.run_pk)
        assert row is not None, "run_assets references runs by foreign key"
        return Execution.from_row(row)


@strawberry.type(description="A field of this asset derived from a field of an upstream asset.")
class ColumnLineageEdge:
    row: strawberry.Private[orm.ColumnLineage]
    downstream_field: str
    upstream_field: str
    transformation_type: str | None
    transformation_subtype: str | None
    description: str | None

    @strawberry.field
    async def upstream(self, info: Info) -> Asset:
        row = await info.context.loaders.asset_by_id.load(self.row.upstream_id)
        assert row is not None
        return Asset.from_row(row)


@strawberry.federation.type(keys=["key"], description="An asset: a table, file, topic, model, dashboard...")
class Asset:
    id: strawberry.Private[int]
    row: strawberry.Private[AssetColumns]
    key: str
    namespace: str
    name: str
    type: str | None
    display_name: str | None
    description: str | None
    owners: list[str]
    tags: list[str]
    metadata: JSON
    created_at: datetime
    updated_at: datetime
    last_materialized_at: datetime | None = strawberry.field(
        description="When a successful execution last wrote this asset."
    )
    last_status: RunState | None = strawberry.field(description="State of the latest execution that wrote it.")
    deleted_at: datetime | None
    # The sweep's verdict, when whoever built this asset read it already (see `assets_of`).
    health_status: strawberry.Private[str | None] = None
    health_known: strawberry.Private[bool] = False

    @classmethod
    def from_row(cls, row: AssetColumns, health_status: str | EllipsisType | None = ...) -> Asset:
        """The asset of `row`; with the sweep's verdict (None: never swept), its status needs no query."""
        return cls(
            id=row.id,
            row=row,
            key=row.key,
            namespace=row.namespace,
            name=row.name,
            type=row.type,
            display_name=row.display_name,
            description=row.description,
            owners=row.owners,
            tags=row.tags,
            metadata=as_json(row.metadata_),
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_materialized_at=row.last_materialized_at,
            last_status=RunState(row.last_status) if row.last_status else None,
            deleted_at=row.deleted_at,
            health_status=None if health_status is ... else health_status,
            health_known=health_status is not ...,
        )

    @classmethod
    async def resolve_reference(cls, info: Info, key: Any = None, **_: Any) -> Asset | None:
        row = await info.context.loaders.asset_by_key.load(reference_field(key, "Asset", "key"))
        return None if row is None else cls.from_row(row)

    @strawberry.field(name="schema", description="The asset's fields, as producers last reported them.")
    async def schema_fields(self, info: Info) -> list[SchemaField]:
        # Records (lists, neighbours) leave the fields out: they are read for the assets that are asked for them.
        at_hand = self.row.fields if isinstance(self.row, orm.Asset) else None
        fields = at_hand if at_hand is not None else await info.context.loaders.fields_by_asset.load(self.id)
        return [
            SchemaField(name=str(field.get("name")), type=field.get("type"), description=field.get("description"))
            for field in fields
        ]

    @strawberry.field(description="Other identifiers of this asset (symlinks, URNs, paths).")
    async def aliases(self, info: Info) -> list[str]:
        return await info.context.loaders.aliases_by_asset.load(self.id)

    @strawberry.field(description="The latest execution that wrote this asset.")
    async def last_execution(self, info: Info) -> Execution | None:
        if self.row.last_run_id is None:
            return None
        row = await info.context.loaders.run_by_id.load(self.row.last_run_id)
        return None if row is None else Execution.from_row(row)

    @strawberry.field(description="The audit log: executions that read or wrote this asset, newest first.")
    async def executions(
        self, info: Info, first: int | None = None, after: str | None = None, role: Role | None = None
    ) -> Connection[AssetExecution]:
        # The runs and jobs the page shows come with it: one statement where there were three, one after the other.
        with_runs = selects(info, "execution")
        with_jobs = with_runs and selects(info, "job")
        async with info.context.db.session() as session:
            page = await runs.list_asset_executions(
                session,
                self.id,
                role.value if role else None,
                page_size(info, first),
                after,
                info.context.loaders.grants,
                with_runs,
                with_jobs,
            )
        by_pk: dict[int, runs.RunRecord] = {}
        jobs: dict[int, orm.Job] = {}
        for run, *job in page.columns:
            by_pk[run.id] = run
            if job:
                jobs[job[0].id] = job[0]
        edges, page_info = connection_edges(
            page,
            lambda row: AssetExecution(
                run_pk=row.run_id,
                role=Role(row.role),
                event_time=row.event_time,
                facets=as_json(row.facets),
                run=(run := by_pk.get(row.run_id)),
                job=jobs.get(run.job_id) if run is not None else None,
            ),
        )
        return Connection(edges=edges, page_info=page_info)

    @strawberry.field(description="Assets this one is derived from, up to `depth` hops.")
    async def upstream(self, info: Info, depth: int = 1) -> list[Asset]:
        return await _neighbours(info, self.id, depth, downstream=False)

    @strawberry.field(description="Assets derived from this one, up to `depth` hops.")
    async def downstream(self, info: Info, depth: int = 1) -> list[Asset]:
        return await _neighbours(info, self.id, depth, downstream=True)

    @strawberry.field(description="Jobs whose executions wrote this asset.")
    async def producers(self, info: Info) -> list[Job]:
        job_ids = await info.context.loaders.producer_jobs_by_asset.load(self.id)
        return [Job.from_row(row) for row in await info.context.loaders.job_by_id.load_many(job_ids) if row]

    @strawberry.field(description="Jobs whose executions read this asset.")
    async def consumers(self, info: Info) -> list[Job]:
        job_ids = await info.context.loaders.consumer_jobs_by_asset.load(self.id)
        return [Job.from_row(row) for row in await info.context.loaders.job_by_id.load_many(job_ids) if row]

    def status_at_hand(self) -> AssetStatus | UndefinedType:
        return AssetStatus(status_of(self.row, self.health_status)) if self.health_known else Undefined

    @strawberry.field(
        graphql_type=AssetStatus,
        description="FRESH, STALE, AT_RISK, FAILED or UNKNOWN, as the latest sweep found.",
        metadata={AT_HAND: status_at_hand},
    )
    def status(self, info: Info) -> AssetStatus | Awaitable[AssetStatus]:
        # Synchronous when the health came with the asset: in a list, an awaitable per item costs graphql-core a
        # task each, several times what the field itself costs. (The execution reads it without this resolver.)
        at_hand = self.status_at_hand()
        return at_hand if isinstance(at_hand, AssetStatus) else self._load_status(info)

    async def _load_status(self, info: Info) -> AssetStatus:
        health = await info.context.loaders.health_by_asset.load(self.id)
        return AssetStatus(status_of(self.row, health.status if health else None))

    @strawberry.field(description="Which freshness policy governs this asset, and what it says now.")
    async def freshness(self, info: Info) -> Freshness:
        loaders = info.context.loaders
        health = await loaders.health_by_asset.load(self.id)
        policy = await loaders.policy_by_asset.load(self.id)
        status = status_of(self.row, health.status if health else None)
        now = info.context.now()
        cause_key = None
        if health is not None and health.cause_asset_id is not None:
            cause = await loaders.asset_by_id.load(health.cause_asset_id)
            cause_key = cause.key if cause else None
        return Freshness(
            policy=FreshnessPolicy.from_row(policy) if policy else None,
            status=AssetStatus(status),
            last_updated=self.row.last_materialized_at,
            deadline=policy_deadline(policy, health, self.row, now),
            stale_since=health.since if health is not None and health.status == "STALE" else None,
            expected_interval_seconds=health.expected_interval_seconds if health else None,
            reason=explain(self.row, policy, health, now, status),
            cause_key=cause_key,
        )

    @strawberry.field(description="This asset's alerts: the open ones, or all of them newest first.")
    async def alerts(self, info: Info, open: bool = True, first: int | None = None) -> list[Alert]:
        if open:
            rows = await info.context.loaders.open_alerts_by_asset.load(self.id)
        else:
            async with info.context.db.session() as session:
                page = await alert_store.list_alerts(
                    session, alert_store.AlertFilter(asset_ids=[self.id]), page_size(info, first), None
                )
            rows = list(page.items)
        return [Alert.from_row(row) for row in rows]

    @strawberry.field(description="Where each field of this asset comes from.")
    async def column_lineage(self, info: Info) -> list[ColumnLineageEdge]:
        rows = await info.context.loaders.column_lineage_by_asset.load(self.id)
        return [
            ColumnLineageEdge(
                row=row,
                downstream_field=row.downstream_field,
                upstream_field=row.upstream_field,
                transformation_type=row.transformation_type,
                transformation_subtype=row.transformation_subtype,
                description=row.description,
            )
            for row in rows
        ]


def status_of(row: AssetColumns, health_status: str | None) -> str:
    """The sweep's verdict; before any sweep, a failed last run still shows."""
    if health_status is not None:
        return health_status
    return "FAILED" if row.last_status in ("FAIL", "ABORT") else "UNKNOWN"


async def _neighbours(info: Info, asset_id: int, depth: int, downstream: bool) -> list[Asset]:
    from schema.types.lineage import check_depth

    depth = check_depth(info, depth)
    loaders = info.context.loaders
    if depth == 1:
        nearest = loaders.downstream_assets_by_asset if downstream else loaders.upstream_assets_by_asset
        return await assets_of(info, await nearest.load(asset_id))
    # Batched: a list of assets asking for their neighbourhoods walks the graph once per level, for all of them.
    max_nodes = info.context.settings.lineage_max_nodes
    ids = await loaders.neighbourhood_ids.load(Neighbourhood(asset_id, downstream, depth, max_nodes))
    return await assets_of(info, [row for row in await loaders.asset_by_id.load_many(ids) if row is not None])


async def assets_of(info: Info, rows: Sequence[AssetColumns]) -> list[Asset]:
    """The assets of `rows`; when the operation asks for a status, their health is read once for all of them."""
    if not rows or not selects(info, "status"):
        return [Asset.from_row(row) for row in rows]
    statuses = await info.context.loaders.health_status_by_asset.load_many([row.id for row in rows])
    return [Asset.from_row(row, status) for row, status in zip(rows, statuses, strict=True)]
