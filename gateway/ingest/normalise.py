"""Map typed OpenLineage events onto store calls. One path for the endpoint, the CLI and reindex."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import is_retryable
from gateway.errors import GatewayError, InvalidInput
from gateway.ingest.events import Dataset, DatasetEvent, Event, EventError, JobEvent, RunEvent
from gateway.keys import join_key
from gateway.store.assets import ensure_assets
from gateway.store.column_lineage import FieldDerivation, record_column_lineage
from gateway.store.declared_edges import Declaration, declare_edges, declare_job_edges
from gateway.store.descriptions import AssetDescription, Described, DescriptionBatch, apply_descriptions
from gateway.store.execution_batch import ExecutionBatch
from gateway.store.executions import (
    DatasetTouch,
    ExecutionRecord,
    ParentRef,
    apply_execution,
    validate_execution,
)
from gateway.store.jobs import JobBatch, upsert_job

_TYPE_BY_SCHEME = {
    **dict.fromkeys(
        (
            "postgres",
            "postgresql",
            "mysql",
            "snowflake",
            "bigquery",
            "redshift",
            "hive",
            "trino",
            "mssql",
            "sqlserver",
            "oracle",
            "db2",
            "teradata",
            "spanner",
            "cassandra",
            "awsathena",
            "arn",
            "crate",
            "oceanbase",
            "unitycatalog",
            "databricks",
            "duckdb",
            "sqlite",
            "jdbc",
            "iceberg",
            "glue",
            "clickhouse",
        ),
        "table",
    ),
    **dict.fromkeys(("s3", "s3a", "gs", "gcs", "abfss", "wasbs", "hdfs", "file", "dbfs", "adl", "azureblob"), "file"),
    **dict.fromkeys(("kafka", "pubsub", "kinesis", "pulsar", "rabbitmq"), "topic"),
}


def _facets(model: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dumped


def dataset_key(dataset: Dataset | Any) -> str:
    try:
        return join_key(dataset.namespace, dataset.name)
    except InvalidInput as error:
        raise EventError(error.message, "dataset") from None


def _type(dataset: Dataset) -> str | None:
    facet = dataset.facets.datasetType
    if facet is not None:
        return facet.datasetType.lower()
    scheme = dataset.namespace.split("://", 1)[0].split(":", 1)[0].lower()
    return _TYPE_BY_SCHEME.get(scheme)


def describe(dataset: Dataset) -> AssetDescription:
    """The asset a dataset names, as its facets describe it. A TABLE symlink names the asset itself."""
    facets = dataset.facets
    own_key = dataset_key(dataset)
    identifiers = facets.symlinks.identifiers if facets.symlinks and facets.symlinks.identifiers else []
    symlinks = sorted(
        (
            identifier.type.upper(),
            join_key(identifier.namespace, identifier.name),
            identifier.namespace,
            identifier.name,
        )
        for identifier in identifiers
    )
    tables = [(key, namespace, name) for kind, key, namespace, name in symlinks if kind == "TABLE"]
    # The table is the lasting identity of a file-backed dataset, whichever producer saw it first.
    key, namespace, name = tables[0] if tables else (own_key, dataset.namespace, dataset.name)
    aliases = tuple(sorted({own_key, *(alias for _, alias, _, _ in symlinks)} - {key}))
    owners = [owner.name for owner in facets.ownership.owners] if facets.ownership and facets.ownership.owners else None
    tags = None
    if facets.tags and facets.tags.tags:
        tags = [f"{tag.key}:{tag.value}" if tag.value else tag.key for tag in facets.tags.tags]
    fields = None
    if facets.schema_ and facets.schema_.fields is not None:
        fields = [field.model_dump(mode="json", exclude_none=True) for field in facets.schema_.fields]
    return AssetDescription(
        key=key,
        namespace=namespace,
        name=name,
        type=_type(dataset),
        description=facets.documentation.description if facets.documentation else None,
        owners=owners,
        tags=tags,
        fields=fields,
        aliases=aliases,
    )


def _derivations(dataset: Dataset, downstream_key: str, resolved: dict[str, str]) -> list[FieldDerivation]:
    facet = dataset.facets.columnLineage
    if facet is None:
        return []
    derivations = []
    for field_name, lineage in facet.fields.items():
        for source in lineage.inputFields:
            upstream = join_key(source.namespace, source.name)
            transformation = source.transformations[0] if source.transformations else None
            derivations.append(
                FieldDerivation(
                    downstream_key=downstream_key,
                    downstream_field=field_name,
                    upstream_key=resolved.get(upstream, upstream),
                    upstream_field=source.field,
                    transformation_type=transformation.type if transformation else lineage.transformationType,
                    transformation_subtype=transformation.subtype if transformation else None,
                    description=(transformation.description if transformation else None)
                    or lineage.transformationDescription,
                )
            )
    return derivations


def _lineage(datasets: Sequence[Dataset], described: Described) -> list[FieldDerivation]:
    resolved = described.keys
    return [
        derivation
        for dataset in datasets
        if dataset.facets.columnLineage is not None
        for derivation in _derivations(dataset, resolved[dataset_key(dataset)], resolved)
    ]


def _lineage_keys(derivations: Sequence[FieldDerivation]) -> set[str]:
    return {d.upstream_key for d in derivations} | {d.downstream_key for d in derivations}


async def _column_lineage(
    session: AsyncSession,
    derivations: Sequence[FieldDerivation],
    job_id: int | None,
    event_time: datetime,
    now: datetime,
) -> None:
    if derivations:
        asset_ids = await ensure_assets(session, _lineage_keys(derivations), now)
        await record_column_lineage(session, derivations, asset_ids, job_id, event_time)


def _datasets(event: Event) -> list[Dataset]:
    if isinstance(event, DatasetEvent):
        return [event.dataset]
    return [*(event.inputs or []), *(event.outputs or [])]


def _outputs(event: Event) -> list[Dataset]:
    if isinstance(event, DatasetEvent):
        return [event.dataset]
    return list(event.outputs or [])


def _execution(event: RunEvent, described: Described) -> ExecutionRecord:
    resolved = described.keys
    run_facets = event.run.facets
    parent = None
    if run_facets.parent is not None:
        parent = ParentRef(run_facets.parent.run.runId, run_facets.parent.job.namespace, run_facets.parent.job.name)
    job_facets = event.job.facets
    job_type = None
    if job_facets.jobType is not None:
        job_type = job_facets.jobType.jobType or job_facets.jobType.processingType
    error = run_facets.errorMessage
    return ExecutionRecord(
        job_namespace=event.job.namespace,
        job_name=event.job.name,
        job_type=job_type,
        job_description=job_facets.documentation.description if job_facets.documentation else None,
        run_id=event.run.runId,
        state=event.eventType.value if event.eventType else "OTHER",
        event_time=event.eventTime,
        inputs=[DatasetTouch(resolved[dataset_key(d)], _facets(d.inputFacets)) for d in event.inputs or []],
        outputs=[DatasetTouch(resolved[dataset_key(d)], _facets(d.outputFacets)) for d in event.outputs or []],
        parent=parent,
        facets=_facets(run_facets),
        error_message=error.message if error else None,
    )


def _job_description(event: JobEvent) -> tuple[str | None, str | None]:
    facets = event.job.facets
    job_type = facets.jobType.jobType or facets.jobType.processingType if facets.jobType else None
    description = facets.documentation.description if facets.documentation else None
    return job_type, description


@dataclass
class _Applied:
    """One event, its datasets described: what remains to write after its descriptions (and its jobs)."""

    event: Event
    described: Described
    derivations: list[FieldDerivation]
    execution: ExecutionRecord | None = None


async def _apply_rest(
    session: AsyncSession, applied: _Applied, now: datetime, job_ids: Mapping[tuple[str, str], int] | None = None
) -> None:
    event, described = applied.event, applied.described
    job_id = None
    if applied.execution is not None:
        job_id = (await apply_execution(session, applied.execution, now, described.ids, job_ids)).job_id
    elif isinstance(event, JobEvent):
        job_id = job_ids.get((event.job.namespace, event.job.name)) if job_ids else None
        if job_id is None:
            job_type, description = _job_description(event)
            job_id = await upsert_job(
                session, event.job.namespace, event.job.name, now, job_type, description, described_at=event.eventTime
            )
        ids, resolved = described.ids, described.keys
        await declare_job_edges(
            session,
            job_id,
            [ids[resolved[dataset_key(d)]] for d in event.inputs or []],
            [ids[resolved[dataset_key(d)]] for d in event.outputs or []],
            event.eventTime,
        )
    await _column_lineage(session, applied.derivations, job_id, event.eventTime, now)


async def apply_event(session: AsyncSession, event: Event, now: datetime) -> None:
    """Apply one validated event to the derived tables (the caller owns the transaction)."""
    described = await apply_descriptions(session, [describe(d) for d in _datasets(event)], event.eventTime, now)
    execution = _execution(event, described) if isinstance(event, RunEvent) else None
    await _apply_rest(session, _Applied(event, described, _lineage(_outputs(event), described), execution), now)


class BatchUnsettled(Exception):
    """The events cannot be applied together as they would one by one (an asset must be renamed, or another
    transaction added an alias meanwhile): apply them one at a time."""


class BatchEventError(Exception):
    """Applying the event at `position` failed with `error` (a GatewayError or a DBAPIError)."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(str(error))
        self.position = position
        self.error = error


