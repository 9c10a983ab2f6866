"""Times go in aware and come back aware, in UTC, the same instant, on both dialects (gateway/types.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from gateway.database import Database
from gateway.orm import Asset

PARIS_SUMMER = timezone(timedelta(hours=2))


async def _store(db: Database, when: datetime) -> None:
    async with db.transaction() as session:
        session.add(
            Asset(
                key="w/t",
                namespace="w",
                name="t",
                owners=[],
                tags=[],
                metadata_={},
                fields=[],
                created_at=when,
                updated_at=when,
                last_materialized_at=None,
            )
        )


async def _read(db: Database, session_zone: str | None = None) -> Asset:
    async with db.session() as session:
        if session_zone is not None:
            await session.execute(text(f"SET TIME ZONE '{session_zone}'"))
        asset = (await session.scalars(select(Asset).where(Asset.key == "w/t"))).one()
        if session_zone is not None:
            await session.execute(text("RESET TIME ZONE"))
    return asset


def _same_instant_in_utc(read: datetime | None, written: datetime) -> None:
    assert read == written
    assert read is not None
    assert read.tzinfo == UTC


async def test_a_time_reads_back_as_the_same_instant_in_utc(db: Database) -> None:
    written = datetime(2026, 7, 1, 14, 30, 15, 123456, tzinfo=PARIS_SUMMER)
    await _store(db, written)
    asset = await _read(db)
    _same_instant_in_utc(asset.created_at, written)
    assert asset.last_materialized_at is None


@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_the_session_time_zone_does_not_change_what_is_read(db: Database) -> None:
    # The driver reads timestamptz as UTC whatever the session's zone: the column type converts nothing after it.
    written = datetime(2026, 7, 1, 14, 30, 15, 123456, tzinfo=PARIS_SUMMER)
    await _store(db, written)
    _same_instant_in_utc((await _read(db, "America/Los_Angeles")).created_at, written)
