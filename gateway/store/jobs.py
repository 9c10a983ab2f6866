"""Jobs, identified by (namespace, name), and their latest runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import NamespaceGrants
from gateway.errors import InvalidInput
from gateway.orm import KEY_LENGTH, Job, Run
from gateway.store.descriptions import merge_described, newest_wins
from gateway.store.grants import namespace_clause
from gateway.store.pagination import KeysetOrder, Page, keyset_page
from gateway.store.sql import bind_rows, cached, dialect_name, insert_for, json_merge_for, one_of


def _width(column: Any) -> int:
    length: int = column.type.length
    return length


_TYPE_LENGTH = _width(Job.__table__.c.type)


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
    """Create or describe a job. `type` and `description` follow the newest event that gave them
    (`described_at`, default now), whatever order events arrive in; a job that is there already and that
    nothing describes (a run names its job) is left as it is."""
    values, given = _job_values(namespace, name, now, type, description, metadata, described_at)
    if not given and not metadata:
        stored = await read_job_ids(session, [(namespace, name)])
        if stored:
            return stored[namespace, name]
    shape = ("job upsert", given, bool(metadata))
    upsert = cached(
        session, shape, lambda dialect: _build_job_upsert(dialect, given, bool(metadata), when_described=not metadata)
    )
    job_id: int | None = (await session.execute(upsert, values)).scalar_one_or_none()
    if job_id is None:
        # There, and described by something newer: left as it is.
        return (await read_job_ids(session, [(namespace, name)]))[namespace, name]
    return job_id


def _job_values(
    namespace: str,
    name: str,
    now: datetime,
    type: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    described_at: datetime | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The row `upsert_job` upserts, and the attributes it describes."""
    validate_job_name(namespace, name)
    # Postgres refuses a longer type (SQLite would keep it); OpenLineage ingestion checks the same before.
    if type is not None and len(type) > _TYPE_LENGTH:
        raise InvalidInput(f"a job's type holds at most {_TYPE_LENGTH} characters, got {len(type)}")
    moment = described_at or now
    given = tuple(attribute for attribute, value in (("type", type), ("description", description)) if value)
    values = {
        "namespace": namespace,
        "name": name,
        "type": type,
        "description": description,
        **{f"{attribute}_described_at": moment for attribute in given},
        "metadata": metadata or {},
        "created_at": now,
        "updated_at": now,
    }
    return values, given


def _build_job_upsert(
    dialect: str,
    described: Sequence[str],
    merges_metadata: bool,
    when_given: bool = False,
    rows_of: tuple[str, ...] = (),
    when_described: bool = False,
) -> Any:
    """The upsert of a job (`rows_of`: of many, see `insert_for`). `when_described` leaves a job whose
    attributes the row does not change as it is, and does not return it."""
    table: Any = Job.__table__
    statement = insert_for(dialect, table, rows_of)
    stored, new = table.c, statement.excluded
    changes: dict[str, Any] = {"updated_at": new.updated_at, **merge_described(stored, new, described, when_given)}
    if merges_metadata:
        changes["metadata"] = json_merge_for(dialect, stored.metadata, new.metadata)
    changed = None
    if when_described:
        wins = (and_(new[f"{name}_described_at"].is_not(None), newest_wins(stored, new, name)) for name in described)
        changed = or_(false(), *wins)
    statement = statement.on_conflict_do_update(index_elements=["namespace", "name"], set_=changes, where=changed)
    return statement.returning(table.c.id)


_JOB_ATTRIBUTES = ("type", "description")
# The columns of the batch's rows (`_job_values` with a time, or none, for each attribute).
_BATCH_COLUMNS = (
    "namespace",
    "name",
    *_JOB_ATTRIBUTES,
    *(f"{attribute}_described_at" for attribute in _JOB_ATTRIBUTES),
    "metadata",
    "created_at",
    "updated_at",
)


