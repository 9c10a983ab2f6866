"""When does a policy's asset count as stale? A deadline per max-age or cron policy, at `now`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from gateway.orm import FreshnessPolicy

logger = logging.getLogger("gateway.monitors")


def last_cron_tick(expression: str, timezone: str, now: datetime) -> datetime:
    """The latest moment at or before `now` the cron expression names, in its time zone."""
    local_now = now.astimezone(ZoneInfo(timezone))
    # croniter's get_prev is strict; step a microsecond forward so that a tick exactly at now counts.
    tick: datetime = croniter(expression, local_now + timedelta(microseconds=1)).get_prev(datetime)
    return tick.astimezone(UTC)


def deadline(policy: FreshnessPolicy, now: datetime) -> datetime | None:
    """Materializations before this time are stale; None for learned (per-asset) cadence."""
    if policy.kind == "max_age" and policy.max_age_seconds:
        return now - timedelta(seconds=policy.max_age_seconds)
    if policy.kind == "cron" and policy.cron:
        return last_cron_tick(policy.cron, policy.timezone, now)
    return None


def deadlines(policies: Sequence[FreshnessPolicy], now: datetime) -> dict[int, datetime]:
    """policy id -> deadline. A policy whose cron or time zone cannot be evaluated is left out (its
    assets are judged UNKNOWN) instead of failing the sweep of every asset."""
    found: dict[int, datetime] = {}
    for policy in policies:
        try:
            moment = deadline(policy, now)
        except Exception as error:
            logger.error("freshness policy %r cannot be evaluated: %s: %s", policy.name, type(error).__name__, error)
            continue
        if moment is not None:
            found[policy.id] = moment
    return found
