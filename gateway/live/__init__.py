"""Live updates for subscriptions: the per-process broker, its subscriptions and what they select."""

from gateway.live.broker import LiveChanges
from gateway.live.selectors import AlertSelector, AssetSelector, ExecutionSelector
from gateway.live.subscription import LiveUnavailable, Selector, Subscription, SubscriptionDropped

__all__ = [
    "AlertSelector",
    "AssetSelector",
    "ExecutionSelector",
    "LiveChanges",
    "LiveUnavailable",
    "Selector",
    "Subscription",
    "SubscriptionDropped",
]
