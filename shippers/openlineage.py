"""The `openlineage` shipper: assets as DatasetEvents, declared lineage as JobEvents, executions as
RunEvents, through any openlineage-python transport (http, async_http, kafka, file, console, composite...).

The transport is configured exactly as the `transport:` section of an `openlineage.yml`. Every emitted
event and facet carries `producer`/`_producer` and the spec's `schemaURL`s, so it validates against the
official schema even where the producer that fed the gateway left them out.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from openlineage.client.transport import Transport, get_default_factory
from pydantic import Field

from gateway.keys import split_key
from shippers.base import AssetShipper, ShipperConfig, register_shipper
from shippers.records import AssetRecord, ChangeBatch, EdgeRecord, JobRecord, RunRecord

PRODUCER = "https://github.com/asset-gateway/asset-gateway"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs"
FACETS = "https://openlineage.io/spec/facets"
FACET_SCHEMAS = {
    "schema": f"{FACETS}/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "documentation": f"{FACETS}/1-1-0/DocumentationDatasetFacet.json#/$defs/DocumentationDatasetFacet",
    "ownership": f"{FACETS}/1-0-1/OwnershipDatasetFacet.json#/$defs/OwnershipDatasetFacet",
    "tags": f"{FACETS}/1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet",
    "symlinks": f"{FACETS}/1-0-1/SymlinksDatasetFacet.json#/$defs/SymlinksDatasetFacet",
    "datasetType": f"{FACETS}/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet",
    "jobDocumentation": f"{FACETS}/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet",
    "jobType": f"{FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "parent": f"{FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "errorMessage": f"{FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
}
# Run ids that are not UUIDs (which the gateway accepts) become stable UUIDs, as the spec requires.
RUN_ID_NAMESPACE = uuid.UUID("5b1f2b50-3c8e-4d7e-9a53-8f1f4f0f6a11")


class OpenLineageShipperConfig(ShipperConfig):
    transport: dict[str, Any] = Field(description="openlineage.yml's `transport:` section, e.g. {type: http, url}.")
    producer: str = PRODUCER


def _facet(schema: str, producer: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": schema, **fields}


def _stamped(facets: dict[str, Any], producer: str, kind: str) -> dict[str, Any]:
    """Facets as stored, with the base fields the spec requires filled where a producer left them out."""
    stamped: dict[str, Any] = {}
    for name, facet in facets.items():
        if not isinstance(facet, dict):
            continue
        value = dict(facet)
        value.setdefault("_producer", producer)
        value.setdefault("_schemaURL", FACET_SCHEMAS.get(name, f"{SPEC}/{kind}"))
        stamped[name] = value
    return stamped


def _run_id(run_id: str) -> str:
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(RUN_ID_NAMESPACE, run_id))


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _tags(tags: list[str]) -> list[dict[str, str]]:
    pairs = []
    for tag in tags:
        key, _, value = tag.partition(":")
        pairs.append({"key": key, "value": value})
    return pairs


def _dataset_facets(asset: AssetRecord, producer: str) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if asset.fields:
        fields = [{k: v for k, v in field.items() if v is not None} for field in asset.fields]
        facets["schema"] = _facet(FACET_SCHEMAS["schema"], producer, fields=fields)
    if asset.description:
        facets["documentation"] = _facet(FACET_SCHEMAS["documentation"], producer, description=asset.description)
    if asset.owners:
        owners = [{"name": owner} for owner in asset.owners]
        facets["ownership"] = _facet(FACET_SCHEMAS["ownership"], producer, owners=owners)
    if asset.tags:
        facets["tags"] = _facet(FACET_SCHEMAS["tags"], producer, tags=_tags(asset.tags))
    if asset.aliases:
        identifiers = [{**_split(alias), "type": "ALIAS"} for alias in asset.aliases]
        facets["symlinks"] = _facet(FACET_SCHEMAS["symlinks"], producer, identifiers=identifiers)
    if asset.type:
        facets["datasetType"] = _facet(FACET_SCHEMAS["datasetType"], producer, datasetType=asset.type.upper())
    return facets


def _job(job: JobRecord, producer: str) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if job.description:
        facets["documentation"] = _facet(FACET_SCHEMAS["jobDocumentation"], producer, description=job.description)
    if job.type:
        facets["jobType"] = _facet(
            FACET_SCHEMAS["jobType"], producer, processingType="BATCH", integration="ASSET_GATEWAY", jobType=job.type
        )
    return {"namespace": job.namespace, "name": job.name, "facets": facets}


def dataset_event(asset: AssetRecord, producer: str) -> dict[str, Any]:
    return {
        "eventTime": _time(asset.updated_at),
        "producer": producer,
        "schemaURL": f"{SPEC}/DatasetEvent",
        "dataset": {"namespace": asset.namespace, "name": asset.name, "facets": _dataset_facets(asset, producer)},
    }


def job_event(job: JobRecord, edges: list[EdgeRecord], producer: str, now: datetime) -> dict[str, Any]:
    inputs = sorted({edge.upstream for edge in edges})
    outputs = sorted({edge.downstream for edge in edges})

    return {
        "eventTime": _time(now),
        "producer": producer,
        "schemaURL": f"{SPEC}/JobEvent",
        "job": _job(job, producer),
        "inputs": [_split(key) for key in inputs],
        "outputs": [_split(key) for key in outputs],
    }


def _split(key: str) -> dict[str, str]:
    parts = split_key(key)
    return {"namespace": parts.namespace, "name": parts.name}


def run_events(run: RunRecord, producer: str) -> list[dict[str, Any]]:
    """START at the run's first event (when it began before it ended), then its state at its state time."""
    facets = _stamped(run.facets, producer, "RunFacet")
    if run.parent is not None and "parent" not in facets:
        facets["parent"] = _facet(
            FACET_SCHEMAS["parent"],
            producer,
            run={"runId": _run_id(run.parent.run_id)},
            job={"namespace": run.parent.job.namespace, "name": run.parent.job.name},
        )
    if run.error_message and "errorMessage" not in facets:
        facets["errorMessage"] = _facet(
            FACET_SCHEMAS["errorMessage"], producer, message=run.error_message, programmingLanguage="unknown"
        )
    inputs = [
        {"namespace": t.namespace, "name": t.name, "inputFacets": _stamped(t.facets, producer, "InputDatasetFacet")}
        for t in run.inputs
    ]
    outputs = [
        {"namespace": t.namespace, "name": t.name, "outputFacets": _stamped(t.facets, producer, "OutputDatasetFacet")}
        for t in run.outputs
    ]

    def event(state: str, moment: datetime, with_facets: bool) -> dict[str, Any]:
        return {
            "eventType": state,
            "eventTime": _time(moment),
            "producer": producer,
            "schemaURL": f"{SPEC}/RunEvent",
            "run": {"runId": _run_id(run.run_id), "facets": facets if with_facets else {}},
            "job": _job(run.job, producer),
            "inputs": inputs,
            "outputs": outputs,
        }

    events = []
    began = run.started_at or run.first_event_time
    if run.state != "START" and began < run.state_time:
        events.append(event("START", began, with_facets=False))
    events.append(event(run.state, run.state_time, with_facets=True))
    return events


