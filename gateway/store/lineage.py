"""Lineage traversal: one statement per depth level, a node budget, cycles end, `asOf` via edge times."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import NamespaceGrants
from gateway.orm import Asset, ColumnLineage, LineageEdge
from gateway.store.asset_records import ASSET_RECORD, AssetRecord
from gateway.store.grants import namespace_clause
from gateway.store.sql import dialect_name, one_of

FRONTIER_CHUNK = 5_000


class Direction(enum.Enum):
    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"
    BOTH = "BOTH"


@dataclass
class Edge:
    """All live edges between one pair of assets, whichever jobs made them."""

    upstream_id: int
    downstream_id: int
    job_ids: list[int] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    retired_at: datetime | None = None

    def absorb(self, job_id: int | None, origin: str, first: datetime, last: datetime, retired: Any) -> None:
        if job_id is not None and job_id not in self.job_ids:
            self.job_ids.append(job_id)
        if origin not in self.origins:
            self.origins.append(origin)
        # The pair retires only when its last edge does: one live edge keeps it live.
        if self.first_seen_at is None:
            self.retired_at = retired
        elif self.retired_at is not None:
            self.retired_at = None if retired is None else max(self.retired_at, retired)
        self.first_seen_at = first if self.first_seen_at is None else min(self.first_seen_at, first)
        self.last_seen_at = last if self.last_seen_at is None else max(self.last_seen_at, last)


@dataclass
class LineageResult:
    root_id: int
    depths: dict[int, int]
    edges: list[Edge]
    truncated: bool

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.depths, key=lambda node: (abs(self.depths[node]), self.depths[node], node))

    @property
    def job_ids(self) -> list[int]:
        return sorted({job_id for edge in self.edges for job_id in edge.job_ids})


# The tables' own columns, not the ORM's attributes: a statement that names none of the ORM's runs as plain SQL,
# its rows read without the ORM's loading machinery (a walk reads thousands of edges).
_EDGES = LineageEdge.__table__.c
_ASSETS = Asset.__table__.c


def _live(as_of: datetime | None) -> list[ColumnElement[bool]]:
    if as_of is None:
        return [_EDGES.retired_at.is_(None)]
    return [
        _EDGES.first_seen_at <= as_of,
        _EDGES.retired_at.is_(None) | (_EDGES.retired_at > as_of),
    ]


async def _neighbour_edges(
    session: AsyncSession,
    frontier: Sequence[int],
    downstream: bool,
    as_of: datetime | None,
    grants: NamespaceGrants | None = None,
) -> list[Any]:
    return await _neighbour_rows(session, frontier, downstream, as_of, grants, _edge_columns)


def _edge_columns(near: Any, far: Any) -> list[Any]:
    return [
        _EDGES.upstream_id,
        _EDGES.downstream_id,
        _EDGES.job_id,
        _EDGES.origin,
        _EDGES.first_seen_at,
        _EDGES.last_seen_at,
        _EDGES.retired_at,
    ]


async def _neighbour_rows(
    session: AsyncSession,
    frontier: Sequence[int],
    downstream: bool,
    as_of: datetime | None,
    grants: NamespaceGrants | None,
    columns: Callable[[Any, Any], list[Any]],
) -> list[Any]:
    """The frontier's live edges in one direction, as `columns(near, far)`, to assets that are not deleted."""
    # Assets outside the grants are left out, and the traversal does not pass through them.
    visible = namespace_clause(grants, _ASSETS.namespace, dialect_name(session))
    near, far = (_EDGES.upstream_id, _EDGES.downstream_id) if downstream else (_EDGES.downstream_id, _EDGES.upstream_id)
    rows: list[Any] = []
    for start in range(0, len(frontier), FRONTIER_CHUNK):
        statement = (
            select(*columns(near, far))
            .select_from(LineageEdge.__table__)
            .join(Asset.__table__, _ASSETS.id == far)
            .where(
                one_of(session, near, frontier[start : start + FRONTIER_CHUNK]),
                _ASSETS.deleted_at.is_(None),
                visible,
                *_live(as_of),
            )
            .order_by(near, far, _EDGES.id)
        )
        rows.extend((await session.execute(statement)).all())
    return rows


_SIDES = {
    Direction.UPSTREAM: (False,),
    Direction.DOWNSTREAM: (True,),
    Direction.BOTH: (False, True),
}


@dataclass
class _Walk:
    """One root's breadth-first walk, advanced a level at a time (beside other roots' walks)."""

    root_id: int
    depths: dict[int, int]
    edges: dict[tuple[int, int], Edge] = field(default_factory=dict)
    truncated: bool = False
    frontier: list[int] = field(default_factory=list)
    visited: set[int] = field(default_factory=set)

    def turn(self) -> None:
        """Start the next direction from the root."""
        # Each direction expands every node it reaches, even one the other direction met first
        # (in a cycle, a node can be both upstream and downstream of the root); that node keeps
        # the depth it was given first.
        self.frontier = [self.root_id]
        self.visited = {self.root_id}

    def step(self, rows_by_near: dict[int, list[Any]], downstream: bool, level: int, max_nodes: int) -> None:
        sign = 1 if downstream else -1
        next_frontier: list[int] = []
        # Nodes in id order, each one's edges as _neighbour_edges orders them: the same for any company of roots.
        for near in sorted(self.frontier):
            for up, down, job_id, origin, first, last, retired in rows_by_near.get(near, ()):
                far = down if downstream else up
                if far not in self.depths:
                    if len(self.depths) >= max_nodes:
                        self.truncated = True
                        continue
                    self.depths[far] = sign * level
                if far not in self.visited:
                    self.visited.add(far)
                    next_frontier.append(far)
                edge = self.edges.setdefault((up, down), Edge(up, down))
                edge.absorb(job_id, origin, first, last, retired)
        self.frontier = next_frontier


