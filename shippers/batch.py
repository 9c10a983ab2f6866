"""Turn a set of changed entities into a ChangeBatch of records, with a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import orm
from gateway.store import assets as asset_store
from gateway.store import changes as feed
from gateway.store import jobs as job_store
from gateway.store import runs as run_store
from shippers.records import (
    AssetRecord,
    ChangeBatch,
    DatasetTouchRecord,
    EdgeRecord,
    JobRecord,
    ParentRecord,
    RunRecord,
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

    @classmethod
    def of(cls, changes: Iterable[orm.Change]) -> Touched:
        touched = cls()
        for change in changes:
            {"asset": touched.assets, "run": touched.runs, "job": touched.jobs, "edge": touched.edges}[
                change.entity
            ].add(change.entity_id)
        return touched


def _job(row: orm.Job) -> JobRecord:
    return JobRecord(row.namespace, row.name, row.type, row.description)


async def load_batch(session: AsyncSession, touched: Touched, filters: Filters) -> ChangeBatch:
    runs = await run_store.read_runs_by_ids(session, sorted(touched.runs))
    parents = await run_store.read_runs_by_ids(session, sorted({r.parent_id for r in runs.values() if r.parent_id}))
    touches = await run_store.read_run_assets_by_run_ids(session, sorted(runs))
    edges = await feed.read_edges_by_ids(session, sorted(touched.edges))
    asset_ids = set(touched.assets) | {t.asset_id for rows in touches.values() for t in rows}
    asset_ids |= {e.upstream_id for e in edges} | {e.downstream_id for e in edges}
    assets = await asset_store.read_assets_by_ids(session, sorted(asset_ids))
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
    return batch
