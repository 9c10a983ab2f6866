"""Execution: one run of a job, what it read and wrote, and where it sits in the run hierarchy."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql.pyutils import Undefined, UndefinedType
from strawberry.scalars import JSON

from gateway import orm
from gateway.store.runs import RunColumns
from schema.context import Info
from schema.execution import AT_HAND
from schema.types.common import Role, RunState, as_json, reference_field
from schema.types.job import Job

if TYPE_CHECKING:
    from schema.types.asset import Asset

AssetRef = Annotated["Asset", strawberry.lazy("schema.types.asset")]


@strawberry.type(description="An asset as one execution saw it: read or written, with per-dataset facets.")
class ExecutionAsset:
    asset_id: strawberry.Private[int]
    role: Role
    event_time: datetime
    facets: JSON

    @classmethod
    def from_row(cls, row: orm.RunAsset) -> ExecutionAsset:
        return cls(asset_id=row.asset_id, role=Role(row.role), event_time=row.event_time, facets=as_json(row.facets))

    @strawberry.field
    async def asset(self, info: Info) -> AssetRef:
        from schema.types.asset import Asset

        row = await info.context.loaders.asset_by_id.load(self.asset_id)
        assert row is not None, "run_assets references assets by foreign key"
        return Asset.from_row(row)


@strawberry.federation.type(keys=["runId"], description="An execution (run) of a job.")
class Execution:
    id: strawberry.Private[int]
    row: strawberry.Private[RunColumns]
    run_id: str
    state: RunState
    started_at: datetime | None
    ended_at: datetime | None
    event_time: datetime = strawberry.field(description="Time of the latest event of this execution.")
    facets: JSON
    error_message: str | None
    # The run's job, when whoever built this execution read it already (see `Asset.executions`).
    job_row: strawberry.Private[orm.Job | None] = None

    @classmethod
    def from_row(cls, row: RunColumns, job: orm.Job | None = None) -> Execution:
        return cls(
            id=row.id,
            row=row,
            run_id=row.run_id,
            state=RunState(row.state),
            started_at=row.started_at,
            ended_at=row.ended_at,
            event_time=row.event_time,
            facets=as_json(row.facets),
            error_message=row.error_message,
            job_row=job,
        )

    @classmethod
    async def resolve_reference(cls, info: Info, runId: Any = None, **_: Any) -> Execution | None:
        row = await info.context.loaders.run_by_run_id.load(reference_field(runId, "Execution", "runId"))
        return None if row is None else cls.from_row(row)

    @strawberry.field
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def job_at_hand(self) -> Job | UndefinedType:
        return Undefined if self.job_row is None else Job.from_row(self.job_row)

    @strawberry.field(graphql_type=Job, metadata={AT_HAND: job_at_hand})
    def job(self, info: Info) -> Job | Awaitable[Job]:
        # Synchronous when the job came with the run: in a list, an awaitable per item costs a task each.
        at_hand = self.job_at_hand()
        return self._load_job(info) if isinstance(at_hand, UndefinedType) else at_hand

    async def _load_job(self, info: Info) -> Job:
        row = await info.context.loaders.job_by_id.load(self.row.job_id)
        assert row is not None, "runs reference jobs by foreign key"
        return Job.from_row(row)

    @strawberry.field(description="The execution that started this one (a DAG run for a task run).")
    async def parent(self, info: Info) -> Execution | None:
        if self.row.parent_id is None:
            return None
        row = await info.context.loaders.run_by_id.load(self.row.parent_id)
        return None if row is None else Execution.from_row(row)

    @strawberry.field
    async def children(self, info: Info) -> list[Execution]:
        return [Execution.from_row(row) for row in await info.context.loaders.children_by_run.load(self.id)]

    @strawberry.field
    async def inputs(self, info: Info) -> list[ExecutionAsset]:
        rows = await info.context.loaders.run_assets_by_run.load(self.id)
        return [ExecutionAsset.from_row(row) for row in rows if row.role == "input"]

    @strawberry.field
    async def outputs(self, info: Info) -> list[ExecutionAsset]:
        rows = await info.context.loaders.run_assets_by_run.load(self.id)
        return [ExecutionAsset.from_row(row) for row in rows if row.role == "output"]
