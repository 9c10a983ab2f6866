"""Column-level lineage: (downstream asset, field) <- (upstream asset, field)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import ColumnLineage
from gateway.store.sql import cached, insert_for, later


@dataclass(frozen=True)
class FieldDerivation:
    downstream_key: str
    downstream_field: str
    upstream_key: str
    upstream_field: str
    transformation_type: str | None = None
    transformation_subtype: str | None = None
    description: str | None = None


async def record_column_lineage(
    session: AsyncSession,
    derivations: Sequence[FieldDerivation],
    asset_ids: dict[str, int],
    job_id: int | None,
    event_time: datetime,
) -> None:
    rows = {
        (asset_ids[d.downstream_key], d.downstream_field, asset_ids[d.upstream_key], d.upstream_field): d
        for d in derivations
    }
    values = [
        {
            "downstream_id": downstream_id,
            "downstream_field": downstream_field,
            "upstream_id": upstream_id,
            "upstream_field": upstream_field,
            "transformation_type": d.transformation_type,
            "transformation_subtype": d.transformation_subtype,
            "description": d.description,
            "job_id": job_id,
            "last_seen_at": event_time,
        }
        for (downstream_id, downstream_field, upstream_id, upstream_field), d in sorted(
            rows.items(), key=lambda item: item[0]
        )
    ]
    statement = cached(session, "column lineage upsert", _build_upsert)
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        await session.execute(statement, chunk if len(chunk) > 1 else chunk[0])


def _build_upsert(dialect: str) -> Any:
    table: Any = ColumnLineage.__table__
    statement = insert_for(dialect, table)
    stored, new = table.c, statement.excluded
    newer = new.last_seen_at >= stored.last_seen_at
    return statement.on_conflict_do_update(
        index_elements=["downstream_id", "downstream_field", "upstream_id", "upstream_field"],
        set_={
            column: _newest(stored[column], new[column], newer)
            for column in ("transformation_type", "transformation_subtype", "description", "job_id")
        }
        | {"last_seen_at": later(stored.last_seen_at, new.last_seen_at)},
    )


def _newest(stored: Any, new: Any, newer: ColumnElement[bool]) -> ColumnElement[Any]:
    return case((newer, new), else_=stored)
