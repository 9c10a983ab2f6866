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
from shippers.records import AssetRecord, ChangeBatch, EdgeRecord, JobRecord, RunRecord, Version, version_key

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


# Time fields of the facets the gateway types: it reads a time without a zone as UTC (as Marquez does) and keeps
# it as read, while the spec wants a zone (`date-time`); the shipper gives it the zone it was read in.
TIME_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "RunFacet": {"nominalTime": ("nominalStartTime", "nominalEndTime")},
    "InputDatasetFacet": {"dataQualityMetrics": ("lastUpdated",)},
}


def _zoned(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.replace(tzinfo=UTC).isoformat() if moment.tzinfo is None else value


def _stamped(facets: dict[str, Any], producer: str, kind: str) -> dict[str, Any]:
    """Facets as stored, with the base fields the spec requires filled where a producer left them out."""
    stamped: dict[str, Any] = {}
    for name, facet in facets.items():
        if not isinstance(facet, dict):
            continue
        value = dict(facet)
        value.setdefault("_producer", producer)
        value.setdefault("_schemaURL", FACET_SCHEMAS.get(name, f"{SPEC}/{kind}"))
        for field in TIME_FIELDS.get(kind, {}).get(name, ()):
            if field in value:
                value[field] = _zoned(value[field])
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


def dataset_event(asset: AssetRecord, producer: str, version: Version | None = None) -> dict[str, Any]:
    # The time of the newest change shipped: it grows with every change of the asset, so that a target where the
    # newest description wins keeps the latest state (`updated_at` is taken before a write waits for its lock).
    moment = max(asset.updated_at, version.changed_at) if version and version.changed_at else asset.updated_at
    return {
        "eventTime": _time(moment),
        "producer": producer,
        "schemaURL": f"{SPEC}/DatasetEvent",
        "dataset": {"namespace": asset.namespace, "name": asset.name, "facets": _dataset_facets(asset, producer)},
    }


def job_event(job: JobRecord, edges: list[EdgeRecord], producer: str, moment: datetime) -> dict[str, Any]:
    """A JobEvent for the job; every input feeds every output at the target, so `edges` must form such a product
    (as the edges into one downstream do)."""
    inputs = sorted({edge.upstream for edge in edges})
    outputs = sorted({edge.downstream for edge in edges})

    return {
        "eventTime": _time(moment),
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
    """The run's events as the gateway knows them: START at its start, its state at its state time, OTHER at its
    first and last event times where those differ."""
    facets = _stamped(run.facets, producer, "RunFacet")
    stored_parent = facets.get("parent")
    if run.parent is not None:
        # The run's parent is authoritative; the stored facet may add more (its root, forwarded facets).
        parent = dict(stored_parent) if isinstance(stored_parent, dict) else _facet(FACET_SCHEMAS["parent"], producer)
        parent["run"] = {**(parent.get("run") or {}), "runId": _run_id(run.parent.run_id)}
        parent["job"] = {
            **(parent.get("job") or {}),
            "namespace": run.parent.job.namespace,
            "name": run.parent.job.name,
        }
        facets["parent"] = _with_uuid_root(parent)
    elif isinstance(stored_parent, dict):
        parent = dict(stored_parent)
        if isinstance(parent.get("run"), dict) and isinstance(parent["run"].get("runId"), str):
            parent["run"] = {**parent["run"], "runId": _run_id(parent["run"]["runId"])}
        facets["parent"] = _with_uuid_root(parent)
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

    # Only the final event carries the run's facets (they describe its final state); the others carry its parent.
    side_facets = {"parent": facets["parent"]} if "parent" in facets else {}

    def event(state: str, moment: datetime, final: bool = False) -> dict[str, Any]:
        return {
            "eventType": state,
            "eventTime": _time(moment),
            "producer": producer,
            "schemaURL": f"{SPEC}/RunEvent",
            "run": {"runId": _run_id(run.run_id), "facets": facets if final else side_facets},
            "job": _job(run.job, producer),
            "inputs": inputs,
            "outputs": outputs,
        }

    # The gateway keeps of a run's events its winning state (at its state time), when it started (the first START
    # or RUNNING, if any) and the span of all its events. START goes only where the run did start: a run seen only
    # through terminal events has no start time, and the target must not make one up. OTHER events, which change
    # neither the state nor the start, carry the first and the last event times where the others do not.
    events = []
    if run.started_at is not None and not (run.state == "START" and run.started_at == run.state_time):
        events.append(event("START", run.started_at))
    times = [moment for moment in (run.started_at, run.state_time) if moment is not None]
    if run.first_event_time < min(times):
        events.append(event("OTHER", run.first_event_time))
    events.append(event(run.state, run.state_time, final=True))
    if run.event_time > max(times):
        events.append(event("OTHER", run.event_time))
    return events


def _with_uuid_root(parent: dict[str, Any]) -> dict[str, Any]:
    root = parent.get("root")
    if isinstance(root, dict) and isinstance(root.get("run"), dict) and isinstance(root["run"].get("runId"), str):
        parent["root"] = {**root, "run": {**root["run"], "runId": _run_id(root["run"]["runId"])}}
    return parent


def to_events(batch: ChangeBatch, producer: str, now: datetime) -> list[dict[str, Any]]:
    """DatasetEvents for the assets, JobEvents for the jobs (their type and description change without any run)
    and for declared lineage, RunEvents for the runs. Event times come from the gateway's own state, so shipping
    the same state again sends the same events (`now` only stands in for a job never changed since the feed
    began)."""
    events = [dataset_event(asset, producer, batch.versions.get(version_key("asset", asset))) for asset in batch.assets]
    for job in batch.jobs:
        version = batch.versions.get(version_key("job", job))
        events.append(job_event(job, [], producer, version.changed_at if version and version.changed_at else now))
    # The target declares every input of a JobEvent to feed every output: one event per (job, downstream), whose
    # inputs are the upstreams declared into it, makes exactly the declared edges.
    declared: dict[tuple[str, str, str], tuple[JobRecord, list[EdgeRecord]]] = {}
    for edge in batch.edges:
        if edge.origin == "declared" and edge.job is not None and edge.retired_at is None:
            group = (edge.job.namespace, edge.job.name, edge.downstream)
            declared.setdefault(group, (edge.job, []))[1].append(edge)
    for job, edges in declared.values():
        times = [edge.last_seen_at for edge in edges]
        times += [v.changed_at for e in edges if (v := batch.versions.get(version_key("edge", e))) and v.changed_at]
        events.append(job_event(job, edges, producer, max(times)))
    for run in batch.runs:
        if not run.placeholder:
            # A placeholder is known only from its children's parent facets, which make it at the target too.
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
        # Asynchronous transports (async_http) count an event they gave up on as processed: only their failure
        # count tells that the target did not accept it.
        stats = getattr(self.transport, "get_stats", None)
        failed_before = int(stats().get("failed", 0)) if callable(stats) else 0
        for event in events:
            self.transport.emit(event)  # type: ignore[arg-type]  # the transports serialise plain dicts too
        waiter = getattr(self.transport, "wait_for_completion", None)
        if callable(waiter) and not waiter():
            raise RuntimeError(f"transport {self.transport.kind} did not deliver every event")
        failed = int(stats().get("failed", 0)) - failed_before if callable(stats) else 0
        if failed > 0:
            raise RuntimeError(f"transport {self.transport.kind}: the target refused {failed} of {len(events)} events")

    async def aclose(self) -> None:
        await asyncio.to_thread(self.transport.close)
