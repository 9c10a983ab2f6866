"""Turn a set of changed entities into a ChangeBatch of records, with a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from gateway import orm
from gateway.store import assets as asset_store
from gateway.store import changes as feed
from gateway.store import jobs as job_store
from gateway.store import runs as run_store
from gateway.store.lineage import read_column_lineage_by_downstream_ids
from shippers.records import (
    AssetRecord,
    ChangeBatch,
    ColumnLineageRecord,
    DatasetTouchRecord,
    EdgeRecord,
    JobRecord,
    ParentRecord,
    RunRecord,
    Version,
    version_key,
)


@dataclass(frozen=True)
class Filters:
    """Which assets a shipper exports; runs and edges go when one of their assets does."""

    namespace_prefix: str | None = None
    type: str | None = None
    tag: str | None = None

    def admits(self, asset: orm.Asset) -> bool:
        if self.namespace_prefix and not asset.namespace.startswith(self.namespace_prefix):
            return False
        if self.type and asset.type != self.type:
            return False
        return not (self.tag and self.tag not in asset.tags)


@dataclass
class Touched:
    assets: set[int] = field(default_factory=set)
    runs: set[int] = field(default_factory=set)
    jobs: set[int] = field(default_factory=set)
    edges: set[int] = field(default_factory=set)
    # (entity, row id) -> (id, time) of its newest change: the version of the state shipped for it.
    versions: dict[tuple[str, int], tuple[int, datetime]] = field(default_factory=dict)

    @classmethod
    def of(cls, changes: Iterable[orm.Change]) -> Touched:
        touched = cls()
        for change in changes:
            {"asset": touched.assets, "run": touched.runs, "job": touched.jobs, "edge": touched.edges}[
                change.entity
            ].add(change.entity_id)
            key = (change.entity, change.entity_id)
            held = touched.versions.get(key, (change.id, change.changed_at))
            touched.versions[key] = (max(held[0], change.id), max(held[1], change.changed_at))
        return touched

    def version(self, entity: str, row_id: int) -> Version:
        held = self.versions.get((entity, row_id))
        return Version(held[0], held[1]) if held else Version(0)


def _job(row: orm.Job) -> JobRecord:
    return JobRecord(row.namespace, row.name, row.type, row.description)


async def load_batch(session: AsyncSession, touched: Touched, filters: Filters) -> ChangeBatch:
    runs = await run_store.read_runs_by_ids(session, sorted(touched.runs))
    parents = await run_store.read_runs_by_ids(session, sorted({r.parent_id for r in runs.values() if r.parent_id}))
    touches = await run_store.read_run_assets_by_run_ids(session, sorted(runs))
    edges = await feed.read_edges_by_ids(session, sorted(touched.edges))
    asset_ids = set(touched.assets) | {t.asset_id for rows in touches.values() for t in rows}
    asset_ids |= {e.upstream_id for e in edges} | {e.downstream_id for e in edges}
    assets = await asset_store.read_assets_by_ids(session, sorted(touched.assets))
    assets |= await _read_asset_refs(session, sorted(asset_ids - assets.keys()))
    aliases = await asset_store.read_aliases_by_asset_ids(session, sorted(touched.assets))
    job_ids = set(touched.jobs) | {r.job_id for r in (*runs.values(), *parents.values())}
    job_ids |= {e.job_id for e in edges if e.job_id}
    jobs = await job_store.read_jobs_by_ids(session, sorted(job_ids))

    def admitted(asset_id: int) -> bool:
        return asset_id in assets and filters.admits(assets[asset_id])

    batch = ChangeBatch()
    for asset_id in sorted(touched.assets):
        if admitted(asset_id):
            row = assets[asset_id]
            batch.assets.append(
                AssetRecord(
                    key=row.key,
                    namespace=row.namespace,
                    name=row.name,
                    type=row.type,
                    display_name=row.display_name,
                    description=row.description,
                    owners=list(row.owners),
                    tags=list(row.tags),
                    metadata=dict(row.metadata_),
                    fields=list(row.fields),
                    aliases=aliases.get(asset_id, []),
                    updated_at=row.updated_at,
                    last_materialized_at=row.last_materialized_at,
                    deleted_at=row.deleted_at,
                )
            )
    batch.jobs = [_job(jobs[job_id]) for job_id in sorted(touched.jobs) if job_id in jobs]
    for run_id in sorted(runs):
        run = runs[run_id]
        rows = touches.get(run_id, [])
        if rows and not any(admitted(t.asset_id) for t in rows):
            continue
        parent = parents.get(run.parent_id) if run.parent_id else None

        def records(role: str, rows: list[orm.RunAsset] = rows) -> list[DatasetTouchRecord]:
            return [
                DatasetTouchRecord(
                    assets[t.asset_id].key, assets[t.asset_id].namespace, assets[t.asset_id].name, dict(t.facets)
                )
                for t in rows
                if t.role == role
            ]

        batch.runs.append(
            RunRecord(
                run_id=run.run_id,
                job=_job(jobs[run.job_id]),
                state=run.state,
                started_at=run.started_at,
                ended_at=run.ended_at,
                first_event_time=run.first_event_time,
                event_time=run.event_time,
                state_time=run.state_time,
                facets=dict(run.facets),
                error_message=run.error_message,
                parent=ParentRecord(parent.run_id, _job(jobs[parent.job_id])) if parent else None,
                inputs=records("input"),
                outputs=records("output"),
                placeholder=run.placeholder,
            )
        )
    for edge in edges:
        if admitted(edge.upstream_id) or admitted(edge.downstream_id):
            batch.edges.append(
                EdgeRecord(
                    upstream=assets[edge.upstream_id].key,
                    downstream=assets[edge.downstream_id].key,
                    job=_job(jobs[edge.job_id]) if edge.job_id and edge.job_id in jobs else None,
                    origin=edge.origin,
                    first_seen_at=edge.first_seen_at,
                    last_seen_at=edge.last_seen_at,
                    retired_at=edge.retired_at,
                )
            )
    _set_versions(batch, touched, assets, jobs, runs, edges)
    reached = {edge.downstream_id for edge in edges if admitted(edge.upstream_id) or admitted(edge.downstream_id)}
    await _load_upstreams(session, batch, sorted(reached), assets, jobs, filters)
    return batch


def _set_versions(
    batch: ChangeBatch,
    touched: Touched,
    assets: dict[int, orm.Asset],
    jobs: dict[int, orm.Job],
    runs: dict[int, orm.Run],
    edges: list[orm.LineageEdge],
) -> None:
    for asset_id in touched.assets & assets.keys():
        batch.versions[("asset", assets[asset_id].key)] = touched.version("asset", asset_id)
    for job_id in touched.jobs & jobs.keys():
        batch.versions[version_key("job", _job(jobs[job_id]))] = touched.version("job", job_id)
    for run_id, run in runs.items():
        batch.versions[("run", run.run_id)] = touched.version("run", run_id)
    for edge in edges:
        job = jobs.get(edge.job_id) if edge.job_id else None
        identity = (
            assets[edge.upstream_id].key,
            assets[edge.downstream_id].key,
            (job.namespace, job.name) if job else None,
        )
        batch.versions[("edge", identity)] = touched.version("edge", edge.id)


async def _read_asset_refs(session: AsyncSession, ids: list[int]) -> dict[int, orm.Asset]:
    """Assets a batch only names (the ends of its runs and edges): their identity and what the filters read, not
    their descriptions, owners, metadata or schemas. Reading any other attribute of them fails loudly."""
    if not ids:
        return {}
    columns = load_only(orm.Asset.key, orm.Asset.namespace, orm.Asset.name, orm.Asset.type, orm.Asset.tags)
    rows = await session.scalars(select(orm.Asset).options(columns).where(orm.Asset.id.in_(ids)))
    return {asset.id: asset for asset in rows}


async def _load_upstreams(
    session: AsyncSession,
    batch: ChangeBatch,
    downstream_ids: list[int],
    assets: dict[int, orm.Asset],
    jobs: dict[int, orm.Job],
    filters: Filters,
) -> None:
    """`batch.upstreams` and `batch.column_lineage` of the downstreams the batch's edges reach (up to 4 queries).

    An edge goes when either of its assets passes the filters, as in the batch's own edges; column lineage goes
    when its upstream asset is one of the downstream's live upstreams."""
    if not downstream_ids:
        return
    edge = orm.LineageEdge
    live = edge.downstream_id.in_(downstream_ids) & edge.retired_at.is_(None)
    wanted = (edge.upstream_id, edge.downstream_id, edge.job_id, edge.origin, edge.first_seen_at, edge.last_seen_at)
    rows = (await session.execute(select(*wanted).where(live).order_by(edge.id))).all()
    columns = await read_column_lineage_by_downstream_ids(session, downstream_ids)
    assets = assets | await _read_asset_refs(session, sorted({row.upstream_id for row in rows} - assets.keys()))
    jobs = jobs | await job_store.read_jobs_by_ids(
        session, sorted({row.job_id for row in rows if row.job_id is not None} - jobs.keys())
    )
    upstream_ids: dict[int, set[int]] = {downstream_id: set() for downstream_id in downstream_ids}
    for downstream_id in downstream_ids:
        batch.upstreams[assets[downstream_id].key] = []
        batch.names[assets[downstream_id].key] = (assets[downstream_id].namespace, assets[downstream_id].name)
    for row in rows:
        up, down = assets[row.upstream_id], assets[row.downstream_id]
        if not (filters.admits(up) or filters.admits(down)):
            continue
        upstream_ids[row.downstream_id].add(row.upstream_id)
        batch.names[up.key] = (up.namespace, up.name)
        job = jobs.get(row.job_id) if row.job_id is not None else None
        batch.upstreams[down.key].append(
            EdgeRecord(
                upstream=up.key,
                downstream=down.key,
                job=_job(job) if job is not None else None,
                origin=row.origin,
                first_seen_at=row.first_seen_at,
                last_seen_at=row.last_seen_at,
                retired_at=None,
            )
        )
    for downstream_id, derivations in columns.items():
        batch.column_lineage[assets[downstream_id].key] = [
            ColumnLineageRecord(
                downstream=assets[downstream_id].key,
                downstream_field=column.downstream_field,
                upstream=assets[column.upstream_id].key,
                upstream_field=column.upstream_field,
                transformation_type=column.transformation_type,
                transformation_subtype=column.transformation_subtype,
                description=column.description,
            )
            for column in derivations
            if column.upstream_id in upstream_ids[downstream_id]
        ]
