"""Postgres connections keep small statements prepared, not big ones (gateway/database.py: SmallStatementCache)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from gateway.database import MAX_CACHED_STATEMENT_CHARS, Database


async def cached_statements(db: Database) -> list[str]:
    async with db.transaction() as session:
        connection = await session.connection()
        raw: Any = await connection.get_raw_connection()
        return list(raw.dbapi_connection._prepared_statement_cache.keys())


@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_big_statements_are_prepared_but_not_kept(db: Database) -> None:
    small = "SELECT 1 AS small_statement"
    # As big as a batch's multi-row insert, past the limit: a long list of literals.
    big = "SELECT 1 AS big_statement WHERE 1 IN (" + ", ".join(["1"] * (MAX_CACHED_STATEMENT_CHARS // 3)) + ")"
    assert len(big) > MAX_CACHED_STATEMENT_CHARS
    async with db.transaction() as session:
        assert (await session.execute(text(small))).scalar() == 1
        assert (await session.execute(text(big))).scalar() == 1
        # Run again: still answered, prepared anew.
        assert (await session.execute(text(big))).scalar() == 1
    kept = await cached_statements(db)
    assert any("small_statement" in statement for statement in kept), kept
    assert not any("big_statement" in statement for statement in kept)
