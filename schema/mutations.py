"""Write side of the API. Each mutation is one transaction: all of it happens, or none of it."""

from __future__ import annotations

import uuid

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import declarations
from gateway.database import run_transaction
from gateway.errors import InvalidInput
from gateway.orm import Asset as AssetRow
from gateway.orm import Run
from gateway.store import executions
from schema import authz
from schema.context import Info
from schema.inputs import AssetInput, ExecutionAssetInput, RecordExecutionInput
from schema.types.asset import Asset
from schema.types.common import as_utc
from schema.types.execution import Execution


def _touches(items: list[ExecutionAssetInput]) -> list[executions.DatasetTouch]:
    touches = []
    for item in items:
        if item.facets is not None and not isinstance(item.facets, dict):
            raise InvalidInput(f"facets of {item.key!r} must be a JSON object")
        touches.append(executions.DatasetTouch(key=item.key.strip(), facets=item.facets or {}))
    return touches


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create or update an asset from a declaration.")
    async def upsert_asset(self, info: Info, input: AssetInput) -> Asset:
        spec = input.to_spec()
        namespaces = [
            authz.key_namespace(spec.key, spec.namespace),
            *(authz.key_namespace(key) for key in spec.upstream_keys or ()),
            *authz.alias_namespaces(spec.aliases),
        ]
        authz.require_write_namespaces(info, namespaces, "upsertAsset")
        now = info.context.now()

        async def work(session: AsyncSession) -> AssetRow:
            await authz.check_existing_asset(info, session, spec.key, "upsertAsset")
            row = await declarations.declare_asset(session, spec, now)
            authz.check_written_asset(info, row, "upsertAsset")
            return row

        return Asset.from_row(await run_transaction(info.context.db, work))

    @strawberry.mutation(description="Soft-delete an asset: hidden from the catalog and lineage, kept for history.")
    async def delete_asset(self, info: Info, key: str) -> Asset:
        authz.check_written_asset(info, await authz.visible_asset(info, key), "deleteAsset")
        now = info.context.now()

        async def work(session: AsyncSession) -> AssetRow:
            row = await declarations.delete_asset(session, key, now)
            authz.check_written_asset(info, row, "deleteAsset")
            return row

        return Asset.from_row(await run_transaction(info.context.db, work))

    @strawberry.mutation(description="Map other identifiers (URNs, paths, symlinks) onto an asset.")
    async def add_asset_aliases(self, info: Info, key: str, aliases: list[str]) -> Asset:
        authz.check_written_asset(info, await authz.visible_asset(info, key), "addAssetAliases")
        authz.require_write_namespaces(info, authz.alias_namespaces(aliases), "addAssetAliases")
        now = info.context.now()

        async def work(session: AsyncSession) -> AssetRow:
            row = await declarations.declare_aliases(session, key, aliases, now)
            authz.check_written_asset(info, row, "addAssetAliases")
            return row

        return Asset.from_row(await run_transaction(info.context.db, work))

    @strawberry.mutation(description="Record what an execution did: its job, state, inputs and outputs.")
    async def record_execution(self, info: Info, input: RecordExecutionInput) -> Execution:
        now = info.context.now()
        if input.facets is not None and not isinstance(input.facets, dict):
            raise InvalidInput("facets must be a JSON object")
        parent = None
        if input.parent is not None:
            parent = executions.ParentRef(input.parent.run_id, input.parent.job.namespace, input.parent.job.name)
        record = executions.ExecutionRecord(
            job_namespace=input.job.namespace,
            job_name=input.job.name,
            job_type=input.job.type,
            job_description=input.job.description,
            run_id=input.run_id or str(uuid.uuid4()),
            state=input.state.value,
            event_time=as_utc(input.event_time) or now,
            started_at=as_utc(input.started_at),
            ended_at=as_utc(input.ended_at),
            inputs=_touches(input.inputs),
            outputs=_touches(input.outputs),
            parent=parent,
            facets=input.facets or {},
            error_message=input.error_message,
        )
        specs = [spec for item in (*input.inputs, *input.outputs) if (spec := item.declaration())]
        namespaces = [record.job_namespace, *(authz.key_namespace(t.key) for t in (*record.inputs, *record.outputs))]
        if parent is not None:
            namespaces.append(parent.job_namespace)
        authz.require_write_namespaces(info, namespaces, "recordExecution")

        async def work(session: AsyncSession) -> Run:
            run = await declarations.declare_execution(session, record, specs, now)
            await authz.check_written_run(info, session, run.id, "recordExecution")
            return run

        return Execution.from_row(await run_transaction(info.context.db, work))