async def apply_events(session: AsyncSession, events: Sequence[Event], now: datetime) -> None:
    """Apply validated events as `apply_event` would one after the other, in a few statements for them all: their
    datasets are looked up at once, each asset and job is written once (store/descriptions.py, store/jobs.py),
    runs and their datasets in rounds of one event per run, and each run's lineage and outputs settled once
    (store/execution_batch.py). Column lineage follows, event by event.

    Raises BatchEventError for an event that fails, BatchUnsettled when the events must go one by one.
    """
    identifiers: set[str] = set()
    for event in events:
        for dataset in _datasets(event):
            description = describe(dataset)
            identifiers.update((description.key, *description.aliases))
            if dataset.facets.columnLineage is not None:
                for lineage in dataset.facets.columnLineage.fields.values():
                    identifiers.update(join_key(source.namespace, source.name) for source in lineage.inputFields)
    descriptions = await DescriptionBatch.load(session, sorted(identifiers))
    jobs = JobBatch()
    planned: list[_Applied] = []
    for position, event in enumerate(events):
        try:
            applied = _plan(event, descriptions, jobs, now)
        except GatewayError as error:
            raise BatchEventError(position, error) from error
        if applied is None:
            raise BatchUnsettled()
        planned.append(applied)
    try:
        # Assets before jobs, as each event takes their locks: concurrent transactions queue rather than deadlock.
        settled = await descriptions.apply(session, now)
        job_ids = await jobs.apply(session)
    except (GatewayError, DBAPIError) as error:
        # A value the database refuses, in a statement of many events: which one, applying them in turn tells.
        _unsettled(error)
    if not settled:
        raise BatchUnsettled()
    if all(isinstance(applied.event, JobEvent) for applied in planned):
        await _declare_together(session, planned, job_ids, now)
        return
    if any(isinstance(applied.event, JobEvent) for applied in planned):
        # A job's declared edges and its runs' edges share rows, whose times decide which run saw them last.
        for position, applied in enumerate(planned):
            try:
                await _apply_rest(session, applied, now, job_ids)
            except (GatewayError, DBAPIError) as error:
                raise BatchEventError(position, error) from error
        return
    executions = ExecutionBatch()
    recorded = {
        position: executions.add(applied.execution, applied.described.ids, job_ids)
        for position, applied in enumerate(planned)
        if applied.execution is not None
    }
    try:
        runs = await executions.apply(session, now)
    except (GatewayError, DBAPIError) as error:
        _unsettled(error)
    for position, applied in enumerate(planned):
        job_id = runs[recorded[position]].job_id if position in recorded else None
        try:
            await _column_lineage(session, applied.derivations, job_id, applied.event.eventTime, now)
        except (GatewayError, DBAPIError) as error:
            raise BatchEventError(position, error) from error


