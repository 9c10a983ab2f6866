"""Per-request DataLoaders: every list of rows is fetched in one statement per batch, never per row.

They also apply the caller's namespace grants: a row the caller may not read is never loaded, so every
resolver that goes through a loader (lookups, nested fields, federation `_entities`) sees only granted rows.
With a grant on every namespace this costs nothing; otherwise at most one more statement per batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import partial
from typing import Any, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import orm
from gateway.auth import ANONYMOUS, NamespaceGrants, Principal
from gateway.database import Database
from gateway.store import alerts, asset_records, assets, jobs, lineage, policies, runs
from gateway.store.asset_records import AssetRecord
from schema.batch_loader import BatchLoader, Waves

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
N = TypeVar("N", orm.Asset, AssetRecord, orm.Job)
Read = Callable[[AsyncSession, list[K]], Awaitable[Mapping[K, V]]]


def _loader(waves: Waves, db: Database, read: Read[K, V], default: Any = None) -> BatchLoader[K, V]:
    async def load(keys: list[K]) -> Mapping[K, V]:
        async with db.session() as session:
            return await read(session, keys)

    return BatchLoader(load, default, waves)


class Visibility:
    """Filters loaded rows down to the namespaces the caller may read."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.grants: NamespaceGrants | None = None if principal.sees_everything else principal.grants

    def namespaced(self, read: Read[K, N]) -> Read[K, N]:
        """Rows that carry their own namespace (assets, jobs): keep the readable ones."""
        if self.grants is None:
            return read

        async def visible(session: AsyncSession, keys: list[K]) -> Mapping[K, N]:
            found = await read(session, keys)
            return {key: row for key, row in found.items() if self.principal.can_read(row.namespace)}

        return visible

    def runs(self, read: Read[K, orm.Run]) -> Read[K, orm.Run]:
        if self.grants is None:
            return read

        async def visible(session: AsyncSession, keys: list[K]) -> Mapping[K, orm.Run]:
            found = await read(session, keys)
            readable = await self._readable_jobs(session, [run.job_id for run in found.values()])
            return {key: run for key, run in found.items() if run.job_id in readable}

        return visible

    def run_lists(self, read: Read[K, list[orm.Run]]) -> Read[K, list[orm.Run]]:
        if self.grants is None:
            return read

        async def visible(session: AsyncSession, keys: list[K]) -> Mapping[K, list[orm.Run]]:
            found = await read(session, keys)
            readable = await self._readable_jobs(session, [run.job_id for rows in found.values() for run in rows])
            return {key: [run for run in rows if run.job_id in readable] for key, rows in found.items()}

        return visible

    def job_id_lists(self, read: Read[K, list[int]]) -> Read[K, list[int]]:
        if self.grants is None:
            return read

        async def visible(session: AsyncSession, keys: list[K]) -> Mapping[K, list[int]]:
            found = await read(session, keys)
            readable = await self._readable_jobs(session, [job_id for ids in found.values() for job_id in ids])
            return {key: [job_id for job_id in ids if job_id in readable] for key, ids in found.items()}

        return visible

    def by_asset_id(self, read: Read[K, list[V]], asset_id: Callable[[V], int]) -> Read[K, list[V]]:
        """Lists of rows that point at an asset (run inputs/outputs, column lineage): keep granted assets."""
        if self.grants is None:
            return read

        async def visible(session: AsyncSession, keys: list[K]) -> Mapping[K, list[V]]:
            found = await read(session, keys)
            ids = [asset_id(row) for rows in found.values() for row in rows]
            namespaces = await assets.read_asset_namespaces(session, ids)
            readable = {key for key, namespace in namespaces.items() if self.principal.can_read(namespace)}
            return {key: [row for row in rows if asset_id(row) in readable] for key, rows in found.items()}

        return visible

    def alerts(self, read: Read[K, orm.Alert]) -> Read[K, orm.Alert]:
        if self.grants is None:
            return read

        async def visible(session: AsyncSession, keys: list[K]) -> Mapping[K, orm.Alert]:
            found = await read(session, keys)
            namespaces = await assets.read_asset_namespaces(session, [row.asset_id for row in found.values()])
            return {
                key: row for key, row in found.items() if self.principal.can_read(namespaces.get(row.asset_id, "\x00"))
            }

        return visible

    async def _readable_jobs(self, session: AsyncSession, job_ids: list[int]) -> set[int]:
        namespaces = await jobs.read_job_namespaces(session, job_ids)
        return {job_id for job_id, namespace in namespaces.items() if self.principal.can_read(namespace)}


class Neighbourhood(NamedTuple):
    """The assets up to `depth` hops from one asset, in one direction, within a node budget."""

    asset_id: int
    downstream: bool
    depth: int
    max_nodes: int