class JobBatch:
    """The job upserts of many events, applied as if one after the other: each job once with the values of its
    first upsert in the batch (the one that would have created it), then with those that can still win an
    attribute, the newest for each. Which one wins does not depend on their order."""

    def __init__(self) -> None:
        self._touches: dict[tuple[str, str], list[tuple[dict[str, Any], tuple[str, ...], datetime]]] = {}

    def touch(
        self,
        namespace: str,
        name: str,
        now: datetime,
        type: str | None = None,
        description: str | None = None,
        described_at: datetime | None = None,
    ) -> None:
        """Plan `upsert_job` (without metadata, which only the API gives)."""
        values, given = _job_values(namespace, name, now, type, description, None, described_at)
        self._touches.setdefault((namespace, name), []).append((values, given, described_at or now))

    async def apply(self, session: AsyncSession) -> dict[tuple[str, str], int]:
        """Upsert the planned jobs; (namespace, name) -> id. A job that is there already and that no event
        describes (a run names its job) is left as it is."""
        stored = await read_job_ids(session, list(self._touches))
        rounds: list[list[dict[str, Any]]] = []
        for name, ((first, first_given, _), *rest) in self._touches.items():
            rows = [first] if first_given or name not in stored else []
            for attribute in _JOB_ATTRIBUTES:
                giving = [(values, moment) for values, given, moment in rest if attribute in given]
                newest = max((moment for _, moment in giving), default=None)
                rows += [values for values, moment in giving if moment == newest and values not in rows]
            for position, values in enumerate(rows):
                if len(rounds) <= position:
                    rounds.append([])
                # One shape for every row: an attribute a row does not describe comes with no time.
                rounds[position].append({f"{attribute}_described_at": None for attribute in _JOB_ATTRIBUTES} | values)
        upsert = cached(session, ("job upsert", "batch"), _build_batch_upsert)
        ids: dict[tuple[str, str], int] = {}
        for batch in rounds:
            # Rows in name order: concurrent transactions lock the jobs they share in the same order.
            batch.sort(key=lambda values: (str(values["namespace"]), str(values["name"])))
            for start in range(0, len(batch), 1_000):
                chunk = batch[start : start + 1_000]
                parameters = bind_rows(dialect_name(session), chunk, _BATCH_COLUMNS)
                for job_id, namespace, name in await session.execute(upsert, parameters):
                    ids[namespace, name] = job_id
        ids |= {name: job_id for name, job_id in stored.items() if name not in ids}
        # Created by another transaction since they were read: locked by the upsert, but not returned.
        if missing := [name for name in self._touches if name not in ids]:
            ids |= await read_job_ids(session, missing)
        return ids


def _build_batch_upsert(dialect: str) -> Any:
    table: Any = Job.__table__
    upsert = _build_job_upsert(dialect, _JOB_ATTRIBUTES, False, True, _BATCH_COLUMNS, when_described=True)
    return upsert.returning(table.c.namespace, table.c.name)


async def read_jobs_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Job]:
    if not ids:
        return {}
    rows = await session.scalars(select(Job).where(one_of(session, Job.id, ids)))
    return {job.id: job for job in rows}


# (namespace, name) pairs looked up per statement: their namespaces and names stay far below the bind parameter
# limits (32,767 for asyncpg, 32,766 for a default SQLite build), whatever a request asks for.
NAMES_PER_STATEMENT = 5_000


async def read_job_ids(session: AsyncSession, names: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(namespace, name) -> id of the jobs there are."""
    return {(namespace, name): job_id for job_id, namespace, name in await _named(session, names, Job.id)}


async def read_jobs_by_names(session: AsyncSession, names: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Job]:
    return {(job.namespace, job.name): job for job, _, _ in await _named(session, names, Job)}


async def _named(session: AsyncSession, names: Sequence[tuple[str, str]], read: Any) -> list[Any]:
    """(read, namespace, name) of each job named.

    Two scalar lists, not a row-value IN: Postgres turns `(namespace, name) IN (($1, $2), ...)` into a tree of ORs
    that exceeds its stack depth limit at about 8,000 pairs, which one `_entities` request can hold. The two lists
    can match more jobs than were asked for; those are dropped here."""
    wanted = sorted(set(names))
    rows: list[Any] = []
    for start in range(0, len(wanted), NAMES_PER_STATEMENT):
        chunk = wanted[start : start + NAMES_PER_STATEMENT]
        statement = select(read, Job.namespace, Job.name).where(
            one_of(session, Job.namespace, (pair[0] for pair in chunk)),
            one_of(session, Job.name, (pair[1] for pair in chunk)),
        )
        asked = set(chunk)
        rows += [row for row in await session.execute(statement) if (row[1], row[2]) in asked]
    return rows


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
        .where(one_of(session, Run.job_id, job_ids))
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
    False,
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
    rows = await session.execute(select(Job.id, Job.namespace).where(one_of(session, Job.id, ids)))
    return {int(row[0]): str(row[1]) for row in rows}
