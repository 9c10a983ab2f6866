"""Freshness monitors: policies, the scheduled stale-asset sweep, alert notifications."""
