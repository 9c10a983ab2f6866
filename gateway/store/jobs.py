"""Jobs, identified by (namespace, name), and their latest runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import NamespaceGrants
from gateway.errors import InvalidInput
from gateway.orm import KEY_LENGTH, Job, Run
from gateway.store.descriptions import merge_described
from gateway.store.grants import namespace_clause
from gateway.store.pagination import KeysetOrder, Page, keyset_page
from gateway.store.sql import dialect_name, insert, json_merge


def validate_job_name(namespace: str, name: str) -> None:
    for what, value in (("job namespace", namespace), ("job name", name)):
        if not value or len(value) > KEY_LENGTH:
            raise InvalidInput(f"{what} must be 1..{KEY_LENGTH} characters")


async def upsert_job(
    session: AsyncSession,
    namespace: str,
    name: str,
    now: datetime,
    type: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    described_at: datetime | None = None,
) -> int:
    """Create or touch a job. `type` and `description` follow the newest event that gave them
    (`described_at`, default now), whatever order events arrive in."""
    validate_job_name(namespace, name)
    moment = described_at or now
    given = {attribute: value for attribute, value in (("type", type), ("description", description)) if value}
    statement = insert(session, Job).values(
        namespace=namespace,
        name=name,
        type=type,
        description=description,
        **{f"{attribute}_described_at": moment for attribute in given},
        metadata=metadata or {},
        created_at=now,
        updated_at=now,
    )
    stored, new = Job.__table__.c, statement.excluded
    changes: dict[str, Any] = {"updated_at": now, **merge_described(stored, new, list(given))}
    if metadata:
        changes["metadata"] = json_merge(session, stored.metadata, new.metadata)
    statement = statement.on_conflict_do_update(index_elements=["namespace", "name"], set_=changes)
    job_id: int = (await session.execute(statement.returning(Job.id))).scalar_one()
    return job_id


async def read_jobs_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Job]:
    if not ids:
        return {}
    rows = await session.scalars(select(Job).where(Job.id.in_(sorted(set(ids)))))
    return {job.id: job for job in rows}


# (namespace, name) pairs looked up per statement: their namespaces and names stay far below the bind parameter
# limits (32,767 for asyncpg, 32,766 for a default SQLite build), whatever a request asks for.
NAMES_PER_STATEMENT = 5_000


async def read_jobs_by_names(session: AsyncSession, names: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Job]:
    # Two scalar IN lists, not a row-value IN: Postgres turns `(namespace, name) IN (($1, $2), ...)` into a tree of
    # ORs that exceeds its stack depth limit at about 8,000 pairs, which one `_entities` request can hold. The two
    # lists can match more jobs than were asked for; those are dropped here.
    wanted = sorted(set(names))
    found: dict[tuple[str, str], Job] = {}
    for start in range(0, len(wanted), NAMES_PER_STATEMENT):
        chunk = wanted[start : start + NAMES_PER_STATEMENT]
        namespaces, job_names = sorted({pair[0] for pair in chunk}), sorted({pair[1] for pair in chunk})
        statement = select(Job).where(Job.namespace.in_(namespaces), Job.name.in_(job_names))
        asked = set(chunk)
        for job in await session.scalars(statement):
            if (job.namespace, job.name) in asked:
                found[job.namespace, job.name] = job
    return found


async def read_latest_runs_by_job_ids(session: AsyncSession, job_ids: Sequence[int]) -> dict[int, Run]:
    """job id -> its run with the latest event, in one statement."""
    if not job_ids:
        return {}
    latest = (
        select(
            Run.id,
            func.row_number()
            .over(partition_by=Run.job_id, order_by=(Run.event_time.desc(), Run.id.desc()))
            .label("position"),
        )
        .where(Run.job_id.in_(sorted(set(job_ids))))
        .subquery()
    )
    rows = await session.scalars(select(Run).join(latest, latest.c.id == Run.id).where(latest.c.position == 1))
    return {run.job_id: run for run in rows}


JOBS_BY_NAME: KeysetOrder[Job] = KeysetOrder(
    "JOB",
    Job.namespace + "/" + Job.name,
    Job.id,
    False,
    False,
    lambda job: f"{job.namespace}/{job.name}",
    lambda j: j.id,
)


async def list_jobs(
    session: AsyncSession,
    namespace: str | None,
    search: str | None,
    first: int,
    after: str | None,
    grants: NamespaceGrants | None = None,
) -> Page[Job]:
    conditions = [namespace_clause(grants, Job.namespace, dialect_name(session))]
    if namespace is not None:
        conditions.append(Job.namespace == namespace)
    if search:
        conditions.append(Job.name.icontains(search, autoescape=True))
    return await keyset_page(session, select(Job).where(*conditions), JOBS_BY_NAME, first, after)


async def read_job_namespaces(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """job id -> namespace: what authorization needs to know about the jobs of runs."""
    if not ids:
        return {}
    rows = await session.execute(select(Job.id, Job.namespace).where(Job.id.in_(sorted(set(ids)))))
    return {int(row[0]): str(row[1]) for row in rows}
