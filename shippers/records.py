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


@dataclass(frozen=True)
class EdgeRecord:
    upstream: str
    downstream: str
    job: JobRecord | None
    origin: str
    first_seen_at: datetime
    last_seen_at: datetime
    retired_at: datetime | None


@dataclass
class ChangeBatch:
    """Current state of what changed; shipping it twice must leave the target as shipping it once."""

    assets: list[AssetRecord] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    edges: list[EdgeRecord] = field(default_factory=list)
    changes: int = 0

    def __len__(self) -> int:
        return len(self.assets) + len(self.jobs) + len(self.runs) + len(self.edges)
