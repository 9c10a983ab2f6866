"""Live updates (graphql-transport-ws on /graphql): assets as they change, executions as they progress, alerts
as monitors raise them. Filters and namespace grants are the queries' own; each update is the same GraphQL type
the queries return, resolved fresh when it is sent."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any, TypeVar

import strawberry

from gateway.live import AlertSelector, AssetSelector, ExecutionSelector, LiveUnavailable, Selector
from gateway.store import live as live_store
from gateway.store.asset_filters import asset_conditions
from gateway.store.runs import RunFilter
from schema.context import Info
from schema.inputs import AssetFilterInput
from schema.loaders import Loaders
from schema.monitoring import AlertFilterInput
from schema.types.asset import Asset
from schema.types.common import RunState
from schema.types.execution import Execution
from schema.types.monitoring import Alert

T = TypeVar("T")


@strawberry.input(description="All given conditions must hold.")
class ExecutionUpdateFilterInput:
    job_namespace: str | None = None
    job_name: str | None = None
    states: list[RunState] | None = None
    asset_key: str | None = strawberry.field(
        default=None, description="An asset the execution read or wrote, by key or alias."
    )


async def _follow(info: Info, selector: Selector, convert: Callable[[Any], T]) -> AsyncGenerator[T, None]:
    context = info.context
    if context.live is None:
        raise LiveUnavailable("subscriptions are not served by this endpoint")
    on_drop = None
    if context.websocket is not None:
        on_drop = functools.partial(context.websocket.drop, operation=asyncio.current_task())
    subscription = await context.live.subscribe(selector, on_drop)
    try:
        async for row in subscription:
            # Each update is resolved against the database as it is now, not a cache of the last one.
            context.loaders = Loaders(context.db, context.principal)
            yield convert(row)
    finally:
        context.live.unsubscribe(subscription)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Assets as they change (declared, written, deleted...), filtered like `assets`; "
        "soft-deleted ones only with `includeDeleted`."
    )
    async def asset_changed(self, info: Info, filter: AssetFilterInput | None = None) -> AsyncGenerator[Asset, None]:
        asset_filter = replace((filter or AssetFilterInput()).to_filter(), grants=info.context.loaders.grants)
        asset_conditions(asset_filter, info.context.db.dialect)  # a bad filter fails now, not at the first change
        async with aclosing(_follow(info, AssetSelector(asset_filter), Asset.from_row)) as updates:
            async for asset in updates:
                yield asset

    @strawberry.subscription(description="Executions as they start, progress and end.")
    async def execution_updated(
        self, info: Info, filter: ExecutionUpdateFilterInput | None = None
    ) -> AsyncGenerator[Execution, None]:
        f = filter or ExecutionUpdateFilterInput()
        runs = RunFilter(
            job_namespace=f.job_namespace,
            job_name=f.job_name,
            states=[state.value for state in f.states] if f.states is not None else None,
            grants=info.context.loaders.grants,
        )
        match = live_store.ExecutionMatch(runs=runs, asset_key=f.asset_key.strip() if f.asset_key else None)
        async with aclosing(_follow(info, ExecutionSelector(match), Execution.from_row)) as updates:
            async for execution in updates:
                yield execution

    @strawberry.subscription(description="Alerts as monitors open them, filtered like `alerts`.")
    async def alert_raised(self, info: Info, filter: AlertFilterInput | None = None) -> AsyncGenerator[Alert, None]:
        alert_filter = replace((filter or AlertFilterInput()).to_filter(), grants=info.context.loaders.grants)
        async with aclosing(_follow(info, AlertSelector(alert_filter), Alert.from_row)) as updates:
            async for alert in updates:
                yield alert
