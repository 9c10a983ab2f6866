"""Which freshness policy governs an asset: asset policies, selector precedence, matching, config sync."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.database import Database
from gateway.errors import InvalidInput, NotFound
from gateway.orm import FreshnessPolicy
from gateway.store.policies import PolicySpec, delete_policy, list_policies, sync_config_policies, upsert_policy
from tests.monitors import add_policy, health, run_sweep
from tests.store.factories import declare

HOUR = 3600


async def governing(db: Database, now: datetime, *keys: str) -> dict[str, str | None]:
    """key -> name of the policy the sweep says governs it (None when none does)."""
    await run_sweep(db, now)
    async with db.session() as session:
        names = {policy.id: policy.name for policy in await list_policies(session)}
    result: dict[str, str | None] = {}
    for key in keys:
        found = await health(db, key)
        assert found is not None, key
        result[key] = names[found.policy_id] if found.policy_id is not None else None
    return result


async def test_an_asset_policy_beats_every_selector(db: Database, now: datetime) -> None:
    marts = "snowflake://acme/analytics.marts"
    key = f"{marts}.orders"
    await declare(db, key, namespace=marts, name="orders", type="table", tags=["finance"], owners=["team:data"])
    await declare(db, f"{marts}.customers", namespace=marts, name="customers", type="table", tags=["finance"])
    # The most specific selector imaginable: every criterion, matching this one asset exactly.
    selector = {
        "namespace_prefix": marts,
        "type": "table",
        "tag": "finance",
        "owner": "team:data",
        "key_glob": key,
    }
    await add_policy(db, "zz-everything", "max_age", selector=selector, max_age_seconds=HOUR)
    assert await governing(db, now, key, f"{marts}.customers") == {key: "zz-everything", f"{marts}.customers": None}
    await add_policy(db, "aa-own", "max_age", asset_key=key, max_age_seconds=2 * HOUR)
    assert await governing(db, now, key, f"{marts}.customers") == {key: "aa-own", f"{marts}.customers": None}


async def test_the_longer_namespace_prefix_wins_whatever_the_names(db: Database, now: datetime) -> None:
    # namespace_prefix matches the namespace (not the key): these assets declare theirs.
    marts = "snowflake://acme/analytics.marts.orders"
    raw = "snowflake://acme/raw.events"
    other = "postgres://db:5432/public.users"
    await declare(db, marts, namespace="snowflake://acme/analytics.marts", name="orders")
    await declare(db, raw, namespace="snowflake://acme/raw", name="events")
    await declare(db, other)
    # Names sort the other way round, and the broad policy is declared last: neither may matter.
    await add_policy(
        db,
        "a-marts",
        "max_age",
        selector={"namespace_prefix": "snowflake://acme/analytics.marts"},
        max_age_seconds=HOUR,
    )
    await add_policy(db, "z-snowflake", "max_age", selector={"namespace_prefix": "snowflake://"}, max_age_seconds=HOUR)
    assert await governing(db, now, marts, raw, other) == {marts: "a-marts", raw: "z-snowflake", other: None}


async def test_more_criteria_win_tag_and_type_beats_tag(db: Database, now: datetime) -> None:
    table = "snowflake://acme/analytics.pii_table"
    view = "snowflake://acme/analytics.pii_view"
    plain = "snowflake://acme/analytics.plain_table"
    await declare(db, table, type="table", tags=["pii"])
    await declare(db, view, type="view", tags=["pii"])
    await declare(db, plain, type="table")
    await add_policy(db, "a-pii-tables", "max_age", selector={"tag": "pii", "type": "table"}, max_age_seconds=HOUR)
    await add_policy(db, "z-pii", "max_age", selector={"tag": "pii"}, max_age_seconds=HOUR)
    assert await governing(db, now, table, view, plain) == {table: "a-pii-tables", view: "z-pii", plain: None}


async def test_owner_and_type_selectors(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.owned", owners=["team:growth", "alice"])
    await declare(db, "db://wh/a.other_owner", owners=["team:growthx"])
    await declare(db, "db://wh/a.dashboard", type="dashboard")
    await declare(db, "db://wh/a.table", type="table")
    await add_policy(db, "growth", "max_age", selector={"owner": "team:growth"}, max_age_seconds=HOUR)
    await add_policy(db, "dashboards", "max_age", selector={"type": "dashboard"}, max_age_seconds=HOUR)
    assert await governing(
        db, now, "db://wh/a.owned", "db://wh/a.other_owner", "db://wh/a.dashboard", "db://wh/a.table"
    ) == {
        "db://wh/a.owned": "growth",
        "db://wh/a.other_owner": None,
        "db://wh/a.dashboard": "dashboards",
        "db://wh/a.table": None,
    }


async def test_key_glob_star_and_question_mark(db: Database, now: datetime) -> None:
    keys = [
        "db://wh/sales.orders",
        "db://wh/finance.orders",
        "db://wh/sales.orders_archive",
        "db://wh/part1",
        "db://wh/part12",
        "db://wh/part",
    ]
    for key in keys:
        await declare(db, key)
    await add_policy(db, "orders", "max_age", selector={"key_glob": "db://wh/*.orders"}, max_age_seconds=HOUR)
    await add_policy(db, "parts", "max_age", selector={"key_glob": "db://wh/part?"}, max_age_seconds=HOUR)
    assert await governing(db, now, *keys) == {
        "db://wh/sales.orders": "orders",
        "db://wh/finance.orders": "orders",
        "db://wh/sales.orders_archive": None,
        "db://wh/part1": "parts",
        "db://wh/part12": None,
        "db://wh/part": None,
    }


async def test_key_glob_treats_percent_underscore_and_backslash_literally(db: Database, now: datetime) -> None:
    keys = [
        "db://wh/a_b.x",
        "db://wh/aXb.x",
        "db://wh/100%.x",
        "db://wh/100abc.x",
        "db://wh/c\\d.x",
        "db://wh/cd.x",
    ]
    for key in keys:
        await declare(db, key)
    await add_policy(db, "underscore", "max_age", selector={"key_glob": "db://wh/a_b*"}, max_age_seconds=HOUR)
    await add_policy(db, "percent", "max_age", selector={"key_glob": "db://wh/100%*"}, max_age_seconds=HOUR)
    await add_policy(db, "backslash", "max_age", selector={"key_glob": "db://wh/c\\d*"}, max_age_seconds=HOUR)
    assert await governing(db, now, *keys) == {
        "db://wh/a_b.x": "underscore",
        "db://wh/aXb.x": None,
        "db://wh/100%.x": "percent",
        "db://wh/100abc.x": None,
        "db://wh/c\\d.x": "backslash",
        "db://wh/cd.x": None,
    }


async def test_key_glob_is_case_sensitive_on_both_dialects(db: Database, now: datetime) -> None:
    # Asset keys are case-sensitive identifiers (notifier routes match them with fnmatchcase too).
    await declare(db, "db://wh/Sales.Orders")
    await declare(db, "db://wh/sales.orders")
    await declare(db, "db://wh/[x].t")
    await add_policy(db, "upper", "max_age", selector={"key_glob": "db://wh/Sales.*"}, max_age_seconds=HOUR)
    await add_policy(db, "brackets", "max_age", selector={"key_glob": "db://wh/[x]*"}, max_age_seconds=HOUR)
    assert await governing(db, now, "db://wh/Sales.Orders", "db://wh/sales.orders", "db://wh/[x].t") == {
        "db://wh/Sales.Orders": "upper",
        "db://wh/sales.orders": None,
        "db://wh/[x].t": "brackets",
    }


async def test_a_longer_glob_beats_a_shorter_one(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/marts.fct_orders")
    await declare(db, "db://wh/marts.dim_users")
    await add_policy(db, "a-any", "max_age", selector={"key_glob": "db://wh/*"}, max_age_seconds=HOUR)
    await add_policy(db, "z-facts", "max_age", selector={"key_glob": "db://wh/marts.fct_*"}, max_age_seconds=HOUR)
    assert await governing(db, now, "db://wh/marts.fct_orders", "db://wh/marts.dim_users") == {
        "db://wh/marts.fct_orders": "z-facts",
        "db://wh/marts.dim_users": "a-any",
    }


async def test_a_new_asset_policy_replaces_the_previous_one_on_that_asset(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.t")
    await add_policy(db, "first", "max_age", asset_key="db://wh/a.t", max_age_seconds=HOUR)
    await add_policy(db, "second", "cron", asset_key="db://wh/a.t", cron="0 6 * * *")
    async with db.session() as session:
        assert [policy.name for policy in await list_policies(session)] == ["second"]
    assert await governing(db, now, "db://wh/a.t") == {"db://wh/a.t": "second"}


async def test_a_policy_for_an_unknown_asset_is_not_found(db: Database, now: datetime) -> None:
    with pytest.raises(NotFound):
        await add_policy(db, "ghost", "max_age", asset_key="db://wh/nope", max_age_seconds=HOUR)


async def test_upsert_by_name_updates_and_delete_removes(db: Database, now: datetime) -> None:
    created = await add_policy(db, "p", "max_age", selector={"tag": "x"}, max_age_seconds=HOUR)
    later = now + timedelta(minutes=5)
    updated = await add_policy(db, "p", "cron", now=later, selector={"type": "table"}, cron="0 * * * *")
    assert updated.id == created.id
    assert (updated.kind, updated.cron, updated.selector) == ("cron", "0 * * * *", {"type": "table"})
    assert (updated.created_at, updated.updated_at) == (now, later)
    async with db.transaction() as session:
        assert await delete_policy(session, "p") is True
        assert await delete_policy(session, "p") is False
        assert await list_policies(session) == []


def _config(name: str, **values: object) -> PolicySpec:
    return PolicySpec(name=name, source="config", **values)  # type: ignore[arg-type]


async def _stored(db: Database) -> dict[str, FreshnessPolicy]:
    async with db.session() as session:
        rows = await session.scalars(select(FreshnessPolicy))
        return {policy.name: policy for policy in rows}


async def test_config_sync_adds_updates_and_removes_only_config_policies(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.t")
    await add_policy(db, "api-selector", "max_age", selector={"tag": "gold"}, max_age_seconds=HOUR)
    await add_policy(db, "api-asset", "max_age", asset_key="db://wh/a.t", max_age_seconds=HOUR)
    async with db.transaction() as session:
        await sync_config_policies(
            session,
            [
                _config("daily", kind="cron", cron="0 6 * * *", timezone="Europe/Paris", selector={"tag": "daily"}),
                _config("hourly", kind="max_age", max_age_seconds=HOUR, selector={"tag": "hourly"}),
            ],
            now,
        )
    before = await _stored(db)
    assert set(before) == {"api-selector", "api-asset", "daily", "hourly"}
    assert {name: policy.source for name, policy in before.items()} == {
        "api-selector": "api",
        "api-asset": "api",
        "daily": "config",
        "hourly": "config",
    }

    later = now + timedelta(hours=1)
    async with db.transaction() as session:
        await sync_config_policies(
            session,
            [
                _config("hourly", kind="max_age", max_age_seconds=2 * HOUR, selector={"tag": "hourly"}),
                _config("learned", kind="auto", tolerance=0.5, min_history=3, selector={"type": "table"}),
            ],
            later,
        )
    after = await _stored(db)
    assert set(after) == {"api-selector", "api-asset", "hourly", "learned"}
    assert after["hourly"].id == before["hourly"].id
    assert (after["hourly"].max_age_seconds, after["hourly"].updated_at) == (2 * HOUR, later)
    assert (after["learned"].kind, after["learned"].tolerance, after["learned"].min_history) == ("auto", 0.5, 3)
    for name in ("api-selector", "api-asset"):
        assert after[name].updated_at == before[name].updated_at == now
        assert after[name].source == "api"

    async with db.transaction() as session:
        await sync_config_policies(session, [], later)
    assert set(await _stored(db)) == {"api-selector", "api-asset"}


async def test_config_sync_never_overwrites_an_api_policy(db: Database, now: datetime) -> None:
    await declare(db, "db://wh/a.t")
    await add_policy(db, "shared-name", "max_age", selector={"tag": "gold"}, max_age_seconds=HOUR)
    await add_policy(db, "api-asset", "max_age", asset_key="db://wh/a.t", max_age_seconds=HOUR)
    before = await _stored(db)
    async with db.transaction() as session:
        skipped = await sync_config_policies(
            session,
            [
                _config("shared-name", kind="cron", cron="0 6 * * *", selector={"tag": "other"}),
                # Another policy for an asset the API already gave one: the API declaration stays.
                _config("config-asset", kind="max_age", max_age_seconds=60, asset_key="db://wh/a.t"),
                _config("fine", kind="max_age", max_age_seconds=60, selector={"tag": "fine"}),
            ],
            now + timedelta(hours=1),
        )
    assert skipped == ["shared-name", "config-asset"]
    after = await _stored(db)
    assert set(after) == {"shared-name", "api-asset", "fine"}
    for name in ("shared-name", "api-asset"):
        stored, original = after[name], before[name]
        assert (stored.source, stored.kind, stored.selector, stored.asset_id, stored.max_age_seconds) == (
            "api",
            original.kind,
            original.selector,
            original.asset_id,
            original.max_age_seconds,
        )
        assert stored.updated_at == now


async def test_config_policy_for_an_asset_not_yet_seen_waits_for_it(db: Database, now: datetime) -> None:
    specs = [
        _config("for-later", kind="max_age", max_age_seconds=HOUR, asset_key="db://wh/a.later"),
        _config("now", kind="max_age", max_age_seconds=HOUR, selector={"tag": "x"}),
    ]
    async with db.transaction() as session:
        assert await sync_config_policies(session, specs, now) == ["for-later"]
    assert set(await _stored(db)) == {"now"}
    await declare(db, "db://wh/a.later")
    async with db.transaction() as session:
        assert await sync_config_policies(session, specs, now) == []
    stored = await _stored(db)
    assert set(stored) == {"for-later", "now"}
    assert stored["for-later"].source == "config"
    assert await governing(db, now, "db://wh/a.later") == {"db://wh/a.later": "for-later"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (PolicySpec(name="", kind="max_age", max_age_seconds=60, selector={"tag": "x"}), "name"),
        (PolicySpec(name="x" * 256, kind="max_age", max_age_seconds=60, selector={"tag": "x"}), "name"),
        (PolicySpec(name="p", kind="weekly", selector={"tag": "x"}), "kind"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=60, severity="fatal", selector={"tag": "x"}), "severity"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=60), "either"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=60, selector={}), "either"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=60, asset_key="a://b/c", selector={"tag": "x"}), "both"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=60, selector={"colour": "red"}), "colour"),
        (PolicySpec(name="p", kind="max_age", selector={"tag": "x"}), "positive"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=0, selector={"tag": "x"}), "positive"),
        (PolicySpec(name="p", kind="max_age", max_age_seconds=-5, selector={"tag": "x"}), "positive"),
        (PolicySpec(name="p", kind="cron", selector={"tag": "x"}), "cron"),
        (PolicySpec(name="p", kind="cron", cron="every morning", selector={"tag": "x"}), "cron"),
        (PolicySpec(name="p", kind="cron", cron="0 6 * * *", timezone="Mars/Olympus", selector={"tag": "x"}), "zone"),
        (PolicySpec(name="p", kind="auto", tolerance=-1.0, selector={"tag": "x"}), "tolerance"),
        (PolicySpec(name="p", kind="auto", min_history=1, selector={"tag": "x"}), "min_history"),
    ],
)
def test_policy_spec_validation(spec: PolicySpec, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        spec.validate()


@pytest.mark.parametrize(
    "spec",
    [
        PolicySpec(name="p", kind="max_age", max_age_seconds=60, selector={"tag": "x"}),
        PolicySpec(name="p", kind="cron", cron="30 23 * * 1-5", timezone="America/New_York", asset_key="a://b/c"),
        PolicySpec(name="p", kind="auto", tolerance=0.5, min_history=3, severity="error", selector={"type": "t"}),
    ],
)
def test_valid_policy_specs_pass(spec: PolicySpec) -> None:
    spec.validate()


async def test_an_invalid_spec_stores_nothing(db: Database, now: datetime) -> None:
    with pytest.raises(InvalidInput):
        await add_policy(db, "p", "cron", cron="61 * * * *", selector={"tag": "x"})
    async with db.session() as session:
        assert await list_policies(session) == []
    async with db.transaction() as session:
        with pytest.raises(InvalidInput):
            await upsert_policy(session, PolicySpec(name="p", kind="max_age", selector={"tag": "x"}), now)
