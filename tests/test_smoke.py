"""The first thing a user does: query an empty catalog, load something, see it."""

from __future__ import annotations

import httpx

from gateway.database import Database
from gateway.demo import load_demo
from tests.helpers import graphql_data


async def test_catalog_answers_and_demo_lineage_reaches_sources(client: httpx.AsyncClient, db: Database, now) -> None:
    empty = await graphql_data(client, "{ assets(first: 5) { totalCount edges { node { key } } } }")
    assert empty == {"assets": {"totalCount": 0, "edges": []}}

    async with db.transaction() as session:
        await load_demo(session, now)

    data = await graphql_data(
        client,
        """{ lineage(key: "superset://bi.acme.internal/dashboard/revenue-overview", direction: UPSTREAM, depth: 10)
             { nodes { depth asset { key } } truncated } }""",
    )
    keys = {node["asset"]["key"]: node["depth"] for node in data["lineage"]["nodes"]}
    assert keys["postgres://shop-db:5432/shop.public.orders"] == -4
    assert keys["snowflake://acme.eu-west-1/analytics.marts.revenue_daily"] == -1
    assert "s3://acme-raw/events/clickstream" not in keys
    assert data["lineage"]["truncated"] is False
