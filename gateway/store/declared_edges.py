"""Lineage that jobs declare (OpenLineage JobEvents): every input of the job feeds every output."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.orm import LineageEdge
from gateway.store.run_rows import chunks
from gateway.store.run_settle import build_batch_retire, build_retire, edge_changes
from gateway.store.sql import cached, dialect_name, insert_for

_EDGES: Any = LineageEdge.__table__


@dataclass(frozen=True)
class Declaration:
    job_id: int
    input_ids: Sequence[int]
    output_ids: Sequence[int]
    event_time: datetime

    def pairs(self) -> list[tuple[int, int]]:
        """(upstream, downstream) of every edge declared, in lock order."""
        return [
            (upstream, downstream)
            for upstream in sorted(set(self.input_ids))
            for downstream in sorted(set(self.output_ids))
            if upstream != downstream
        ]


def _build_declared_edges(dialect: str) -> Any:
    statement = insert_for(dialect, _EDGES)
    return statement.on_conflict_do_update(
        index_elements=["upstream_id", "downstream_id", "job_id"],
        index_where=_EDGES.c.job_id.is_not(None),
        set_=edge_changes(_EDGES.c, statement.excluded, observed=False),
    )


def _edge(upstream: int, downstream: int, job_id: int, event_time: datetime) -> dict[str, Any]:
    return {
        "upstream_id": upstream,
        "downstream_id": downstream,
        "job_id": job_id,
        "origin": "declared",
        "first_seen_at": event_time,
        "last_seen_at": event_time,
        "last_run_id": None,
    }


async def declare_job_edges(
    session: AsyncSession, job_id: int, input_ids: Sequence[int], output_ids: Sequence[int], event_time: datetime
) -> None:
    """The static lineage one JobEvent declares."""
    await declare_edges(session, [Declaration(job_id, input_ids, output_ids, event_time)])


async def declare_edges(session: AsyncSession, declarations: Sequence[Declaration]) -> None:
    """The lineage of many JobEvents, in a few statements, as declaring them one after the other would leave it:
    an edge's seen interval is the widest of its declarations' (the upsert's own rule), and its retirement
    depends only on that interval and the runs, which declarations do not change, so it is computed once."""
    merged: dict[tuple[int, int, int], dict[str, Any]] = {}
    for declaration in declarations:
        for upstream, downstream in declaration.pairs():
            key = (upstream, downstream, declaration.job_id)
            row = merged.get(key)
            if row is None:
                merged[key] = _edge(upstream, downstream, declaration.job_id, declaration.event_time)
            else:
                row["first_seen_at"] = min(row["first_seen_at"], declaration.event_time)
                row["last_seen_at"] = max(row["last_seen_at"], declaration.event_time)
    if not merged:
        return
    upsert = cached(session, "declared edges", _build_declared_edges)
    for chunk in chunks([merged[key] for key in sorted(merged)]):
        await session.execute(upsert, chunk)
    # A run's edge declared later than the run that retired it lives again, as it would had the declaration
    # come first: its retirement follows the new time at once.
    scope = sorted({(job_id, downstream) for _, downstream, job_id in merged})
    if dialect_name(session) == "postgresql":
        retire = cached(session, "batch retire", build_batch_retire)
        await session.execute(
            retire, {"job_ids": [job_id for job_id, _ in scope], "asset_ids": [asset_id for _, asset_id in scope]}
        )
        return
    downstream_ids: dict[int, list[int]] = defaultdict(list)
    for job_id, downstream in scope:
        downstream_ids[job_id].append(downstream)
    retire = cached(session, ("retire", False), lambda dialect: build_retire(dialect, False))
    for job_id, downstreams in downstream_ids.items():
        await session.execute(retire, {"edge_job_id": job_id, "downstream_ids": downstreams})
