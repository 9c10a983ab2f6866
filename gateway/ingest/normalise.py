"""Map typed OpenLineage events onto store calls. One path for the endpoint, the CLI and reindex."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput
from gateway.ingest.events import Dataset, DatasetEvent, Event, EventError, JobEvent, RunEvent
from gateway.keys import join_key
from gateway.store.assets import ensure_assets
from gateway.store.column_lineage import FieldDerivation, record_column_lineage
from gateway.store.descriptions import AssetDescription, describe_assets
from gateway.store.executions import DatasetTouch, ExecutionRecord, ParentRef, declare_job_edges, record_execution
from gateway.store.jobs import upsert_job

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


async def _column_lineage(
    session: AsyncSession,
    datasets: list[Dataset],
    resolved: dict[str, str],
    job_id: int | None,
    event_time: datetime,
    now: datetime,
) -> None:
    derivations = [
        derivation
        for dataset in datasets
        for derivation in _derivations(dataset, resolved[dataset_key(dataset)], resolved)
    ]
    if derivations:
        keys = {d.upstream_key for d in derivations} | {d.downstream_key for d in derivations}
        asset_ids = await ensure_assets(session, keys, now)
        await record_column_lineage(session, derivations, asset_ids, job_id, event_time)


async def _apply_run_event(session: AsyncSession, event: RunEvent, now: datetime) -> None:
    inputs, outputs = event.inputs or [], event.outputs or []
    resolved = await describe_assets(session, [describe(d) for d in (*inputs, *outputs)], event.eventTime, now)
    run_facets = event.run.facets
    parent = None
    if run_facets.parent is not None:
        parent = ParentRef(run_facets.parent.run.runId, run_facets.parent.job.namespace, run_facets.parent.job.name)
    job_facets = event.job.facets
    job_type = None
    if job_facets.jobType is not None:
        job_type = job_facets.jobType.jobType or job_facets.jobType.processingType
    error = run_facets.errorMessage
    record = ExecutionRecord(
        job_namespace=event.job.namespace,
        job_name=event.job.name,
        job_type=job_type,
        job_description=job_facets.documentation.description if job_facets.documentation else None,
        run_id=event.run.runId,
        state=event.eventType.value if event.eventType else "OTHER",
        event_time=event.eventTime,
        inputs=[DatasetTouch(resolved[dataset_key(d)], _facets(d.inputFacets)) for d in inputs],
        outputs=[DatasetTouch(resolved[dataset_key(d)], _facets(d.outputFacets)) for d in outputs],
        parent=parent,
        facets=_facets(run_facets),
        error_message=error.message if error else None,
    )
    run = await record_execution(session, record, now)
    await _column_lineage(session, list(outputs), resolved, run.job_id, event.eventTime, now)


async def _apply_dataset_event(session: AsyncSession, event: DatasetEvent, now: datetime) -> None:
    resolved = await describe_assets(session, [describe(event.dataset)], event.eventTime, now)
    await _column_lineage(session, [event.dataset], resolved, None, event.eventTime, now)


async def _apply_job_event(session: AsyncSession, event: JobEvent, now: datetime) -> None:
    inputs, outputs = event.inputs or [], event.outputs or []
    resolved = await describe_assets(session, [describe(d) for d in (*inputs, *outputs)], event.eventTime, now)
    facets = event.job.facets
    job_type = facets.jobType.jobType or facets.jobType.processingType if facets.jobType else None
    description = facets.documentation.description if facets.documentation else None
    job_id = await upsert_job(
        session, event.job.namespace, event.job.name, now, job_type, description, described_at=event.eventTime
    )
    asset_ids = await ensure_assets(session, resolved.values(), now)
    await declare_job_edges(
        session,
        job_id,
        [asset_ids[resolved[dataset_key(d)]] for d in inputs],
        [asset_ids[resolved[dataset_key(d)]] for d in outputs],
        event.eventTime,
    )
    await _column_lineage(session, list(outputs), resolved, job_id, event.eventTime, now)


async def apply_event(session: AsyncSession, event: Event, now: datetime) -> None:
    """Apply one validated event to the derived tables (the caller owns the transaction)."""
    if isinstance(event, RunEvent):
        await _apply_run_event(session, event, now)
    elif isinstance(event, DatasetEvent):
        await _apply_dataset_event(session, event, now)
    else:
        await _apply_job_event(session, event, now)


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
