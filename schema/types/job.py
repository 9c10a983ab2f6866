"""Job: a pipeline step identified by (namespace, name)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from gateway import orm
from gateway.store import runs
from schema.context import Info
from schema.types.common import Connection, as_json, connection_edges, page_size, reference_field

if TYPE_CHECKING:
    from schema.types.execution import Execution

ExecutionRef = Annotated["Execution", strawberry.lazy("schema.types.execution")]


@strawberry.federation.type(keys=["namespace name"], description="A job: what runs, identified by namespace and name.")
class Job:
    id: strawberry.Private[int]
    row: strawberry.Private[orm.Job]
    namespace: str
    name: str
    type: str | None
    description: str | None
    metadata: JSON

    @classmethod
    def from_row(cls, row: orm.Job) -> Job:
        return cls(
            id=row.id,
            row=row,
            namespace=row.namespace,
            name=row.name,
            type=row.type,
            description=row.description,
            metadata=as_json(row.metadata_),
        )

    @classmethod
    async def resolve_reference(cls, info: Info, namespace: Any = None, name: Any = None, **_: Any) -> Job | None:
        job = (reference_field(namespace, "Job", "namespace"), reference_field(name, "Job", "name"))
        row = await info.context.loaders.job_by_name.load(job)
        return None if row is None else cls.from_row(row)

    @strawberry.field(description="The execution of this job with the latest event.")
    async def latest_execution(self, info: Info) -> ExecutionRef | None:
        from schema.types.execution import Execution

        row = await info.context.loaders.latest_run_by_job.load(self.id)
        return None if row is None else Execution.from_row(row)

    @strawberry.field(description="Executions of this job, newest first.")
    async def executions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ExecutionRef]:
        from schema.types.execution import Execution

        async with info.context.db.session() as session:
            page = await runs.list_runs(session, runs.RunFilter(job_ids=[self.id]), page_size(info, first), after)
        edges, page_info = connection_edges(page, Execution.from_row)
        return Connection(edges=edges, page_info=page_info)
