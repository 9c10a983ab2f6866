"""What a shipper receives: plain records of the current state of everything a batch of changes touched."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class JobRecord:
    namespace: str
    name: str
    type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class AssetRecord:
    key: str
    namespace: str
    name: str
    type: str | None
    display_name: str | None
    description: str | None
    owners: list[str]
    tags: list[str]
    metadata: dict[str, Any]
    fields: list[dict[str, Any]]
    aliases: list[str]
    updated_at: datetime
    last_materialized_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class DatasetTouchRecord:
    key: str
    namespace: str
    name: str
    facets: dict[str, Any]


@dataclass(frozen=True)
class ParentRecord:
    run_id: str
    job: JobRecord


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: JobRecord
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    first_event_time: datetime
    event_time: datetime
    state_time: datetime
    facets: dict[str, Any]
    error_message: str | None
    parent: ParentRecord | None
    inputs: list[DatasetTouchRecord]
    outputs: list[DatasetTouchRecord]
    # Known only as another run's parent (no event of its own yet): its state and times are not its own.
    placeholder: bool = False


@dataclass(frozen=True)
class EdgeRecord:
    upstream: str
    downstream: str
    job: JobRecord | None
    origin: str
    first_seen_at: datetime
    last_seen_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class ColumnLineageRecord:
    """Field `downstream_field` of asset `downstream` derives from field `upstream_field` of asset `upstream`."""

    downstream: str
    downstream_field: str
    upstream: str
    upstream_field: str
    transformation_type: str | None = None
    transformation_subtype: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Version:
    """The newest change of an entity a batch includes: its feed id, which grows with every change of the entity
    (so a target keeps the state of the greatest one), and when it was written."""

    change_id: int
    changed_at: datetime | None = None


def version_key(kind: str, record: AssetRecord | JobRecord | RunRecord | EdgeRecord) -> tuple[str, Any]:
    """The key of a record in `ChangeBatch.versions`: its type and natural id."""
    if isinstance(record, AssetRecord):
        return (kind, record.key)
    if isinstance(record, JobRecord):
        return (kind, (record.namespace, record.name))
    if isinstance(record, RunRecord):
        return (kind, record.run_id)
    job = (record.job.namespace, record.job.name) if record.job else None
    return (kind, (record.upstream, record.downstream, job))


@dataclass
class ChangeBatch:
    """Current state of what changed; shipping it twice must leave the target as shipping it once."""

    assets: list[AssetRecord] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    edges: list[EdgeRecord] = field(default_factory=list)
    changes: int = 0
    # version_key(type, record) -> Version, for every asset, job, run and edge record of the batch.
    versions: dict[tuple[str, Any], Version] = field(default_factory=dict)
    # Per downstream asset key that an edge of the batch leads to: all its live upstream edges now (empty once the
    # last retired) and the column lineage from those upstreams. For targets that replace a dataset's whole lineage.
    upstreams: dict[str, list[EdgeRecord]] = field(default_factory=dict)
    column_lineage: dict[str, list[ColumnLineageRecord]] = field(default_factory=dict)
    # Asset key -> (namespace, name) of every asset `upstreams` and `column_lineage` name.
    names: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.assets) + len(self.jobs) + len(self.runs) + len(self.edges)