def to_events(batch: ChangeBatch, producer: str, now: datetime) -> list[dict[str, Any]]:
    events = [dataset_event(asset, producer) for asset in batch.assets]
    declared: dict[tuple[str, str], tuple[JobRecord, list[EdgeRecord]]] = {}
    for edge in batch.edges:
        if edge.origin == "declared" and edge.job is not None:
            declared.setdefault((edge.job.namespace, edge.job.name), (edge.job, []))[1].append(edge)
    events.extend(job_event(job, edges, producer, now) for job, edges in declared.values())
    for run in batch.runs:
        events.extend(run_events(run, producer))
    return events


@register_shipper
class OpenLineageShipper(AssetShipper):
    kind = "openlineage"
    config_class = OpenLineageShipperConfig
    config: OpenLineageShipperConfig

    def __init__(self, name: str, config: ShipperConfig) -> None:
        super().__init__(name, config)
        self.transport: Transport = get_default_factory().create(dict(self.config.transport))

    async def ship(self, batch: ChangeBatch) -> None:
        events = to_events(batch, self.config.producer, datetime.now(UTC))
        if events:
            await asyncio.to_thread(self._emit_all, events)

    def _emit_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.transport.emit(event)  # type: ignore[arg-type]  # the transports serialise plain dicts too
        waiter = getattr(self.transport, "wait_for_completion", None)
        if callable(waiter) and not waiter():
            raise RuntimeError(f"transport {self.transport.kind} did not deliver every event")

    async def aclose(self) -> None:
        await asyncio.to_thread(self.transport.close)
