"""GraphQL inputs and their translation into store arguments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gateway.errors import InvalidInput
from gateway.store.asset_filters import AssetFilter, MetadataMatch
from gateway.store.assets import AssetSpec
from schema.types.common import RunState, as_utc
from schema.types.monitoring import AssetStatus

MAX_FILTER_VALUES = 1_000


@strawberry.input
class MetadataMatchInput:
    key: str
    value: JSON


@strawberry.input(description="All given conditions must hold.")
class AssetFilterInput:
    keys: list[str] | None = None
    key_prefix: str | None = None
    search: str | None = strawberry.field(default=None, description="Substring of key, name or description.")
    namespace: str | None = None
    namespace_prefix: str | None = None
    types: list[str] | None = None
    owner: str | None = None
    tags: list[str] | None = strawberry.field(default=None, description="The asset carries every one of these.")
    metadata: list[MetadataMatchInput] | None = None
    last_status: list[RunState] | None = None
    status: list[AssetStatus] | None = strawberry.field(
        default=None, description="The latest freshness sweep's verdict: FRESH, STALE, AT_RISK, FAILED, UNKNOWN."
    )
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    materialized_after: datetime | None = None
    materialized_before: datetime | None = None
    include_deleted: bool = False

    def to_filter(self) -> AssetFilter:
        for name, values in (
            ("keys", self.keys),
            ("types", self.types),
            ("tags", self.tags),
            ("metadata", self.metadata),
        ):
            # Each value is a parameter of the query, and Postgres takes at most 32,767 of them.
            if values is not None and len(values) > MAX_FILTER_VALUES:
                raise InvalidInput(f"a filter's {name} holds at most {MAX_FILTER_VALUES} values, got {len(values)}")
        return AssetFilter(
            keys=self.keys,
            key_prefix=self.key_prefix,
            search=self.search,
            namespace=self.namespace,
            namespace_prefix=self.namespace_prefix,
            types=self.types,
            owner=self.owner,
            tags=self.tags,
            metadata=tuple(MetadataMatch(match.key, match.value) for match in self.metadata or ()),
            last_statuses=[state.value for state in self.last_status] if self.last_status is not None else None,
            health_statuses=[status.value for status in self.status] if self.status is not None else None,
            updated_after=as_utc(self.updated_after),
            updated_before=as_utc(self.updated_before),
            materialized_after=as_utc(self.materialized_after),
            materialized_before=as_utc(self.materialized_before),
            include_deleted=self.include_deleted,
        )


@strawberry.input
class SchemaFieldInput:
    name: str
    type: str | None = None
    description: str | None = None


@strawberry.input(description="A declaration of an asset; omitted attributes keep their stored values.")
class AssetInput:
    key: str
    namespace: str | None = None
    name: str | None = None
    type: str | None = None
    display_name: str | None = None
    description: str | None = None
    owners: list[str] | None = None
    tags: list[str] | None = None
    metadata: JSON | None = None
    schema: list[SchemaFieldInput] | None = None
    upstream: list[str] | None = strawberry.field(
        default=None, description="Keys of the assets this one is derived from; replaces the declared set."
    )
    aliases: list[str] | None = None

    def to_spec(self) -> AssetSpec:
        key = self.key.strip()
        return AssetSpec(
            key=key,
            namespace=self.namespace,
            name=self.name,
            type=self.type,
            display_name=self.display_name,
            description=self.description,
            owners=self.owners,
            tags=self.tags,
            metadata=_json_object(self.metadata, "metadata"),
            fields=[_field(field) for field in self.schema] if self.schema is not None else None,
            upstream_keys=self.upstream,
            # An asset's own key is no alias of it (stored as one, it would block re-declaring the asset).
            aliases=tuple(alias for alias in self.aliases or () if alias != key),
        )


def _field(field: SchemaFieldInput) -> dict[str, Any]:
    return {"name": field.name, "type": field.type, "description": field.description}


def _json_object(value: Any, what: str) -> dict[str, Any] | None:
    from gateway.errors import InvalidInput

    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


@strawberry.input
class JobInput:
    namespace: str
    name: str
    type: str | None = None
    description: str | None = None


@strawberry.input
class ParentRunInput:
    run_id: str
    job: JobInput


@strawberry.input(description="An asset an execution read or wrote; descriptive fields also declare it.")
class ExecutionAssetInput:
    key: str
    facets: JSON | None = None
    type: str | None = None
    description: str | None = None
    owners: list[str] | None = None
    tags: list[str] | None = None
    metadata: JSON | None = None

    def declaration(self) -> AssetSpec | None:
        if all(value is None for value in (self.type, self.description, self.owners, self.tags, self.metadata)):
            return None
        return AssetSpec(
            key=self.key.strip(),
            type=self.type,
            description=self.description,
            owners=self.owners,
            tags=self.tags,
            metadata=_json_object(self.metadata, "metadata"),
        )


@strawberry.input(description="A Kestra-style declaration of what an execution did.")
class RecordExecutionInput:
    job: JobInput
    state: RunState
    run_id: str | None = strawberry.field(default=None, description="Generated when absent.")
    event_time: datetime | None = strawberry.field(default=None, description="Defaults to now.")
    started_at: datetime | None = None
    ended_at: datetime | None = None
    inputs: list[ExecutionAssetInput] = strawberry.field(default_factory=list)
    outputs: list[ExecutionAssetInput] = strawberry.field(default_factory=list)
    parent: ParentRunInput | None = None
    facets: JSON | None = None
    error_message: str | None = None


@strawberry.input
class ExecutionFilterInput:
    job_namespace: str | None = None
    job_name: str | None = None
    states: list[RunState] | None = None
    after: datetime | None = None
    before: datetime | None = None
