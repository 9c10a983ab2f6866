"""Per-request DataLoaders: every list of rows is fetched in one statement per batch, never per row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from gateway import orm
from gateway.auth import ANONYMOUS, Principal
from gateway.database import Database
from gateway.store import alerts, assets, jobs, lineage, policies, runs

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _loader(
    db: Database, read: Callable[[AsyncSession, list[K]], Awaitable[Mapping[K, V]]], default: Any = None
) -> DataLoader[K, V]:
    async def load(keys: Sequence[K]) -> list[V]:
        async with db.session() as session:
            found = await read(session, list(keys))
        return [found.get(key, default) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """Created once per request; a loader's cache lives as long as the request."""

    def __init__(self, db: Database, principal: Principal = ANONYMOUS) -> None:
        self.principal = principal
        self.asset_by_id: DataLoader[int, orm.Asset | None] = _loader(db, assets.read_assets_by_ids)
        self.asset_by_key: DataLoader[str, orm.Asset | None] = _loader(db, assets.read_assets_by_keys)
        self.aliases_by_asset: DataLoader[int, list[str]] = _loader(db, assets.read_aliases_by_asset_ids, [])
        self.job_by_id: DataLoader[int, orm.Job | None] = _loader(db, jobs.read_jobs_by_ids)
        self.job_by_name: DataLoader[tuple[str, str], orm.Job | None] = _loader(db, jobs.read_jobs_by_names)
        self.latest_run_by_job: DataLoader[int, orm.Run | None] = _loader(db, jobs.read_latest_runs_by_job_ids)
        self.run_by_id: DataLoader[int, orm.Run | None] = _loader(db, runs.read_runs_by_ids)
        self.run_by_run_id: DataLoader[str, orm.Run | None] = _loader(db, runs.read_runs_by_run_ids)
        self.run_assets_by_run: DataLoader[int, list[orm.RunAsset]] = _loader(db, runs.read_run_assets_by_run_ids, [])
        self.children_by_run: DataLoader[int, list[orm.Run]] = _loader(db, runs.read_children_by_run_ids, [])
        self.producer_jobs_by_asset: DataLoader[int, list[int]] = _loader(db, _job_ids_by_role("output"), [])
        self.consumer_jobs_by_asset: DataLoader[int, list[int]] = _loader(db, _job_ids_by_role("input"), [])
        self.upstream_ids_by_asset: DataLoader[int, list[int]] = _loader(db, _neighbours(downstream=False), [])
        self.downstream_ids_by_asset: DataLoader[int, list[int]] = _loader(db, _neighbours(downstream=True), [])
        self.health_by_asset: DataLoader[int, orm.AssetHealth | None] = _loader(db, alerts.read_health_by_asset_ids)
        self.open_alerts_by_asset: DataLoader[int, list[orm.Alert]] = _loader(
            db, alerts.read_open_alerts_by_asset_ids, []
        )
        self.alert_by_id: DataLoader[int, orm.Alert | None] = _loader(db, alerts.read_alerts_by_ids)
        self.deliveries_by_alert: DataLoader[int, list[orm.AlertDelivery]] = _loader(
            db, alerts.read_deliveries_by_alert_ids, []
        )
        self.policy_by_asset: DataLoader[int, orm.FreshnessPolicy | None] = _loader(db, self._governing_policies)
        self._db = db
        self._policies: list[orm.FreshnessPolicy] | None = None
        self.column_lineage_by_asset: DataLoader[int, list[orm.ColumnLineage]] = _loader(
            db, lineage.read_column_lineage_by_downstream_ids, []
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


def _job_ids_by_role(role: str) -> Callable[[AsyncSession, list[int]], Awaitable[Mapping[int, list[int]]]]:
    async def read(session: AsyncSession, asset_ids: list[int]) -> Mapping[int, list[int]]:
        return await runs.read_producer_consumer_job_ids(session, asset_ids, role)

    return read


def _neighbours(downstream: bool) -> Callable[[AsyncSession, list[int]], Awaitable[Mapping[int, list[int]]]]:
    async def read(session: AsyncSession, asset_ids: list[int]) -> Mapping[int, list[int]]:
        return await lineage.read_neighbour_ids(session, asset_ids, downstream)

    return read
