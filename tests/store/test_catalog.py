"""The catalog: every filter alone and combined, counts, every order, and keyset cursors under inserts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from gateway.database import Database
from gateway.errors import InvalidInput
from gateway.orm import Asset, AssetHealth
from gateway.store.asset_filters import AssetFilter, MetadataMatch
from gateway.store.asset_records import AssetRecord, read_asset_fields, read_asset_records_by_ids
from gateway.store.assets import read_assets_by_ids, soft_delete_asset
from gateway.store.catalog import (
    AssetOrder,
    count_assets,
    count_assets_by_namespace_and_type,
    list_assets,
)
from gateway.store.pagination import Cursor
from tests.store.factories import asset_ids, at, declare, record

ORDERS = "postgres://db:5432/shop.public.orders"
CUSTOMERS = "postgres://db:5432/shop.public.customers"
EVENTS = "s3://raw-bucket/events/clickstream"
REVENUE = "snowflake://acme/analytics.marts.revenue_daily"
PERCENT = "warehouse/discount%rates"
UNDERSCORE = "warehouse/discount_rates"
PLAIN = "warehouse/discountxrates"
FLOW = "kestra://company.team/flows/load"
UNICODE = "warehouse/Ünïcode"


async def _catalog(db: Database) -> None:
    """A small catalog that every filter cuts differently."""
    await declare(
        db,
        ORDERS,
        at(0),
        type="table",
        display_name="Orders",
        description="One row per ORDER placed in the shop",
        owners=["ana", "team:shop"],
        tags=["pii", "gold"],
        metadata={"tier": "gold", "rows": 1200, "verified": True, "nested": {"a": 1}},
    )
    await declare(
        db,
        CUSTOMERS,
        at(1),
        type="table",
        owners=["bob"],
        tags=["pii"],
        metadata={"tier": "silver", "rows": 1200.0, "verified": False},
    )
    await declare(
        db,
        EVENTS,
        at(2),
        type="file",
        description="Raw clickstream",
        owners=["team:shop"],
        tags=["gold"],
        metadata={"tier": "1", "rows": 1, "verified": 1},
    )
    await declare(
        db,
        REVENUE,
        at(3),
        type="view",
        display_name="Revenue per day",
        owners=["ana"],
        tags=["gold", "finance"],
        metadata={"tier": "gold", "rows": 365, "verified": True},
    )
    await declare(db, PERCENT, at(4), type="table", description="100% of discounts")
    await declare(db, UNDERSCORE, at(5), type="table")
    await declare(db, PLAIN, at(6), description="discount rates")
    await declare(db, FLOW, at(7), namespace="company.team", name="Loader", type="flow")
    await declare(db, UNICODE, at(8))


async def _all_keys(db: Database, asset_filter: AssetFilter, order: AssetOrder = AssetOrder.KEY) -> list[str]:
    """Every key the filter lists, page by page, checked against count_assets."""
    keys: list[str] = []
    after: str | None = None
    async with db.session() as session:
        while True:
            page = await list_assets(session, asset_filter, first=2, after=after, order=order)
            keys.extend(row.key for row in page.items)
            if not page.has_next_page:
                break
            after = page.cursors[-1]
        total = await count_assets(session, asset_filter)
    assert total == len(keys)
    assert len(set(keys)) == len(keys)
    return keys


FILTERS: list[tuple[str, AssetFilter, list[str]]] = [
    ("nothing", AssetFilter(), sorted([ORDERS, CUSTOMERS, EVENTS, REVENUE, PERCENT, UNDERSCORE, PLAIN, FLOW, UNICODE])),
    ("keys", AssetFilter(keys=[EVENTS, FLOW, "not/there"]), [FLOW, EVENTS]),
    ("key prefix", AssetFilter(key_prefix="postgres://db:5432/"), [CUSTOMERS, ORDERS]),
    ("key prefix with %", AssetFilter(key_prefix="warehouse/discount%"), [PERCENT]),
    ("key prefix with _", AssetFilter(key_prefix="warehouse/discount_"), [UNDERSCORE]),
    ("key prefix is case-sensitive", AssetFilter(key_prefix="Postgres://"), []),
    ("key prefix is not a substring", AssetFilter(key_prefix="db:5432"), []),
    ("key prefix, non-ASCII", AssetFilter(key_prefix="warehouse/Ü"), [UNICODE]),
    ("key prefix, last character", AssetFilter(key_prefix="warehouse/\U0010ffff"), []),
    ("key prefix, only last characters", AssetFilter(key_prefix="\U0010ffff\U0010ffff"), []),
    ("key prefix is the whole key", AssetFilter(key_prefix=PERCENT), [PERCENT]),
    ("key prefix longer than the key", AssetFilter(key_prefix=PERCENT + "x"), []),
    ("search key", AssetFilter(search="CLICKSTREAM"), [EVENTS]),
    ("search name", AssetFilter(search="lOADER"), [FLOW]),
    ("search is a substring of the key", AssetFilter(search="Flows/Lo"), [FLOW]),
    ("search display name", AssetFilter(search="per day"), [REVENUE]),
    ("search description", AssetFilter(search="order placed"), [ORDERS]),
    ("search with %", AssetFilter(search="100%"), [PERCENT]),
    ("search % is literal", AssetFilter(search="t%r"), [PERCENT]),
    ("search _ is literal", AssetFilter(search="t_r"), [UNDERSCORE]),
    ("namespace", AssetFilter(namespace="postgres://db:5432"), [CUSTOMERS, ORDERS]),
    ("explicit namespace", AssetFilter(namespace="company.team"), [FLOW]),
    ("namespace is exact", AssetFilter(namespace="postgres://db"), []),
    ("namespace prefix", AssetFilter(namespace_prefix="s"), [EVENTS, REVENUE]),
    ("namespace prefix with _", AssetFilter(namespace_prefix="ware_ouse"), []),
    ("namespace prefix is case-sensitive", AssetFilter(namespace_prefix="S3"), []),
    ("types", AssetFilter(types=["view", "file"]), [EVENTS, REVENUE]),
    ("no types", AssetFilter(types=[]), []),
    ("owner", AssetFilter(owner="ana"), [ORDERS, REVENUE]),
    ("owner is exact", AssetFilter(owner="team"), []),
    ("one tag", AssetFilter(tags=["pii"]), [CUSTOMERS, ORDERS]),
    ("every tag must match", AssetFilter(tags=["gold", "pii"]), [ORDERS]),
    ("tags and none missing", AssetFilter(tags=["gold", "finance"]), [REVENUE]),
    ("metadata string", AssetFilter(metadata=[MetadataMatch("tier", "gold")]), [ORDERS, REVENUE]),
    ("metadata string is not a number", AssetFilter(metadata=[MetadataMatch("tier", 1)]), []),
    ("metadata number is not a string", AssetFilter(metadata=[MetadataMatch("tier", "1")]), [EVENTS]),
    ("metadata number", AssetFilter(metadata=[MetadataMatch("rows", 1200)]), [CUSTOMERS, ORDERS]),
    ("metadata float", AssetFilter(metadata=[MetadataMatch("rows", 365.0)]), [REVENUE]),
    ("metadata true", AssetFilter(metadata=[MetadataMatch("verified", True)]), [ORDERS, REVENUE]),
    ("metadata false", AssetFilter(metadata=[MetadataMatch("verified", False)]), [CUSTOMERS]),
    ("metadata number is not a boolean", AssetFilter(metadata=[MetadataMatch("rows", True)]), []),
    ("metadata boolean is not a number", AssetFilter(metadata=[MetadataMatch("verified", 1)]), [EVENTS]),
    ("metadata object", AssetFilter(metadata=[MetadataMatch("nested", {"a": 1})]), [ORDERS]),
    (
        "metadata all must match",
        AssetFilter(metadata=[MetadataMatch("tier", "gold"), MetadataMatch("rows", 365)]),
        [REVENUE],
    ),
    ("metadata missing key", AssetFilter(metadata=[MetadataMatch("absent", "gold")]), []),
    (
        "combined",
        AssetFilter(
            namespace_prefix="postgres://",
            types=["table"],
            owner="ana",
            tags=["gold"],
            search="orders",
            metadata=[MetadataMatch("verified", True)],
        ),
        [ORDERS],
    ),
    ("combined disjoint", AssetFilter(owner="bob", tags=["gold"]), []),
]


async def test_each_filter_alone_and_combined(db: Database) -> None:
    # One catalog for the whole table (a fresh database per case would cost more than the cases).
    await _catalog(db)
    wrong = {}
    for name, asset_filter, expected in FILTERS:
        listed = await _all_keys(db, asset_filter)
        if listed != expected:
            wrong[name] = (listed, expected)
    assert wrong == {}


async def test_metadata_keys_are_single_top_level_keys(db: Database) -> None:
    await declare(db, "w/dotted", at(0), metadata={"a.b": "x", "a": {"b": "y"}, "$[0]": 1})
    assert await _all_keys(db, AssetFilter(metadata=[MetadataMatch("a.b", "x")])) == ["w/dotted"]
    assert await _all_keys(db, AssetFilter(metadata=[MetadataMatch("a.b", "y")])) == []
    assert await _all_keys(db, AssetFilter(metadata=[MetadataMatch("$[0]", 1)])) == ["w/dotted"]
    async with db.session() as session:
        with pytest.raises(InvalidInput):
            await list_assets(session, AssetFilter(metadata=[MetadataMatch('a"b', 1)]), first=5)
        with pytest.raises(InvalidInput):
            await count_assets(session, AssetFilter(metadata=[MetadataMatch("", 1)]))


async def test_status_and_time_filters(db: Database) -> None:
    await declare(db, "w/never", at(0))
    await declare(db, "w/updated-late", at(50))
    await record(db, "load", "run-1", "COMPLETE", at(10), outputs=["w/ok"], now=at(10))
    await record(db, "load", "run-2", "FAIL", at(20), outputs=["w/failed"], now=at(20))
    await record(db, "load", "run-3", "COMPLETE", at(30), outputs=["w/ok-later"], now=at(30))

    async def keys(**values: Any) -> list[str]:
        return await _all_keys(db, AssetFilter(**values))

    assert await keys(last_statuses=["COMPLETE"]) == ["w/ok", "w/ok-later"]
    assert await keys(last_statuses=["FAIL", "COMPLETE"]) == ["w/failed", "w/ok", "w/ok-later"]
    assert await keys(last_statuses=[]) == []
    assert await keys(materialized_after=at(10)) == ["w/ok", "w/ok-later"]
    assert await keys(materialized_after=at(11)) == ["w/ok-later"]
    assert await keys(materialized_before=at(30)) == ["w/ok"]
    assert await keys(materialized_after=at(0), materialized_before=at(30)) == ["w/ok"]
    assert await keys(updated_after=at(20)) == ["w/failed", "w/ok-later", "w/updated-late"]
    assert await keys(updated_before=at(20)) == ["w/never", "w/ok"]
    assert await keys(updated_after=at(10), updated_before=at(30)) == ["w/failed", "w/ok"]
    assert await keys(updated_after=at(10), last_statuses=["COMPLETE"]) == ["w/ok", "w/ok-later"]


async def test_include_deleted(db: Database) -> None:
    await _catalog(db)
    async with db.transaction() as session:
        await soft_delete_asset(session, ORDERS, at(60))
    assert await _all_keys(db, AssetFilter(owner="ana")) == [REVENUE]
    assert await _all_keys(db, AssetFilter(owner="ana", include_deleted=True)) == [ORDERS, REVENUE]
    assert ORDERS not in await _all_keys(db, AssetFilter())


async def _ordering_catalog(db: Database) -> None:
    """Assets with tied and NULL sort values, so that the id tie-break and NULL placement matter."""
    # name ties: two assets named "orders" in different namespaces, declared out of key order
    await declare(db, "w2/orders", at(5))
    await declare(db, "w1/orders", at(5))
    await declare(db, "w1/zeta", at(1))
    await declare(db, "w1/Alpha", at(2))
    await declare(db, "w1/alpha", at(3))
    await declare(db, "w3/émigré", at(4))
    await declare(db, "w3/_under", at(3))
    # materializations, with a tie at minute 40 and several assets never materialized
    await record(db, "job", "run-a", "COMPLETE", at(40), outputs=["w1/zeta", "w2/orders"], now=at(40))
    await record(db, "job", "run-b", "COMPLETE", at(20), outputs=["w1/alpha"], now=at(20))
    await record(db, "job", "run-c", "COMPLETE", at(60), outputs=["w4/new"], now=at(60))


def _expected_order(rows: Sequence[Asset], order: AssetOrder) -> list[str]:
    if order is AssetOrder.KEY:
        return [row.key for row in sorted(rows, key=lambda row: (row.key, row.id))]
    if order is AssetOrder.NAME:
        return [row.key for row in sorted(rows, key=lambda row: (row.name, row.id))]
    column = "updated_at" if order is AssetOrder.UPDATED_AT_DESC else "last_materialized_at"
    present = [row for row in rows if getattr(row, column) is not None]
    missing = [row for row in rows if getattr(row, column) is None]
    return [
        row.key
        for row in sorted(present, key=lambda row: (getattr(row, column), row.id), reverse=True)
        + sorted(missing, key=lambda row: row.id, reverse=True)
    ]


@pytest.mark.parametrize("order", list(AssetOrder))
async def test_every_order_pages_through_every_row_once(db: Database, order: AssetOrder) -> None:
    await _ordering_catalog(db)
    async with db.session() as session:
        everything = (await list_assets(session, AssetFilter(), first=1000)).items
    assert len(everything) == 8
    expected = _expected_order(everything, order)

    for page_size in (1, 2, 3, 8, 100):
        seen: list[str] = []
        after: str | None = None
        pages = 0
        async with db.session() as session:
            while True:
                page = await list_assets(session, AssetFilter(), first=page_size, after=after, order=order)
                pages += 1
                assert len(page.items) <= page_size
                assert len(page.cursors) == len(page.items)
                seen.extend(row.key for row in page.items)
                if not page.has_next_page:
                    break
                assert len(page.items) == page_size
                after = page.cursors[-1]
        assert seen == expected, page_size
        assert pages == -(-len(everything) // page_size), page_size


async def test_orders_are_what_they_say(db: Database) -> None:
    """Spot checks of the expected orders, independent of the generic sorter above."""
    await _ordering_catalog(db)
    by_key = await _all_keys(db, AssetFilter(), AssetOrder.KEY)
    assert by_key == ["w1/Alpha", "w1/alpha", "w1/orders", "w1/zeta", "w2/orders", "w3/_under", "w3/émigré", "w4/new"]
    by_name = await _all_keys(db, AssetFilter(), AssetOrder.NAME)
    # Byte order: upper case before "_" before lower case before non-ASCII. The two assets named
    # "orders" tie; w2/orders was declared first, so its smaller id comes first.
    assert by_name == ["w1/Alpha", "w3/_under", "w1/alpha", "w4/new", "w2/orders", "w1/orders", "w1/zeta", "w3/émigré"]
    by_materialized = await _all_keys(db, AssetFilter(), AssetOrder.MATERIALIZED_AT_DESC)
    # w1/zeta and w2/orders tie at minute 40: the larger id (w1/zeta, declared later) comes first.
    assert by_materialized[:4] == ["w4/new", "w1/zeta", "w2/orders", "w1/alpha"]
    assert sorted(by_materialized[4:]) == ["w1/Alpha", "w1/orders", "w3/_under", "w3/émigré"]


async def _fetch(db: Database, order: AssetOrder, after: str | None, first: int = 2) -> tuple[list[str], str | None]:
    """One page in its own session, as one API request would read it."""
    async with db.session() as session:
        page = await list_assets(session, AssetFilter(), first=first, after=after, order=order)
    return [row.key for row in page.items], (page.cursors[-1] if page.has_next_page else None)


async def _page_while_inserting(
    db: Database, order: AssetOrder, inserts: list[tuple[str, str]], insert: Any
) -> tuple[list[str], list[str]]:
    """Pages through the catalog, inserting one row before and one after the cursor between pages."""
    seen: list[str] = []
    keys, after = await _fetch(db, order, None)
    seen.extend(keys)
    pending = list(inserts)
    while after is not None:
        if pending:
            before_cursor, after_cursor = pending.pop(0)
            await insert(before_cursor, "before")
            await insert(after_cursor, "after")
        keys, after = await _fetch(db, order, after)
        seen.extend(keys)
    return seen, [key for pair in inserts for key in pair]


async def test_key_order_pages_stay_correct_while_rows_are_inserted(db: Database) -> None:
    originals = ["k/b", "k/d", "k/f", "k/h", "k/j", "k/l"]
    for key in originals:
        await declare(db, key, at(0))

    async def insert(key: str, _where: str) -> None:
        await declare(db, key, at(1))

    seen, inserted = await _page_while_inserting(
        db, AssetOrder.KEY, [("k/a", "k/e"), ("k/c", "k/i"), ("k/bb", "k/k")], insert
    )
    assert len(seen) == len(set(seen)), seen
    assert set(originals) <= set(seen)
    # Rows inserted behind the cursor are not seen; rows ahead of it are, in order.
    assert seen == sorted(seen)
    assert {"k/a", "k/c", "k/bb"}.isdisjoint(seen)
    assert {"k/e", "k/i", "k/k"} <= set(seen)
    assert set(inserted) <= set(await _all_keys(db, AssetFilter()))


async def test_updated_order_pages_stay_correct_while_rows_are_inserted(db: Database) -> None:
    originals = [f"u/{minute:02d}" for minute in (50, 40, 30, 20, 10, 5)]
    for key in originals:
        await declare(db, key, at(int(key[2:])))

    async def insert(key: str, where: str) -> None:
        # Ahead of the cursor: older than everything; behind it: newer than everything.
        await declare(db, key, at(1) if where == "after" else at(90))

    seen, _ = await _page_while_inserting(
        db, AssetOrder.UPDATED_AT_DESC, [("u/new-1", "u/old-1"), ("u/new-2", "u/old-2")], insert
    )
    assert len(seen) == len(set(seen)), seen
    assert set(originals) <= set(seen)
    assert {"u/new-1", "u/new-2"}.isdisjoint(seen)
    assert {"u/old-1", "u/old-2"} <= set(seen)
    assert seen[: len(originals)] == originals


async def test_materialized_order_pages_stay_correct_while_rows_are_inserted(db: Database) -> None:
    for minute in (30, 20, 10):
        await record(db, "job", f"r{minute}", "COMPLETE", at(minute), outputs=[f"m/{minute}"], now=at(minute))
    for key in ("m/never-1", "m/never-2", "m/never-3"):
        await declare(db, key, at(0))

    async def materialize(key: str, minute: int) -> None:
        await record(db, "job", f"late-{key}", "COMPLETE", at(minute), outputs=[key], now=at(minute))

    page_1, after = await _fetch(db, AssetOrder.MATERIALIZED_AT_DESC, None)
    assert page_1 == ["m/30", "m/20"]
    await materialize("m/90", 90)  # behind the cursor: not seen
    await materialize("m/15", 15)  # ahead of it: seen
    await declare(db, "m/never-new-1", at(0))  # NULLs come after every time: seen, first of them (largest id)
    page_2, after = await _fetch(db, AssetOrder.MATERIALIZED_AT_DESC, after)
    page_3, after = await _fetch(db, AssetOrder.MATERIALIZED_AT_DESC, after)
    assert page_2 + page_3 == ["m/15", "m/10", "m/never-new-1", "m/never-3"]
    # The cursor now sits inside the NULL block, which is ordered by id, largest first: a new NULL row
    # (larger id) and any new time sort before it.
    await declare(db, "m/never-new-2", at(0))
    await materialize("m/05", 5)
    page_4, after = await _fetch(db, AssetOrder.MATERIALIZED_AT_DESC, after)
    assert page_4 == ["m/never-2", "m/never-1"]
    assert after is None

    assert await _all_keys(db, AssetFilter(), AssetOrder.MATERIALIZED_AT_DESC) == [
        "m/90",
        "m/30",
        "m/20",
        "m/15",
        "m/10",
        "m/05",
        "m/never-new-2",
        "m/never-new-1",
        "m/never-3",
        "m/never-2",
        "m/never-1",
    ]


async def test_rows_inserted_between_pages_in_name_order(db: Database) -> None:
    originals = [f"n{index}/item" for index in range(6)]
    for key in originals:
        await declare(db, key, at(0))
    first, after = await _fetch(db, AssetOrder.NAME, None, first=3)
    # Same name: sorts by id, i.e. after every original row, so it must be seen.
    await declare(db, "n9/item", at(1))
    # Smaller name: before the cursor, not seen.
    await declare(db, "n9/aaa", at(1))
    rest, after = await _fetch(db, AssetOrder.NAME, after, first=10)
    assert after is None
    assert first + rest == [*originals, "n9/item"]


BAD_CURSORS = dict(
    zip(
        [
            "text",
            "symbols",
            "not-json",
            "short-list",
            "string-id",
            "object",
            "number",
            "number-for-key",
            "list-for-key",
            "bad-time",
            "naive-time",
            "number-for-time",
        ],
        [
            "not a cursor",
            "%%%",
            base64.urlsafe_b64encode(b"not json").decode(),
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
            base64.urlsafe_b64encode(b'["KEY", "k/a", "one"]').decode(),
            base64.urlsafe_b64encode(b'{"order": "KEY"}').decode(),
            base64.urlsafe_b64encode(b"42").decode(),
            Cursor("KEY", 42, 1).encode(),
            Cursor("KEY", ["k/a"], 1).encode(),
            Cursor("UPDATED_AT_DESC", "yesterday", 1).encode(),
            Cursor("UPDATED_AT_DESC", "2026-11-02T12:00:00", 1).encode(),
            Cursor("UPDATED_AT_DESC", 1700000000, 1).encode(),
        ],
        strict=True,
    )
)


async def test_a_bad_cursor_is_invalid_input(db: Database) -> None:
    await declare(db, "k/a", at(0))
    accepted = []
    for name, token in BAD_CURSORS.items():
        for order in AssetOrder:
            async with db.session() as session:
                try:
                    await list_assets(session, AssetFilter(), first=2, after=token, order=order)
                except InvalidInput:
                    continue
            accepted.append((name, order.value))
    assert accepted == []


async def test_a_cursor_from_another_order_is_invalid_input(db: Database) -> None:
    for key in ("k/a", "k/b", "k/c"):
        await declare(db, key, at(0))
    async with db.session() as session:
        for made_for in AssetOrder:
            page = await list_assets(session, AssetFilter(), first=1, order=made_for)
            token = page.cursors[-1]
            for used_for in AssetOrder:
                if used_for is made_for:
                    assert (
                        len((await list_assets(session, AssetFilter(), first=5, after=token, order=used_for)).items)
                        == 2
                    )
                    continue
                with pytest.raises(InvalidInput):
                    await list_assets(session, AssetFilter(), first=5, after=token, order=used_for)


async def test_a_cursor_survives_its_row_being_deleted(db: Database) -> None:
    for key in ("k/a", "k/b", "k/c", "k/d"):
        await declare(db, key, at(0))
    first, after = await _fetch(db, AssetOrder.KEY, None)
    async with db.transaction() as session:
        await soft_delete_asset(session, "k/b", at(1))
    rest, _ = await _fetch(db, AssetOrder.KEY, after)
    assert first + rest == ["k/a", "k/b", "k/c", "k/d"]


async def test_count_assets_by_namespace_and_type(db: Database) -> None:
    await _catalog(db)
    await declare(db, "warehouse/untyped", at(9))
    await declare(db, "warehouse/extra_table", at(9), type="table")
    await declare(db, "warehouse/gone", at(9), type="table")
    async with db.transaction() as session:
        await soft_delete_asset(session, "warehouse/gone", at(10))
    async with db.session() as session:
        counts = await count_assets_by_namespace_and_type(session)
    assert counts == [
        ("company.team", "flow", 1),
        ("postgres://db:5432", "table", 2),
        ("s3://raw-bucket", "file", 1),
        ("snowflake://acme", "view", 1),
        ("warehouse", "table", 3),
        ("warehouse", None, 3),
    ]


async def test_an_empty_catalog(db: Database) -> None:
    async with db.session() as session:
        page = await list_assets(session, AssetFilter(), first=10)
        assert (list(page.items), list(page.cursors), page.has_next_page) == ([], [], False)
        assert await count_assets(session, AssetFilter()) == 0
        assert await count_assets_by_namespace_and_type(session) == []


def test_cursors_round_trip() -> None:
    token = Cursor("UPDATED_AT_DESC", at(3), 7).encode()
    assert Cursor.decode(token, "UPDATED_AT_DESC", is_time=True) == Cursor("UPDATED_AT_DESC", at(3), 7)
    assert orjson.loads(base64.urlsafe_b64decode(Cursor("KEY", None, 3).encode())) == ["KEY", None, 3]


async def test_a_page_read_with_health_carries_each_assets_verdict(db: Database) -> None:
    await _catalog(db)
    ids = dict(zip((ORDERS, EVENTS), await asset_ids(db, ORDERS, EVENTS), strict=True))
    async with db.transaction() as session:
        session.add(AssetHealth(asset_id=ids[ORDERS], status="STALE", since=at(5)))
        session.add(AssetHealth(asset_id=ids[EVENTS], status="FRESH", since=at(5)))
    plain: list[AssetRecord] = []
    statuses: dict[str, str | None] = {}
    after: str | None = None
    while True:
        async with db.session() as session:
            with_health = await list_assets(session, AssetFilter(), 2, after, AssetOrder.KEY, with_health=True)
            without = await list_assets(session, AssetFilter(), 2, after, AssetOrder.KEY)
        # The same page and cursors either way; the verdicts beside the items, None where no sweep judged one.
        assert [a.key for a in with_health.items] == [a.key for a in without.items]
        assert list(with_health.cursors) == list(without.cursors)
        assert list(without.columns) == []
        plain += without.items
        statuses.update((a.key, status) for a, (status,) in zip(with_health.items, with_health.columns, strict=True))
        if not with_health.has_next_page:
            break
        after = with_health.cursors[-1]
    assert statuses == {asset.key: {ORDERS: "STALE", EVENTS: "FRESH"}.get(asset.key) for asset in plain}
    assert len(plain) > 4


async def test_a_pages_cursors_are_its_items_in_order_however_they_are_read(db: Database) -> None:
    await _catalog(db)
    async with db.session() as session:
        page = await list_assets(session, AssetFilter(), 3)
    cursors = page.cursors
    # Encoded when read: the last first, then all of them, slices and negative indexes alike.
    last = cursors[-1]
    assert list(cursors) == [cursors[0], cursors[1], last]
    assert cursors[1:] == [cursors[1], last]
    assert [Cursor.decode(token, "KEY").value for token in cursors] == [asset.key for asset in page.items]
    with pytest.raises(IndexError):
        cursors[3]
    with pytest.raises(IndexError):
        cursors[-4]


@pytest.mark.parametrize("statuses", [["STALE"], ["UNKNOWN"], ["FRESH", "UNKNOWN"]])
async def test_a_page_with_health_filters_by_health_as_one_without(db: Database, statuses: list[str]) -> None:
    # The filter's subqueries on asset_health must not bind to the page's own join of it.
    await _catalog(db)
    ids = dict(zip((ORDERS, EVENTS), await asset_ids(db, ORDERS, EVENTS), strict=True))
    async with db.transaction() as session:
        session.add(AssetHealth(asset_id=ids[ORDERS], status="STALE", since=at(5)))
        session.add(AssetHealth(asset_id=ids[EVENTS], status="FRESH", since=at(5)))
    by_health = AssetFilter(health_statuses=statuses)
    async with db.session() as session:
        with_health = await list_assets(session, by_health, 50, None, AssetOrder.KEY, with_health=True)
        without = await list_assets(session, by_health, 50, None, AssetOrder.KEY)
    assert without.items
    assert [a.key for a in with_health.items] == [a.key for a in without.items]
    assert all((status or "UNKNOWN") in statuses for (status,) in with_health.columns)


async def test_a_pages_records_hold_the_assets_values_and_their_fields_are_read_apart(db: Database) -> None:
    await _catalog(db)
    columns = [{"name": "id", "type": "bigint"}, {"name": "total", "type": "numeric", "description": "with tax"}]
    await declare(db, ORDERS, at(9), fields=columns)
    await record(db, "load_orders", "run-1", "FAIL", at(10), outputs=[ORDERS])
    async with db.transaction() as session:
        await soft_delete_asset(session, PLAIN, at(11))
    async with db.session() as session:
        page = await list_assets(session, AssetFilter(include_deleted=True), 100)
        ids = [item.id for item in page.items]
        stored = await read_assets_by_ids(session, ids)
        fields = await read_asset_fields(session, [*ids, max(ids) + 1])
        by_id = await read_asset_records_by_ids(session, [*ids, max(ids) + 1])
    assert len(page.items) == 9
    assert all(isinstance(item, AssetRecord) for item in page.items)
    # Read by id (plain rows, not the page's statement), the same records; an id that is no asset, none.
    assert sorted(by_id) == sorted(ids)
    assert all(isinstance(record, AssetRecord) for record in by_id.values())
    names = list(AssetRecord.__dataclass_fields__)
    for item in page.items:
        asset = stored[item.id]
        assert [getattr(item, name) for name in names] == [getattr(asset, name) for name in names]
        assert [getattr(by_id[item.id], name) for name in names] == [getattr(asset, name) for name in names]
    # What varies is there to compare: a failed last run, a deleted asset, metadata, owners...
    orders = next(item for item in page.items if item.key == ORDERS)
    assert orders.last_status == "FAIL"
    assert orders.last_run_id is not None
    assert orders.metadata_["nested"] == {"a": 1}
    assert orders.owners == ["ana", "team:shop"]
    assert next(item for item in page.items if item.key == PLAIN).deleted_at is not None
    assert fields == {item.id: stored[item.id].fields for item in page.items}
    assert fields[orders.id] == columns
