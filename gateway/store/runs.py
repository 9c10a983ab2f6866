"""Reading runs: by id, by run id, their assets and children, lists, and per-asset audit logs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import NamespaceGrants
from gateway.orm import Asset, Job, Run, RunAsset
from gateway.store.grants import namespace_clause
from gateway.store.pagination import KeysetOrder, Page, keyset_page
from gateway.store.records import RecordBundle
from gateway.store.sql import dialect_name, one_of

EXECUTION_ORDER = "EVENT_TIME_DESC"


@dataclass(frozen=True)
class RunFilter:
    job_ids: Sequence[int] | None = None
    states: Sequence[str] | None = None
    after: datetime | None = None
    before: datetime | None = None
    parent_id: int | None = None
    job_namespace: str | None = None
    job_name: str | None = None
    # The caller's namespace grants on job namespaces (None: unrestricted).
    grants: NamespaceGrants | None = None


async def read_runs_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Run]:
    if not ids:
        return {}
    rows = await session.scalars(select(Run).where(one_of(session, Run.id, ids)))
    return {run.id: run for run in rows}


async def read_runs_by_run_ids(session: AsyncSession, run_ids: Sequence[str]) -> dict[str, Run]:
    if not run_ids:
        return {}
    rows = await session.scalars(select(Run).where(one_of(session, Run.run_id, run_ids)))
    return {run.run_id: run for run in rows}


async def read_run_assets_by_run_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[RunAsset]]:
    """run pk -> its inputs and outputs, ordered by role then asset."""
    result: dict[int, list[RunAsset]] = defaultdict(list)
    if ids:
        rows = await session.scalars(
            select(RunAsset)
            .where(one_of(session, RunAsset.run_id, ids))
            .order_by(RunAsset.run_id, RunAsset.role, RunAsset.asset_id)
        )
        for row in rows:
            result[row.run_id].append(row)
    return result


async def read_children_by_run_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[Run]]:
    result: dict[int, list[Run]] = defaultdict(list)
    if ids:
        rows = await session.scalars(
            select(Run).where(one_of(session, Run.parent_id, ids)).order_by(Run.first_event_time, Run.id)
        )
        for run in rows:
            assert run.parent_id is not None
            result[run.parent_id].append(run)
    return result


def _visible_jobs(grants: NamespaceGrants, dialect: str) -> ColumnElement[bool]:
    return Run.job_id.in_(select(Job.id).where(namespace_clause(grants, Job.namespace, dialect)).scalar_subquery())


def run_conditions(run_filter: RunFilter, dialect: str) -> list[ColumnElement[bool]]:
    f = run_filter
    conditions: list[ColumnElement[bool]] = []
    if f.grants is not None and not f.grants.everything:
        conditions.append(_visible_jobs(f.grants, dialect))
    if f.job_ids is not None:
        conditions.append(Run.job_id.in_(list(f.job_ids)))
    if f.states is not None:
        conditions.append(Run.state.in_(list(f.states)))
    if f.after is not None:
        conditions.append(Run.event_time >= f.after)
    if f.before is not None:
        conditions.append(Run.event_time < f.before)
    if f.parent_id is not None:
        conditions.append(Run.parent_id == f.parent_id)
    if f.job_namespace is not None or f.job_name is not None:
        matching_jobs = select(Job.id)
        if f.job_namespace is not None:
            matching_jobs = matching_jobs.where(Job.namespace == f.job_namespace)
        if f.job_name is not None:
            matching_jobs = matching_jobs.where(Job.name == f.job_name)
        conditions.append(Run.job_id.in_(matching_jobs.scalar_subquery()))
    return conditions


@dataclass(slots=True)
class RunRecord:
    id: int
    run_id: str
    job_id: int
    parent_id: int | None
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    event_time: datetime
    facets: dict[str, Any]
    error_message: str | None


@dataclass(slots=True)
class AuditEntry:
    """One entry of an asset's audit log: a run that read or wrote it (a row of run_assets)."""

    id: int
    run_id: int
    role: str
    event_time: datetime
    facets: dict[str, Any]


