"""What an alert says, in words an operator reads at 6 a.m., and as JSON for machines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.orm import Alert, Asset, AssetHealth, FreshnessPolicy
from gateway.store.asset_records import AssetColumns
from monitors.deadlines import deadline


def human_duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def policy_terms(policy: FreshnessPolicy, health: AssetHealth | None) -> str:
    if policy.kind == "max_age" and policy.max_age_seconds:
        return f"its policy {policy.name!r} allows {human_duration(policy.max_age_seconds)}"
    if policy.kind == "cron":
        return f"its policy {policy.name!r} wants an update after each `{policy.cron}` ({policy.timezone})"
    if health is not None and health.expected_interval_seconds:
        return f"it is usually updated every ~{human_duration(health.expected_interval_seconds)}"
    return f"its policy {policy.name!r} learns its cadence from its history"


def explain(
    asset: AssetColumns,
    policy: FreshnessPolicy | None,
    health: AssetHealth | None,
    now: datetime,
    status: str | None = None,
) -> str:
    """Why the asset has its status, in one sentence."""
    status = status or (health.status if health else "UNKNOWN")
    last = asset.last_materialized_at
    since = f"last updated {human_duration((now - last).total_seconds())} ago" if last else "never materialized"
    if status == "FAILED":
        return f"the latest execution that wrote it failed; {since}"
    if status == "AT_RISK":
        return f"an upstream asset is stale or failed; {since}"
    if policy is None:
        return f"no freshness policy applies; {since}"
    verdict = {"STALE": "stale", "FRESH": "fresh"}.get(status, "not yet judged")
    return f"{verdict}: {since}; {policy_terms(policy, health)}"


def policy_deadline(
    policy: FreshnessPolicy | None, health: AssetHealth | None, asset: AssetColumns, now: datetime
) -> datetime | None:
    """When the asset becomes (or became) stale under its policy."""
    if policy is None:
        return None
    fixed = deadline(policy, now)
    if policy.kind == "max_age" and policy.max_age_seconds and asset.last_materialized_at:
        return asset.last_materialized_at + timedelta(seconds=policy.max_age_seconds)
    if fixed is not None:
        return fixed
    if health is not None and health.expected_interval_seconds and asset.last_materialized_at:
        tolerance = policy.tolerance if policy.tolerance is not None else 1.0
        return asset.last_materialized_at + timedelta(seconds=health.expected_interval_seconds * (1 + tolerance))
    return None


@dataclass(frozen=True)
class AlertMessage:
    event: str
    alert_id: int
    kind: str
    severity: str
    asset_key: str
    namespace: str
    opened_at: datetime
    resolved_at: datetime | None
    text: str

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "alert": {
                "id": self.alert_id,
                "kind": self.kind,
                "severity": self.severity,
                "openedAt": self.opened_at.isoformat(),
                "resolvedAt": self.resolved_at.isoformat() if self.resolved_at else None,
            },
            "asset": {"key": self.asset_key, "namespace": self.namespace},
            "text": self.text,
        }


def build_message(
    event: str,
    alert: Alert,
    asset: Asset,
    policy: FreshnessPolicy | None,
    health: AssetHealth | None,
    now: datetime,
) -> AlertMessage:
    if event == "resolved":
        # Only the alert's own condition is known to have ended: a stale alert also resolves when the
        # asset fails (a 'failed' alert opens) or is deleted, so "fresh again" would be a false claim.
        text = f"RESOLVED {asset.key}: no longer {'stale' if alert.kind == 'stale' else 'failing'}"
    elif alert.kind == "failed":
        text = f"FAILED {asset.key}: {explain(asset, policy, health, now, 'FAILED')}"
    else:
        text = f"STALE {asset.key}: {explain(asset, policy, health, now, 'STALE')}"
    return AlertMessage(
        event=event,
        alert_id=alert.id,
        kind=alert.kind,
        severity=alert.severity,
        asset_key=asset.key,
        namespace=asset.namespace,
        opened_at=alert.opened_at,
        resolved_at=alert.resolved_at,
        text=text,
    )
