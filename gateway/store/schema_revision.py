"""Which migration the database is at, read without Alembic: a serving process asks at every readiness probe and
has no other use for Alembic (about 11 MB once loaded)."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

# Alembic's own table: one row, the revision the database was last migrated to.
_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))


async def read_schema_revision(connection: AsyncConnection) -> str | None:
    """The database's migration revision; None before its first migration (no version table yet)."""
    exists = await connection.run_sync(lambda sync: inspect(sync).has_table(_ALEMBIC_VERSION.name))
    if not exists:
        return None
    revision: str | None = (await connection.execute(select(_ALEMBIC_VERSION.c.version_num))).scalar_one_or_none()
    return revision
