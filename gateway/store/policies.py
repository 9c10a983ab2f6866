"""Freshness policies: declared per asset or per selector; the most specific one governs an asset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import ColumnElement, and_, case, delete, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput, NotFound
from gateway.orm import POLICY_KINDS, SEVERITIES, Asset, FreshnessPolicy
from gateway.store.asset_filters import AssetFilter, asset_conditions
from gateway.store.sql import insert, one_of

SELECTOR_FIELDS = ("namespace_prefix", "type", "tag", "owner", "key_glob")
logger = logging.getLogger("gateway.monitors")


MAX_AGE_SECONDS = 2**31 - 1


def _width(column: Any) -> int:
    length: int = column.type.length
    return length


CRON_LENGTH = _width(FreshnessPolicy.__table__.c.cron)


@dataclass(frozen=True)
class PolicySpec:
    name: str
    kind: str
    severity: str = "warn"
    asset_key: str | None = None
    selector: dict[str, str] | None = None
    max_age_seconds: int | None = None
    cron: str | None = None
    timezone: str = "UTC"
    tolerance: float | None = None
    min_history: int | None = None
    source: str = "api"

    def validate(self) -> None:
        if not self.name or len(self.name) > 255:
            raise InvalidInput("policy name must be 1..255 characters")
        if self.kind not in POLICY_KINDS:
            raise InvalidInput(f"policy kind must be one of {', '.join(POLICY_KINDS)}")
        if self.severity not in SEVERITIES:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}")
        if (self.asset_key is None) == (not self.selector):
            raise InvalidInput("a policy applies either to one asset (assetKey) or to a selector, not both")
        unknown = set(self.selector or {}) - set(SELECTOR_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown selector fields {sorted(unknown)}; use {', '.join(SELECTOR_FIELDS)}")
        if self.kind == "max_age" and not (self.max_age_seconds and self.max_age_seconds > 0):
            raise InvalidInput("a max_age policy needs a positive maximum age")
        # The column is a 32-bit integer (about 68 years): beyond it Postgres refuses the row.
        if self.max_age_seconds is not None and self.max_age_seconds > MAX_AGE_SECONDS:
            raise InvalidInput(f"a maximum age is at most {MAX_AGE_SECONDS} seconds, got {self.max_age_seconds}")
        if self.kind == "cron" and not self.cron:
            raise InvalidInput("a cron policy needs a cron expression")
        # A policy the sweep cannot evaluate must not get in: deadlines are computed for every policy.
        if self.cron is not None and len(self.cron) > CRON_LENGTH:
            raise InvalidInput(f"a cron expression holds at most {CRON_LENGTH} characters, got {len(self.cron)}")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise InvalidInput(f"{self.cron!r} is not a cron expression (minute hour day month weekday)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown time zone {self.timezone!r}") from None
        if self.tolerance is not None and not self.tolerance > 0:
            raise InvalidInput("tolerance must be positive")
        if self.min_history is not None and self.min_history < 2:
            raise InvalidInput("min_history must be at least 2")


def specificity(policy: FreshnessPolicy) -> tuple[int, int]:
    """Asset policies beat selectors; among selectors, more criteria and longer patterns win."""
    if policy.asset_id is not None:
        return (1000, 0)
    selector = policy.selector or {}
    length = len(selector.get("namespace_prefix", "")) + len(selector.get("key_glob", "").replace("*", ""))
    return (len(selector), length)


def _glob_to_like(glob: str) -> str:
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _key_glob_condition(glob: str, dialect: str) -> ColumnElement[bool]:
    """Case-sensitive on both dialects; only `*` and `?` are wildcards."""
    if dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case (Postgres' does not); GLOB is case-sensitive. `[` opens a
        # character class in GLOB, so it is matched literally as the class `[[]`.
        return Asset.key.op("GLOB", is_comparison=True)(glob.replace("[", "[[]"))
    return Asset.key.like(_glob_to_like(glob), escape="\\")


def selector_condition(selector: dict[str, str], dialect: str) -> ColumnElement[bool]:
    asset_filter = AssetFilter(
        namespace_prefix=selector.get("namespace_prefix"),
        types=[selector["type"]] if "type" in selector else None,
        tags=[selector["tag"]] if "tag" in selector else None,
        owner=selector.get("owner"),
    )
    conditions = asset_conditions(asset_filter, dialect)
    if "key_glob" in selector:
        conditions.append(_key_glob_condition(selector["key_glob"], dialect))
    return and_(*conditions) if conditions else true()


def governing_policy(
    policies: Sequence[FreshnessPolicy], asset_policy_id: Any, dialect: str
) -> ColumnElement[int | None]:
    """SQL: the id of the policy that governs each asset row (NULL when none does). `asset_policy_id` is the
    id of the asset's own policy, NULL when it has none: a column of `freshness_policies` left-joined on
    `asset_id`, rather than a subquery run once per asset."""
    selectors = sorted(
        (p for p in policies if p.asset_id is None and p.selector),
        key=lambda p: (specificity(p), p.name),
        reverse=True,
    )
    whens = [(selector_condition(p.selector or {}, dialect), literal(p.id)) for p in selectors]
    fallback: ColumnElement[Any] = case(*whens, else_=None) if whens else literal(None)
    return case((asset_policy_id.is_not(None), asset_policy_id), else_=fallback)


async def list_policies(session: AsyncSession) -> list[FreshnessPolicy]:
    return list((await session.scalars(select(FreshnessPolicy).order_by(FreshnessPolicy.name))).all())


async def upsert_policy(session: AsyncSession, spec: PolicySpec, now: datetime) -> FreshnessPolicy:
    spec.validate()
    asset_id = None
    if spec.asset_key is not None:
        from gateway.store.assets import read_asset_by_key

        asset = await read_asset_by_key(session, spec.asset_key)
        if asset is None:
            raise NotFound(f"no asset with key {spec.asset_key!r}")
        asset_id = asset.id
        # One policy per asset: a new declaration replaces the previous one, whatever its name.
        await session.execute(
            delete(FreshnessPolicy).where(FreshnessPolicy.asset_id == asset_id, FreshnessPolicy.name != spec.name)
        )
    values = {
        "asset_id": asset_id,
        "selector": spec.selector if spec.asset_key is None else None,
        "kind": spec.kind,
        "max_age_seconds": spec.max_age_seconds,
        "cron": spec.cron,
        "timezone": spec.timezone,
        "severity": spec.severity,
        "tolerance": spec.tolerance,
        "min_history": spec.min_history,
        "source": spec.source,
        "updated_at": now,
    }
    statement = (
        insert(session, FreshnessPolicy)
        .values(name=spec.name, created_at=now, **values)
        .on_conflict_do_update(index_elements=["name"], set_=values)
        .returning(FreshnessPolicy.id)
    )
    policy_id = (await session.execute(statement)).scalar_one()
    policy = await session.get(FreshnessPolicy, policy_id, populate_existing=True)
    assert policy is not None
    return policy


async def delete_policy(session: AsyncSession, name: str) -> bool:
    result = await session.execute(delete(FreshnessPolicy).where(FreshnessPolicy.name == name))
    return bool(getattr(result, "rowcount", 0))


async def sync_config_policies(session: AsyncSession, specs: Sequence[PolicySpec], now: datetime) -> list[str]:
    """Make the config-file policies exactly `specs`; API-declared policies are left alone.

    A config policy never replaces an API one (same name, or another policy for the same asset), and
    one for an asset not (yet) known waits for a later sync: both are skipped, and their names returned.
    """
    from gateway.store.assets import read_asset_by_key

    others = (
        await session.execute(
            select(FreshnessPolicy.name, FreshnessPolicy.asset_id).where(FreshnessPolicy.source != "config")
        )
    ).all()
    taken_names = {name for name, _ in others}
    taken_assets = {asset_id for _, asset_id in others if asset_id is not None}
    skipped: list[str] = []
    for spec in specs:
        spec = replace(spec, source="config")
        spec.validate()
        if spec.name in taken_names:
            logger.warning("config policy %r skipped: an API-declared policy has that name", spec.name)
            skipped.append(spec.name)
            continue
        if spec.asset_key is not None:
            asset = await read_asset_by_key(session, spec.asset_key)
            if asset is None or asset.id in taken_assets:
                reason = "no such asset yet" if asset is None else "the asset has an API-declared policy"
                logger.warning("config policy %r for %r skipped: %s", spec.name, spec.asset_key, reason)
                skipped.append(spec.name)
                continue
        await upsert_policy(session, spec, now)
    names = [spec.name for spec in specs]
    await session.execute(
        delete(FreshnessPolicy).where(FreshnessPolicy.source == "config", FreshnessPolicy.name.not_in(names))
    )
    return skipped


async def governing_policy_ids(
    session: AsyncSession, asset_ids: Sequence[int], policies: Sequence[FreshnessPolicy]
) -> dict[int, int | None]:
    """asset id -> the policy that governs it, by the very rule the sweep applies."""
    if not asset_ids:
        return {}
    from gateway.store.sql import dialect_name

    own = FreshnessPolicy.__table__.alias("own")
    rows = await session.execute(
        select(Asset.id, governing_policy(policies, own.c.id, dialect_name(session)))
        .select_from(Asset)
        .outerjoin(own, own.c.asset_id == Asset.id)
        .where(one_of(session, Asset.id, asset_ids))
    )
    return dict(rows.all())