async def traverse_lineage(
    session: AsyncSession,
    root_id: int,
    direction: Direction,
    depth: int,
    max_nodes: int,
    as_of: datetime | None = None,
    grants: NamespaceGrants | None = None,
) -> LineageResult:
    """Breadth-first from the root; depths are negative upstream, positive downstream."""
    found = await traverse_lineage_many(session, [root_id], direction, depth, max_nodes, as_of, grants)
    return found[root_id]


async def traverse_lineage_many(
    session: AsyncSession,
    root_ids: Sequence[int],
    direction: Direction,
    depth: int,
    max_nodes: int,
    as_of: datetime | None = None,
    grants: NamespaceGrants | None = None,
) -> dict[int, LineageResult]:
    """traverse_lineage from every root at once: one statement per level for all of them (the node budget and
    the answer stay each root's own)."""
    walks = [_Walk(root_id, {root_id: 0}) for root_id in dict.fromkeys(root_ids)]
    for downstream in _SIDES[direction]:
        for walk in walks:
            walk.turn()
        for level in range(1, depth + 1):
            active = [walk for walk in walks if walk.frontier]
            if not active:
                break
            frontier = sorted({node for walk in active for node in walk.frontier})
            rows_by_near: dict[int, list[Any]] = {}
            for row in await _neighbour_edges(session, frontier, downstream, as_of, grants):
                up, down = row[0], row[1]
                rows_by_near.setdefault(up if downstream else down, []).append(row)
            for walk in active:
                walk.step(rows_by_near, downstream, level, max_nodes)
    return {
        walk.root_id: LineageResult(walk.root_id, walk.depths, list(walk.edges.values()), walk.truncated)
        for walk in walks
    }


async def find_lineage_path(
    session: AsyncSession,
    from_id: int,
    to_id: int,
    max_depth: int,
    max_nodes: int,
    grants: NamespaceGrants | None = None,
) -> list[Edge] | None:
    """The shortest chain of edges from `from_id` down to `to_id` (or up to it), or None."""
    if from_id == to_id:
        return []
    for downstream in (True, False):
        previous: dict[int, Edge] = {}
        seen = {from_id}
        frontier = [from_id]
        for _ in range(max_depth):
            if not frontier or len(seen) > max_nodes:
                break
            next_frontier: list[int] = []
            for up, down, job_id, origin, first, last, retired in await _neighbour_edges(
                session, frontier, downstream, None, grants
            ):
                far = down if downstream else up
                if far in seen:
                    continue
                seen.add(far)
                edge = Edge(up, down)
                edge.absorb(job_id, origin, first, last, retired)
                previous[far] = edge
                next_frontier.append(far)
                if far == to_id:
                    path = []
                    node = to_id
                    while node != from_id:
                        step = previous[node]
                        path.append(step)
                        node = step.upstream_id if downstream else step.downstream_id
                    return list(reversed(path))
            frontier = next_frontier
    return None


async def read_neighbour_assets(
    session: AsyncSession, asset_ids: Sequence[int], downstream: bool, grants: NamespaceGrants | None = None
) -> dict[int, list[AssetRecord]]:
    """asset id -> its live direct downstream (or upstream) assets, each once, in id order: the edges and the
    assets they lead to in one statement."""
    result: dict[int, list[AssetRecord]] = {asset_id: [] for asset_id in asset_ids}
    seen: dict[int, set[int]] = {asset_id: set() for asset_id in asset_ids}
    unique = sorted(set(asset_ids))
    for near, asset in await _neighbour_rows(session, unique, downstream, None, grants, _near_and_asset):
        if asset.id not in seen[near]:
            seen[near].add(asset.id)
            result[near].append(asset)
    return result


def _near_and_asset(near: Any, far: Any) -> list[Any]:
    return [near, ASSET_RECORD]


async def read_column_lineage_by_downstream_ids(
    session: AsyncSession, asset_ids: Sequence[int]
) -> dict[int, list[ColumnLineage]]:
    result: dict[int, list[ColumnLineage]] = {asset_id: [] for asset_id in asset_ids}
    if asset_ids:
        rows = await session.scalars(
            select(ColumnLineage)
            .where(one_of(session, ColumnLineage.downstream_id, asset_ids))
            .order_by(ColumnLineage.downstream_id, ColumnLineage.downstream_field, ColumnLineage.upstream_field)
        )
        for row in rows:
            result[row.downstream_id].append(row)
    return result
