"""The lineage graph as the API returns it: nodes with their distance, merged edges, the jobs between."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from gateway.errors import InvalidInput, NotFound
from gateway.store import lineage
from schema.context import Info
from schema.types.asset import Asset, assets_of
from schema.types.common import as_utc
from schema.types.job import Job


@strawberry.enum
class LineageDirection(enum.Enum):
    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"
    BOTH = "BOTH"


@strawberry.type(description="An asset in a lineage answer; depth is negative upstream, positive downstream.")
class LineageNode:
    asset: Asset
    depth: int


@strawberry.type(description="Lineage from one asset to another, through one or more jobs.")
class LineageEdge:
    edge: strawberry.Private[lineage.Edge]
    upstream_key: str
    downstream_key: str
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    retired_at: datetime | None
    declared: bool = strawberry.field(description="True when declared through the API rather than seen in a run.")

    @strawberry.field
    async def upstream(self, info: Info) -> Asset:
        row = await info.context.loaders.asset_by_id.load(self.edge.upstream_id)
        assert row is not None
        return Asset.from_row(row)

    @strawberry.field
    async def downstream(self, info: Info) -> Asset:
        row = await info.context.loaders.asset_by_id.load(self.edge.downstream_id)
        assert row is not None
        return Asset.from_row(row)

    @strawberry.field(description="The jobs whose executions carry data along this edge.")
    async def jobs(self, info: Info) -> list[Job]:
        rows = await info.context.loaders.job_by_id.load_many(self.edge.job_ids)
        return [Job.from_row(row) for row in rows if row is not None]


@strawberry.type
class LineageGraph:
    root: Asset
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    jobs: list[Job]
    truncated: bool = strawberry.field(description="True when the node limit cut the answer short.")


@strawberry.type
class LineagePath:
    nodes: list[Asset]
    edges: list[LineageEdge]


def check_depth(info: Info, depth: int) -> int:
    limit = info.context.settings.lineage_max_depth
    if depth < 1 or depth > limit:
        raise InvalidInput(f"depth must be between 1 and {limit}, got {depth}")
    return depth


def _check_limit(info: Info, limit: int | None) -> int:
    ceiling = info.context.settings.lineage_max_nodes
    if limit is None:
        return ceiling
    if limit < 1 or limit > ceiling:
        raise InvalidInput(f"limit must be between 1 and {ceiling}, got {limit}")
    return limit


async def _asset_or_not_found(info: Info, key: str) -> Asset:
    row = await info.context.loaders.asset_by_key.load(key)
    if row is None:
        raise NotFound(f"no asset with key {key!r}")
    return Asset.from_row(row)


async def _edges(info: Info, edges: list[lineage.Edge]) -> list[LineageEdge]:
    ids = sorted({edge.upstream_id for edge in edges} | {edge.downstream_id for edge in edges})
    rows = await info.context.loaders.asset_by_id.load_many(ids)
    keys = {row.id: row.key for row in rows if row is not None}
    return [
        LineageEdge(
            edge=edge,
            upstream_key=keys[edge.upstream_id],
            downstream_key=keys[edge.downstream_id],
            first_seen_at=edge.first_seen_at,
            last_seen_at=edge.last_seen_at,
            retired_at=edge.retired_at,
            declared="declared" in edge.origins,
        )
        for edge in edges
    ]


async def resolve_lineage(
    info: Info,
    key: str,
    direction: LineageDirection,
    depth: int | None,
    as_of: datetime | None,
    include_jobs: bool,
    limit: int | None,
) -> LineageGraph:
    depth = check_depth(info, depth if depth is not None else info.context.settings.lineage_default_depth)
    node_limit = _check_limit(info, limit)
    root = await _asset_or_not_found(info, key)
    async with info.context.db.session() as session:
        result = await lineage.traverse_lineage(
            session,
            root.id,
            lineage.Direction(direction.value),
            depth,
            node_limit,
            as_utc(as_of),
            info.context.loaders.grants,
        )
    loaders = info.context.loaders
    rows = [row for row in await loaders.asset_by_id.load_many(result.node_ids) if row is not None]
    nodes = [LineageNode(asset=asset, depth=result.depths[asset.id]) for asset in await assets_of(info, rows)]
    jobs: list[Job] = []
    if include_jobs:
        jobs = [Job.from_row(row) for row in await loaders.job_by_id.load_many(result.job_ids) if row]
    return LineageGraph(
        root=root, nodes=nodes, edges=await _edges(info, result.edges), jobs=jobs, truncated=result.truncated
    )


async def resolve_lineage_path(info: Info, from_key: str, to_key: str) -> LineagePath | None:
    start = await _asset_or_not_found(info, from_key)
    end = await _asset_or_not_found(info, to_key)
    settings = info.context.settings
    async with info.context.db.session() as session:
        path = await lineage.find_lineage_path(
            session,
            start.id,
            end.id,
            settings.lineage_max_depth,
            settings.lineage_max_nodes,
            info.context.loaders.grants,
        )
    if path is None:
        return None
    if not path:
        return LineagePath(nodes=[start], edges=[])
    order = [path[0].upstream_id, *(edge.downstream_id for edge in path)]
    if path[0].upstream_id != start.id:
        order = [path[0].downstream_id, *(edge.upstream_id for edge in path)]
    rows = await info.context.loaders.asset_by_id.load_many(order)
    return LineagePath(nodes=[Asset.from_row(row) for row in rows if row is not None], edges=await _edges(info, path))