# What the API reads of a run: a record (audit log pages), or the ORM's Run.
RunColumns = RunRecord | Run

# Audit log pages are read as records (store/records.py): 100 entries and their runs as ORM objects cost more
# than the rest of the page.
_RUN_RECORD = RecordBundle("run", RunRecord, Run)
_AUDIT_ENTRY = RecordBundle("entry", AuditEntry, RunAsset)

RUNS_NEWEST_FIRST: KeysetOrder[Run] = KeysetOrder(
    EXECUTION_ORDER, Run.event_time, Run.id, True, True, lambda run: run.event_time, lambda run: run.id, False
)
AUDIT_NEWEST_FIRST: KeysetOrder[AuditEntry] = KeysetOrder(
    EXECUTION_ORDER, RunAsset.event_time, RunAsset.id, True, True, lambda row: row.event_time, lambda row: row.id, False
)


async def list_runs(session: AsyncSession, run_filter: RunFilter, first: int, after: str | None) -> Page[Run]:
    """Runs, newest event first."""
    statement = select(Run).where(*run_conditions(run_filter, dialect_name(session)))
    return await keyset_page(session, statement, RUNS_NEWEST_FIRST, first, after)


async def list_asset_executions(
    session: AsyncSession,
    asset_id: int,
    role: str | None,
    first: int,
    after: str | None,
    grants: NamespaceGrants | None = None,
    with_runs: bool = False,
    with_jobs: bool = False,
) -> Page[AuditEntry]:
    """The audit log of one asset: which runs read or wrote it, newest first (runs of granted jobs only).

    `with_runs` reads each entry's run in the same statement, and `with_jobs` its job as well (`Page.columns`:
    `(run,)` or `(run, job)`, a RunRecord and the ORM's Job), where a page that shows them would otherwise wait for
    two more statements."""
    conditions: list[ColumnElement[bool]] = [RunAsset.asset_id == asset_id]
    if grants is not None and not grants.everything:
        visible_runs = select(Run.id).where(_visible_jobs(grants, dialect_name(session)))
        conditions.append(RunAsset.run_id.in_(visible_runs.scalar_subquery()))
    if role is not None:
        conditions.append(RunAsset.role == role)
    statement = select(_AUDIT_ENTRY).where(*conditions)
    if with_runs or with_jobs:
        statement = statement.add_columns(_RUN_RECORD).join(Run, Run.id == RunAsset.run_id)
    if with_jobs:
        statement = statement.add_columns(Job).join(Job, Job.id == Run.job_id)
    return await keyset_page(session, statement, AUDIT_NEWEST_FIRST, first, after)


async def read_producer_consumer_job_ids(
    session: AsyncSession, asset_ids: Sequence[int], role: str
) -> dict[int, list[int]]:
    """asset id -> ids of the jobs whose runs wrote (`output`) or read (`input`) it."""
    result: dict[int, list[int]] = defaultdict(list)
    if asset_ids:
        rows = await session.execute(
            select(RunAsset.asset_id, Run.job_id)
            .join(Run, Run.id == RunAsset.run_id)
            .where(one_of(session, RunAsset.asset_id, asset_ids), RunAsset.role == role)
            .group_by(RunAsset.asset_id, Run.job_id)
            .order_by(RunAsset.asset_id, Run.job_id)
        )
        for asset_id, job_id in rows:
            result[asset_id].append(job_id)
    return result


async def read_run_namespaces(session: AsyncSession, run_pk: int) -> tuple[str, list[str]]:
    """The namespaces one run touches: its job's, and those of the assets it read or wrote."""
    job_namespace = await session.scalar(select(Job.namespace).join(Run, Run.job_id == Job.id).where(Run.id == run_pk))
    asset_namespaces = await session.scalars(
        select(Asset.namespace)
        .join(RunAsset, RunAsset.asset_id == Asset.id)
        .where(RunAsset.run_id == run_pk)
        .distinct()
    )
    return str(job_namespace), list(asset_namespaces)
