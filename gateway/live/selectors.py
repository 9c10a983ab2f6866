"""The three kinds of live subscription: changed assets, updated executions, raised alerts.

Each selects, from a batch of changed row ids, those its filter matches, with the store's own filter compilation:
the filters carry the subscriber's namespace grants as they do for queries. Subscriptions with equal keys (the
same filter and grants) share one statement per batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import live
from gateway.store.alerts import AlertFilter
from gateway.store.asset_filters import AssetFilter


@dataclass(frozen=True)
class AssetSelector:
    filter: AssetFilter

    @property
    def kind(self) -> Literal["asset"]:
        return "asset"

    @cached_property
    def key(self) -> Hashable:
        # Filters hold lists (unhashable); their repr, grants included, is a faithful and stable key.
        return ("asset", repr(self.filter))

    async def select(self, session: AsyncSession, ids: Sequence[int]) -> set[int]:
        return await live.match_asset_ids(session, ids, self.filter)


@dataclass(frozen=True)
class ExecutionSelector:
    match: live.ExecutionMatch

    @property
    def kind(self) -> Literal["run"]:
        return "run"

    @cached_property
    def key(self) -> Hashable:
        return ("run", repr(self.match))

    async def select(self, session: AsyncSession, ids: Sequence[int]) -> set[int]:
        return await live.match_run_ids(session, ids, self.match)


@dataclass(frozen=True)
class AlertSelector:
    filter: AlertFilter

    @property
    def kind(self) -> Literal["alert"]:
        return "alert"

    @cached_property
    def key(self) -> Hashable:
        return ("alert", repr(self.filter))

    async def select(self, session: AsyncSession, ids: Sequence[int]) -> set[int]:
        return await live.match_alert_ids(session, ids, self.filter)
