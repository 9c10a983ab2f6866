"""Monitor configuration as it comes from the YAML settings file: policies, notifiers, durations."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.store.policies import PolicySpec
from monitors.config import parse_notifiers, parse_policies
from monitors.durations import parse_duration


def test_good_policies_parse_into_specs() -> None:
    policies = parse_policies(
        [
            {
                "name": "marts-daily",
                "selector": {"namespace_prefix": "snowflake://acme", "tag": "daily"},
                "cron": "0 6 * * *",
                "timezone": "Europe/Paris",
                "severity": "error",
            },
            {"name": "orders", "asset": "snowflake://acme/analytics.marts.orders", "max_age": "24h"},
            {"name": "learned", "selector": {"type": "table"}, "auto": True, "tolerance": 0.5, "min_history": 3},
            {"name": "numeric", "selector": {"owner": "team:data", "key_glob": "db://*"}, "max_age": 5400},
        ]
    )
    assert [policy.to_spec() for policy in policies] == [
        PolicySpec(
            name="marts-daily",
            kind="cron",
            severity="error",
            selector={"namespace_prefix": "snowflake://acme", "tag": "daily"},
            cron="0 6 * * *",
            timezone="Europe/Paris",
            source="config",
        ),
        PolicySpec(
            name="orders",
            kind="max_age",
            asset_key="snowflake://acme/analytics.marts.orders",
            max_age_seconds=86400,
            source="config",
        ),
        PolicySpec(
            name="learned", kind="auto", selector={"type": "table"}, tolerance=0.5, min_history=3, source="config"
        ),
        PolicySpec(
            name="numeric",
            kind="max_age",
            selector={"owner": "team:data", "key_glob": "db://*"},
            max_age_seconds=5400,
            source="config",
        ),
    ]
    for policy in policies:
        policy.to_spec().validate()  # what the config accepts, the store accepts


SELECTOR = {"tag": "daily"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "p", "selector": SELECTOR, "max_age": "1h", "cron": "0 6 * * *"}, "exactly one of max_age, cron"),
        ({"name": "p", "selector": SELECTOR, "max_age": "1h", "auto": True}, "exactly one of max_age, cron"),
        ({"name": "p", "selector": SELECTOR}, "policy 'p' needs exactly one of max_age, cron or auto"),
        ({"name": "p", "selector": SELECTOR, "auto": False}, "exactly one of max_age, cron or auto"),
        ({"name": "p", "max_age": "1h"}, "policy 'p' needs exactly one of asset or selector"),
        ({"name": "p", "asset": "db://a/b", "selector": SELECTOR, "max_age": "1h"}, "exactly one of asset or selector"),
        ({"name": "p", "selector": {}, "max_age": "1h"}, "policy 'p' has an empty selector"),
        ({"name": "p", "selector": {"colour": "red"}, "max_age": "1h"}, r"selector\.colour\s+Extra inputs"),
        ({"name": "p", "selector": SELECTOR, "maxAge": "1h"}, r"maxAge\s+Extra inputs"),
        ({"name": "p", "selector": SELECTOR, "cron": "61 * * * *"}, "'61 \\* \\* \\* \\*' is not a cron expression"),
        ({"name": "p", "selector": SELECTOR, "cron": "at six"}, "is not a cron expression"),
        ({"name": "p", "selector": SELECTOR, "cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"name": "p", "selector": SELECTOR, "cron": "0 6 * * *", "timezone": "CEST+2"}, "unknown time zone"),
        ({"name": "p", "selector": SELECTOR, "max_age": "a day"}, "'a day' is not a duration"),
        ({"name": "p", "selector": SELECTOR, "max_age": "0s"}, "must be positive"),
        ({"name": "p", "selector": SELECTOR, "max_age": -60}, "must be positive"),
        ({"name": "p", "selector": SELECTOR, "max_age": True}, "not a boolean"),
        ({"name": "p", "selector": SELECTOR, "max_age": "1h", "severity": "fatal"}, r"severity\s+Input should be"),
        ({"name": "p", "selector": SELECTOR, "auto": True, "tolerance": 0}, r"tolerance\s+Input should be greater"),
        ({"name": "p", "selector": SELECTOR, "auto": True, "min_history": 1}, r"min_history\s+Input should be greater"),
        ({"name": "", "selector": SELECTOR, "max_age": "1h"}, r"name\s+String should have at least 1 character"),
        ({"selector": SELECTOR, "max_age": "1h"}, r"name\s+Field required"),
    ],
)
def test_bad_policies_are_rejected_with_a_clear_message(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policies([item])


def test_policy_names_must_be_unique() -> None:
    item = {"name": "daily", "selector": SELECTOR, "max_age": "1d"}
    with pytest.raises(ValueError, match="names must be unique; repeated: 'daily'"):
        parse_policies([item, {**item, "max_age": "2d"}, {**item, "name": "other"}])


def test_good_notifiers_parse() -> None:
    notifiers = parse_notifiers(
        [
            {"name": "log", "kind": "log"},
            {
                "name": "pager",
                "kind": "webhook",
                "url": "https://hooks.example.com/gateway",
                "secret": "abc",
                "headers": {"X-Team": "data"},
                "timeout_seconds": 3,
                "route": {"namespace_prefix": "snowflake://", "min_severity": "error"},
            },
            {
                "name": "slack",
                "kind": "slack",
                "url": "https://hooks.slack.com/services/T/B/X",
                "route": {"tag": "pii"},
            },
        ]
    )
    log, pager, slack = notifiers
    assert (log.kind, log.url, log.route.min_severity) == ("log", None, "warn")
    assert (pager.secret, pager.headers, pager.timeout_seconds) == ("abc", {"X-Team": "data"}, 3.0)
    assert (pager.route.namespace_prefix, pager.route.min_severity) == ("snowflake://", "error")
    assert (slack.route.tag, slack.route.min_severity, slack.secret) == ("pii", "warn", None)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "w", "kind": "webhook"}, "notifier 'w' of kind webhook needs a url"),
        ({"name": "s", "kind": "slack", "url": ""}, "notifier 's' of kind slack needs a url"),
        ({"name": "e", "kind": "email", "url": "mailto:x@y"}, r"kind\s+Input should be 'log', 'webhook' or 'slack'"),
        ({"name": "w", "kind": "webhook", "url": "http://x", "route": {"colour": "red"}}, r"route\.colour\s+Extra"),
        ({"name": "w", "kind": "webhook", "url": "http://x", "route": {"min_severity": "fatal"}}, "min_severity"),
        ({"name": "w", "kind": "webhook", "url": "http://x", "timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "w", "kind": "webhook", "url": "http://x", "retries": 3}, r"retries\s+Extra inputs"),
    ],
)
def test_bad_notifiers_are_rejected_with_a_clear_message(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_notifiers([item])


def test_notifier_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="notifier names must be unique; repeated: 'log'"):
        parse_notifiers([{"name": "log", "kind": "log"}, {"name": "log", "kind": "slack", "url": "http://x"}])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", 86400),
        ("90m", 5400),
        ("1d12h", 129600),
        ("PT90M", 5400),
        ("P1DT2H", 93600),
        (3600, 3600),
        (90.5, 90.5),
        ("3600", 3600),
        ("45s", 45),
        ("1.5h", 5400),
        ("2w", 1209600),
        ("1h30m", 5400),
        ("1H30M", 5400),
        (" 24h ", 86400),
        ("P1W", 604800),
        ("P2D", 172800),
        ("PT1.5H", 5400),
        ("PT30S", 30),
        ("pt15m", 900),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "soon", "24 hours", "1h 30m", "h", "1h30", "1y", "P", "PT", "P1DT", "P1M", "-1h", "0", "0s", 0, -5, True],
)
def test_bad_durations(text: str | float) -> None:
    with pytest.raises(ValueError, match=r"not a duration|must be positive"):
        parse_duration(text)
