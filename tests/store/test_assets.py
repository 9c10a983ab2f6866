"""Assets: declaration, identity, aliases, soft delete and declared upstreams, on both dialects."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.database import Database
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.keys import DEFAULT_NAMESPACE
from gateway.orm import KEY_LENGTH
from gateway.store.asset_filters import AssetFilter
from gateway.store.assets import (
    AssetSpec,
    add_aliases,
    read_aliases_by_asset_ids,
    read_asset_by_key,
    read_assets_by_ids,
    read_assets_by_keys,
    soft_delete_asset,
    upsert_asset,
)
from gateway.store.catalog import list_assets
from tests.store.factories import asset, at, declare, edge_pairs, edges

ORDERS = "postgres://db:5432/shop.public.orders"


async def _all_keys(db: Database, include_deleted: bool = False) -> list[str]:
    async with db.session() as session:
        page = await list_assets(session, AssetFilter(include_deleted=include_deleted), first=100)
    return [row.key for row in page.items]


async def test_upsert_creates_an_asset_with_every_declared_value(db: Database, now: datetime) -> None:
    created = await declare(
        db,
        ORDERS,
        now,
        type="table",
        display_name="Orders",
        description="One row per order",
        owners=["ana", "team:shop"],
        tags=["pii", "gold"],
        metadata={"rows": 10, "tier": "gold"},
        fields=[{"name": "id", "type": "bigint"}],
    )
    await declare(db, "s3://bucket/raw/events", now)

    stored = await asset(db, ORDERS)
    assert stored.id == created.id
    assert (stored.key, stored.type, stored.display_name, stored.description) == (
        ORDERS,
        "table",
        "Orders",
        "One row per order",
    )
    assert stored.owners == ["ana", "team:shop"]
    assert stored.tags == ["pii", "gold"]
    assert stored.metadata_ == {"rows": 10, "tier": "gold"}
    assert stored.fields == [{"name": "id", "type": "bigint"}]
    assert (stored.created_at, stored.updated_at) == (now, now)
    assert (stored.deleted_at, stored.last_materialized_at, stored.last_status, stored.last_run_id) == (
        None,
        None,
        None,
        None,
    )

    bare = await asset(db, "s3://bucket/raw/events")
    assert (bare.owners, bare.tags, bare.metadata_, bare.fields) == ([], [], {}, [])
    assert (bare.type, bare.display_name, bare.description) == (None, None, None)


async def test_upsert_again_keeps_what_is_not_given_and_replaces_what_is(db: Database, now: datetime) -> None:
    first = await declare(
        db,
        ORDERS,
        now,
        type="table",
        description="old description",
        owners=["ana"],
        tags=["pii"],
        metadata={"rows": 10},
        fields=[{"name": "id"}],
    )
    second = await declare(db, ORDERS, at(30), description="new description", tags=["gold"], metadata={})

    assert second.id == first.id
    stored = await asset(db, ORDERS)
    assert stored.type == "table"
    assert stored.owners == ["ana"]
    assert stored.fields == [{"name": "id"}]
    assert stored.description == "new description"
    assert stored.tags == ["gold"]
    assert stored.metadata_ == {}
    assert (stored.created_at, stored.updated_at) == (now, at(30))

    # Within one transaction, the returned row is the updated one.
    async with db.transaction() as session:
        await upsert_asset(session, AssetSpec(key=ORDERS, description="one"), at(40))
        updated = await upsert_asset(session, AssetSpec(key=ORDERS, owners=[]), at(41))
    assert (updated.description, updated.owners, updated.updated_at) == ("one", [], at(41))


async def test_labels_are_cleaned_and_bad_ones_rejected(db: Database, now: datetime) -> None:
    await declare(db, ORDERS, now, tags=[" pii ", "pii", "gold"], owners=["ana", "ana "])
    stored = await asset(db, ORDERS)
    assert (stored.tags, stored.owners) == (["pii", "gold"], ["ana"])

    for labels in ([""], ["   "], ["x" * 201], [f"t{i}" for i in range(101)]):
        with pytest.raises(InvalidInput):
            await declare(db, ORDERS, at(1), tags=labels)
        with pytest.raises(InvalidInput):
            await declare(db, ORDERS, at(1), owners=labels)
    assert (await asset(db, ORDERS)).tags == ["pii", "gold"]
    await declare(db, ORDERS, at(2), tags=["x" * 200, *(f"t{i}" for i in range(99))])
    assert len((await asset(db, ORDERS)).tags) == 100


INVALID_KEYS = {
    "empty": "",
    "too long": "x" * (KEY_LENGTH + 1),
    "space": "s3://bucket/with space",
    "leading space": " s3://bucket/file",
    "tab": "tab\there",
    "newline": "new\nline",
    "nul": "nul\x00byte",
    "bell": "bell\x07",
    "delete": "delete\x7f",
    "no-break space": "nbsp\u00a0inside",
    "line separator": "line\u2028separator",
}


async def test_invalid_keys_are_rejected_and_nothing_is_stored(db: Database, now: datetime) -> None:
    accepted = []
    for name, key in INVALID_KEYS.items():
        try:
            await declare(db, key, now)
        except InvalidInput:
            pass
        else:
            accepted.append(name)
        # The same rule holds for aliases and for declared upstreams.
        with pytest.raises(InvalidInput):
            await declare(db, "w/ok", now, aliases=[key])
        with pytest.raises(InvalidInput):
            await declare(db, "w/ok", now, upstream_keys=[key])
    assert accepted == []
    assert await _all_keys(db, include_deleted=True) == []

    longest = "k" * KEY_LENGTH
    await declare(db, longest, now)
    assert (await asset(db, longest)).key == longest


DERIVED = [
    ("postgres://db:5432/shop.public.orders", "postgres://db:5432", "shop.public.orders"),
    ("s3://bucket/path/to/file.parquet", "s3://bucket", "path/to/file.parquet"),
    ("kafka://broker:9092", "kafka://broker:9092", "kafka://broker:9092"),
    ("warehouse/analytics.orders", "warehouse", "analytics.orders"),
    ("plain_name", DEFAULT_NAMESPACE, "plain_name"),
    ("/leading-slash", DEFAULT_NAMESPACE, "/leading-slash"),
]


async def test_namespace_and_name_are_derived_from_the_key(db: Database, now: datetime) -> None:
    for key, _, _ in DERIVED:
        await declare(db, key, now)
    # Assets created implicitly (as an upstream) derive them the same way.
    await declare(db, "w/report", now, upstream_keys=["mysql://crm:3306/crm.contacts"])
    expected = [*DERIVED, ("mysql://crm:3306/crm.contacts", "mysql://crm:3306", "crm.contacts")]
    for key, namespace, name in expected:
        stored = await asset(db, key)
        assert (stored.namespace, stored.name) == (namespace, name), key


async def test_an_explicit_namespace_and_name_are_honoured_and_kept(db: Database, now: datetime) -> None:
    key = "kestra://company.team/flows/load_orders"
    await declare(db, key, now, namespace="company.team", name="load_orders")
    stored = await asset(db, key)
    assert (stored.namespace, stored.name) == ("company.team", "load_orders")

    # A later declaration without them keeps them, like any attribute it does not give.
    await declare(db, key, at(1), description="loads orders")
    stored = await asset(db, key)
    assert (stored.namespace, stored.name, stored.description) == ("company.team", "load_orders", "loads orders")

    await declare(db, key, at(2), namespace="company.other")
    assert (await asset(db, key)).namespace == "company.other"


async def test_aliases_resolve_to_their_asset(db: Database, now: datetime) -> None:
    created = await declare(db, ORDERS, now, aliases=["shop.orders", "urn:li:dataset:orders"])

    for lookup in (ORDERS, "shop.orders", "urn:li:dataset:orders"):
        found = await asset(db, lookup)
        assert (found.id, found.key) == (created.id, ORDERS)
    async with db.session() as session:
        by_keys = await read_assets_by_keys(session, ["shop.orders", ORDERS, "unknown"])
        aliases = await read_aliases_by_asset_ids(session, [created.id])
    assert {lookup: found.id for lookup, found in by_keys.items()} == {"shop.orders": created.id, ORDERS: created.id}
    assert aliases == {created.id: ["shop.orders", "urn:li:dataset:orders"]}

    # Declaring an alias again is harmless; a new one is added beside it.
    again = await declare(db, ORDERS, at(1), aliases=["shop.orders", "orders_v2"])
    assert again.id == created.id
    async with db.session() as session:
        assert await read_aliases_by_asset_ids(session, [created.id]) == {
            created.id: ["orders_v2", "shop.orders", "urn:li:dataset:orders"]
        }
    # An alias never becomes an asset of its own.
    assert await _all_keys(db, include_deleted=True) == [ORDERS]


async def test_alias_conflicts(db: Database, now: datetime) -> None:
    customers = await declare(db, "warehouse/customers", now)
    orders = await declare(db, ORDERS, now, aliases=["orders"])

    # An alias that is another asset's key.
    with pytest.raises(Conflict):
        await declare(db, "warehouse/new", now, aliases=["warehouse/customers"])
    # The failed transaction left nothing behind.
    assert await _all_keys(db) == sorted([ORDERS, "warehouse/customers"])
    assert (await asset(db, "warehouse/customers")).id == customers.id

    # An alias that another asset already has.
    with pytest.raises(Conflict):
        async with db.transaction() as session:
            await add_aliases(session, customers.id, ["orders"], "api", now)
    assert (await asset(db, "orders")).id == orders.id

    # Declaring an asset under a key that is an alias.
    with pytest.raises(Conflict):
        await declare(db, "orders", now, description="would shadow the alias")
    assert await _all_keys(db) == sorted([ORDERS, "warehouse/customers"])


async def test_soft_delete_hides_the_asset_until_it_is_declared_again(db: Database, now: datetime) -> None:
    created = await declare(db, ORDERS, now, description="orders", aliases=["orders"])
    await declare(db, "warehouse/customers", now)

    async with db.transaction() as session:
        deleted = await soft_delete_asset(session, "orders", at(5))
    assert deleted.id == created.id
    assert deleted.deleted_at == at(5)

    async with db.session() as session:
        assert await read_asset_by_key(session, ORDERS) is None
        assert await read_asset_by_key(session, "orders") is None
        hidden = await read_asset_by_key(session, ORDERS, include_deleted=True)
        assert hidden is not None
        assert hidden.deleted_at == at(5)
        by_id = await read_assets_by_ids(session, [created.id])
    assert by_id[created.id].deleted_at == at(5)
    assert await _all_keys(db) == ["warehouse/customers"]
    assert await _all_keys(db, include_deleted=True) == [ORDERS, "warehouse/customers"]

    for key in (ORDERS, "nothing/here"):
        with pytest.raises(NotFound):
            async with db.transaction() as session:
                await soft_delete_asset(session, key, at(6))

    back = await declare(db, ORDERS, at(10))
    assert back.id == created.id
    assert back.deleted_at is None
    assert back.description == "orders"
    assert (await asset(db, "orders")).id == created.id
    assert await _all_keys(db) == [ORDERS, "warehouse/customers"]


async def test_declared_upstreams_create_edges_and_a_smaller_set_retires_the_dropped_one(
    db: Database, now: datetime
) -> None:
    mart = "snowflake://acme/analytics.marts.revenue"
    await declare(db, mart, now, upstream_keys=[ORDERS, "warehouse/customers"])

    # Undeclared upstreams exist as assets now.
    assert (await asset(db, "warehouse/customers")).namespace == "warehouse"
    stored = await edges(db)
    assert {(edge.origin, edge.job_id, edge.first_seen_at, edge.retired_at) for edge in stored} == {
        ("declared", None, now, None)
    }
    assert await edge_pairs(db) == {(ORDERS, mart), ("warehouse/customers", mart)}

    await declare(db, mart, at(10), upstream_keys=[ORDERS])
    assert await edge_pairs(db) == {(ORDERS, mart)}
    assert await edge_pairs(db, live_only=False) == {(ORDERS, mart), ("warehouse/customers", mart)}
    by_pair = {(edge.upstream_id, edge.downstream_id): edge for edge in await edges(db)}
    customers_id = (await asset(db, "warehouse/customers")).id
    orders_id = (await asset(db, ORDERS)).id
    mart_id = (await asset(db, mart)).id
    assert by_pair[(customers_id, mart_id)].retired_at == at(10)
    assert by_pair[(orders_id, mart_id)].retired_at is None
    assert by_pair[(orders_id, mart_id)].last_seen_at == at(10)

    # Declaring the dropped upstream again brings the same edge back.
    await declare(db, mart, at(20), upstream_keys=[ORDERS, "warehouse/customers"])
    assert await edge_pairs(db) == {(ORDERS, mart), ("warehouse/customers", mart)}
    assert len(await edges(db)) == 2

    # No upstream_keys leaves the declaration alone; an empty list retires every declared edge.
    await declare(db, mart, at(30), description="revenue")
    assert len(await edge_pairs(db)) == 2
    await declare(db, mart, at(40), upstream_keys=[])
    assert await edge_pairs(db) == set()


async def test_declared_upstreams_of_one_asset_leave_other_edges_alone(db: Database, now: datetime) -> None:
    await declare(db, "w/a", now, upstream_keys=["w/source"])
    await declare(db, "w/b", now, upstream_keys=["w/source"])
    await declare(db, "w/a", at(1), upstream_keys=[])
    assert await edge_pairs(db) == {("w/source", "w/b")}

    with pytest.raises(InvalidInput):
        await declare(db, "w/b", at(2), upstream_keys=["w/b"])
    # An upstream given by an alias resolves to its asset.
    await declare(db, ORDERS, now, aliases=["orders"])
    await declare(db, "w/report", now, upstream_keys=["orders"])
    assert await edge_pairs(db) == {("w/source", "w/b"), (ORDERS, "w/report")}
    assert "orders" not in await _all_keys(db)