async def _declare_together(
    session: AsyncSession, planned: Sequence[_Applied], job_ids: Mapping[tuple[str, str], int], now: datetime
) -> None:
    """JobEvents only: their edges in a few statements for them all, then their column lineage event by event."""
    declarations = []
    for applied in planned:
        event = applied.event
        assert isinstance(event, JobEvent)
        ids, resolved = applied.described.ids, applied.described.keys
        declarations.append(
            Declaration(
                job_ids[event.job.namespace, event.job.name],
                [ids[resolved[dataset_key(d)]] for d in event.inputs or []],
                [ids[resolved[dataset_key(d)]] for d in event.outputs or []],
                event.eventTime,
            )
        )
    try:
        await declare_edges(session, declarations)
    except (GatewayError, DBAPIError) as error:
        _unsettled(error)
    for position, (applied, declaration) in enumerate(zip(planned, declarations, strict=True)):
        try:
            await _column_lineage(session, applied.derivations, declaration.job_id, applied.event.eventTime, now)
        except (GatewayError, DBAPIError) as error:
            raise BatchEventError(position, error) from error


def _unsettled(error: Exception) -> NoReturn:
    if isinstance(error, DBAPIError) and is_retryable(error):
        raise error
    raise BatchUnsettled() from error


def _plan(event: Event, descriptions: DescriptionBatch, jobs: JobBatch, now: datetime) -> _Applied | None:
    """Plan what `apply_event` writes before the rest of the event: its descriptions and jobs."""
    described = descriptions.describe([describe(d) for d in _datasets(event)], event.eventTime)
    if described is None:
        return None
    execution = None
    if isinstance(event, RunEvent):
        execution = _execution(event, described)
        validate_execution(execution)
        jobs.touch(
            execution.job_namespace,
            execution.job_name,
            now,
            execution.job_type,
            execution.job_description,
            described_at=execution.event_time,
        )
        parent = execution.parent
        if parent is not None and parent.run_id != execution.run_id:
            jobs.touch(parent.job_namespace, parent.job_name, now)
    elif isinstance(event, JobEvent):
        job_type, description = _job_description(event)
        jobs.touch(event.job.namespace, event.job.name, now, job_type, description, described_at=event.eventTime)
    derivations = _lineage(_outputs(event), described)
    if derivations:
        descriptions.ensure(_lineage_keys(derivations))
    return _Applied(event, described, derivations, execution)


def check_identifiers(event: Event) -> None:
    """Refuse, before any write, keys the store would refuse (too long, whitespace...)."""
    datasets: list[Dataset] = []
    if isinstance(event, RunEvent | JobEvent):
        datasets = [*(event.inputs or []), *(event.outputs or [])]
    else:
        datasets = [event.dataset]
    for position, dataset in enumerate(datasets):
        try:
            describe(dataset)
        except (InvalidInput, EventError) as error:
            message = error.message if isinstance(error, InvalidInput) else error.problem
            raise EventError(message, f"dataset {position} ({dataset.namespace}/{dataset.name[:60]})") from None