class Loaders:
    """Created once per request; a loader's cache lives as long as the request."""

    def __init__(self, db: Database, principal: Principal = ANONYMOUS) -> None:
        self.principal = principal
        # Every loader of the request reads in the same waves (schema/batch_loader.py).
        loader = partial(_loader, Waves(), db)
        see = Visibility(principal)
        self.grants = see.grants
        self.asset_by_id: BatchLoader[int, AssetRecord | None] = loader(
            see.namespaced(asset_records.read_asset_records_by_ids)
        )
        self.asset_by_key: BatchLoader[str, orm.Asset | None] = loader(see.namespaced(assets.read_assets_by_keys))
        self.aliases_by_asset: BatchLoader[int, list[str]] = loader(assets.read_aliases_by_asset_ids, [])
        # Asked for after the asset (visible, then) was read.
        self.fields_by_asset: BatchLoader[int, list[dict[str, Any]]] = loader(asset_records.read_asset_fields, [])
        self.job_by_id: BatchLoader[int, orm.Job | None] = loader(see.namespaced(jobs.read_jobs_by_ids))
        self.job_by_name: BatchLoader[tuple[str, str], orm.Job | None] = loader(see.namespaced(jobs.read_jobs_by_names))
        # A visible job's runs are visible: they are in its namespace.
        self.latest_run_by_job: BatchLoader[int, orm.Run | None] = loader(jobs.read_latest_runs_by_job_ids)
        self.run_by_id: BatchLoader[int, orm.Run | None] = loader(see.runs(runs.read_runs_by_ids))
        self.run_by_run_id: BatchLoader[str, orm.Run | None] = loader(see.runs(runs.read_runs_by_run_ids))
        self.run_assets_by_run: BatchLoader[int, list[orm.RunAsset]] = loader(
            see.by_asset_id(runs.read_run_assets_by_run_ids, lambda row: row.asset_id), []
        )
        self.children_by_run: BatchLoader[int, list[orm.Run]] = loader(see.run_lists(runs.read_children_by_run_ids), [])
        self.producer_jobs_by_asset: BatchLoader[int, list[int]] = loader(
            see.job_id_lists(_job_ids_by_role("output")), []
        )
        self.consumer_jobs_by_asset: BatchLoader[int, list[int]] = loader(
            see.job_id_lists(_job_ids_by_role("input")), []
        )
        # The direct neighbours themselves, read with their edges (one statement, not edges then assets).
        self.upstream_assets_by_asset: BatchLoader[int, list[AssetRecord]] = loader(
            _neighbour_assets(False, see.grants), []
        )
        self.downstream_assets_by_asset: BatchLoader[int, list[AssetRecord]] = loader(
            _neighbour_assets(True, see.grants), []
        )
        self.neighbourhood_ids: BatchLoader[Neighbourhood, list[int]] = loader(_neighbourhoods(see.grants), [])
        self.health_by_asset: BatchLoader[int, orm.AssetHealth | None] = loader(alerts.read_health_by_asset_ids)
        self.health_status_by_asset: BatchLoader[int, str | None] = loader(alerts.read_health_status_by_asset_ids)
        self.open_alerts_by_asset: BatchLoader[int, list[orm.Alert]] = loader(alerts.read_open_alerts_by_asset_ids, [])
        self.alert_by_id: BatchLoader[int, orm.Alert | None] = loader(see.alerts(alerts.read_alerts_by_ids))
        self.deliveries_by_alert: BatchLoader[int, list[orm.AlertDelivery]] = loader(
            alerts.read_deliveries_by_alert_ids, []
        )
        self.policy_by_asset: BatchLoader[int, orm.FreshnessPolicy | None] = loader(self._governing_policies)
        self._db = db
        self._policies: list[orm.FreshnessPolicy] | None = None
        self.column_lineage_by_asset: BatchLoader[int, list[orm.ColumnLineage]] = loader(
            see.by_asset_id(lineage.read_column_lineage_by_downstream_ids, lambda row: row.upstream_id), []
        )

    async def all_policies(self) -> list[orm.FreshnessPolicy]:
        """Every policy, read once per request (there are few)."""
        if self._policies is None:
            async with self._db.session() as session:
                self._policies = await policies.list_policies(session)
        return self._policies

    async def _governing_policies(
        self, session: AsyncSession, asset_ids: list[int]
    ) -> Mapping[int, orm.FreshnessPolicy | None]:
        known = await self.all_policies()
        by_id = {policy.id: policy for policy in known}
        governing = await policies.governing_policy_ids(session, asset_ids, known)
        return {asset_id: by_id.get(policy_id) if policy_id else None for asset_id, policy_id in governing.items()}


def _job_ids_by_role(role: str) -> Read[int, list[int]]:
    async def read(session: AsyncSession, asset_ids: list[int]) -> Mapping[int, list[int]]:
        return await runs.read_producer_consumer_job_ids(session, asset_ids, role)

    return read


def _neighbour_assets(downstream: bool, grants: NamespaceGrants | None) -> Read[int, list[AssetRecord]]:
    async def read(session: AsyncSession, asset_ids: list[int]) -> Mapping[int, list[AssetRecord]]:
        return await lineage.read_neighbour_assets(session, asset_ids, downstream, grants)

    return read


def _neighbourhoods(grants: NamespaceGrants | None) -> Read[Neighbourhood, list[int]]:
    """Every asset's walk of one batch together: one statement per level, not one per level and asset."""

    async def read(session: AsyncSession, wanted: list[Neighbourhood]) -> Mapping[Neighbourhood, list[int]]:
        walks: dict[tuple[bool, int, int], list[int]] = {}
        for key in wanted:
            walks.setdefault((key.downstream, key.depth, key.max_nodes), []).append(key.asset_id)
        found: dict[Neighbourhood, list[int]] = {}
        for (downstream, depth, max_nodes), asset_ids in walks.items():
            direction = lineage.Direction.DOWNSTREAM if downstream else lineage.Direction.UPSTREAM
            results = await lineage.traverse_lineage_many(
                session, asset_ids, direction, depth, max_nodes, grants=grants
            )
            for asset_id, result in results.items():
                nodes = [node for node in result.node_ids if node != asset_id]
                found[Neighbourhood(asset_id, downstream, depth, max_nodes)] = nodes
        return found

    return read
