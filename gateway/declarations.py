"""Declarations made through the API, written to the same event log as OpenLineage events.

Each declaration is stored (kind `api.*`, its input as JSON) and applied in one transaction, so that
`reindex` rebuilds API-declared assets and executions exactly as it rebuilds what producers sent.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import NotFound
from gateway.orm import Asset, FreshnessPolicy, Run
from gateway.store.assets import AssetSpec, add_aliases, read_asset_by_key, soft_delete_asset, upsert_asset
from gateway.store.events import RawEvent, store_raw_event
from gateway.store.executions import DatasetTouch, ExecutionRecord, ParentRef, record_execution
from gateway.store.policies import PolicySpec, delete_policy, upsert_policy

PRODUCER = "urn:asset-gateway:api"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$time": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _encode(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    return value


def _decode_times(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$time"}:
            return datetime.fromisoformat(value["$time"])
        return {key: _decode_times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_times(item) for item in value]
    return value


async def _log(session: AsyncSession, kind: str, payload: dict[str, Any], now: datetime) -> None:
    raw = RawEvent(
        content_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        kind=kind,
        event_time=now,
        payload=_encode(payload),
        producer=PRODUCER,
    )
    await store_raw_event(session, raw, now)


def _spec(payload: dict[str, Any]) -> AssetSpec:
    return AssetSpec(**payload)


def _record(payload: dict[str, Any]) -> ExecutionRecord:
    values = dict(payload)
    values["inputs"] = [DatasetTouch(**touch) for touch in values["inputs"]]
    values["outputs"] = [DatasetTouch(**touch) for touch in values["outputs"]]
    values["parent"] = ParentRef(**values["parent"]) if values["parent"] else None
    return ExecutionRecord(**values)


async def _apply_asset(session: AsyncSession, payload: dict[str, Any], now: datetime) -> Asset:
    return await upsert_asset(session, _spec(payload["spec"]), now)


async def _apply_execution(session: AsyncSession, payload: dict[str, Any], now: datetime) -> Run:
    for spec in payload["declarations"]:
        await upsert_asset(session, _spec(spec), now)
    return await record_execution(session, _record(payload["record"]), now)


async def _apply_deletion(session: AsyncSession, payload: dict[str, Any], now: datetime) -> Asset:
    return await soft_delete_asset(session, payload["key"], now)


async def _apply_aliases(session: AsyncSession, payload: dict[str, Any], now: datetime) -> Asset:
    asset = await read_asset_by_key(session, payload["key"])
    if asset is None:
        raise NotFound(f"no asset with key {payload['key']!r}")
    # An asset's own key is no alias of it (stored as one, it would block re-declaring the asset).
    await add_aliases(session, asset.id, [alias for alias in payload["aliases"] if alias != asset.key], "api", now)
    return asset


APPLIERS: dict[str, Callable[[AsyncSession, dict[str, Any], datetime], Awaitable[Any]]] = {
    "api.asset": _apply_asset,
    "api.execution": _apply_execution,
    "api.deletion": _apply_deletion,
    "api.aliases": _apply_aliases,
}


async def apply_declaration(session: AsyncSession, kind: str, payload: dict[str, Any], now: datetime) -> Any:
    """Replay one logged declaration at the time it was first made."""
    return await APPLIERS[kind](session, _decode_times(payload), now)


async def declare_asset(session: AsyncSession, spec: AssetSpec, now: datetime) -> Asset:
    payload = {"spec": dataclasses.asdict(spec)}
    asset = await _apply_asset(session, payload, now)
    await _log(session, "api.asset", payload, now)
    return asset


async def declare_execution(
    session: AsyncSession, record: ExecutionRecord, declarations: list[AssetSpec], now: datetime
) -> Run:
    payload = {"record": record, "declarations": declarations}
    run = await _apply_execution(session, _decode_times(_encode(payload)), now)
    await _log(session, "api.execution", payload, now)
    return run


async def delete_asset(session: AsyncSession, key: str, now: datetime) -> Asset:
    payload = {"key": key}
    asset = await _apply_deletion(session, payload, now)
    await _log(session, "api.deletion", payload, now)
    return asset


async def declare_aliases(session: AsyncSession, key: str, aliases: list[str], now: datetime) -> Asset:
    payload = {"key": key, "aliases": aliases}
    asset = await _apply_aliases(session, payload, now)
    await _log(session, "api.aliases", payload, now)
    return asset


async def _apply_policy(session: AsyncSession, payload: dict[str, Any], now: datetime) -> FreshnessPolicy:
    return await upsert_policy(session, PolicySpec(**payload["spec"]), now)


async def _apply_policy_deletion(session: AsyncSession, payload: dict[str, Any], now: datetime) -> bool:
    return await delete_policy(session, payload["name"])


APPLIERS["api.policy"] = _apply_policy
# The event log's `kind` holds 16 characters (Postgres enforces it): "api.policy_deletion" did not fit, so that
# deleting a policy failed there. SQLite logs may still hold it under that name, which replays alike.
POLICY_DELETION = "api.policy_drop"
APPLIERS[POLICY_DELETION] = _apply_policy_deletion
APPLIERS["api.policy_deletion"] = _apply_policy_deletion


async def declare_policy(session: AsyncSession, spec: PolicySpec, now: datetime) -> FreshnessPolicy:
    payload = {"spec": dataclasses.asdict(spec)}
    policy = await _apply_policy(session, payload, now)
    await _log(session, "api.policy", payload, now)
    return policy


async def remove_policy(session: AsyncSession, name: str, now: datetime) -> bool:
    payload = {"name": name}
    removed = await _apply_policy_deletion(session, payload, now)
    await _log(session, POLICY_DELETION, payload, now)
    return removed
