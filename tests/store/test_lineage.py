"""Lineage traversal, paths and neighbours over graphs built from runs and declarations."""

from __future__ import annotations

from datetime import datetime

from gateway.database import Database
from gateway.store.assets import soft_delete_asset
from gateway.store.lineage import (
    Direction,
    Edge,
    LineageResult,
    find_lineage_path,
    read_neighbour_assets,
    traverse_lineage,
)
from tests.helpers import caught_statements
from tests.store.factories import asset_ids, at, declare, record


class Graph:
    """Asset keys <-> ids for one test's graph."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = ids
        self.keys = {asset_id: key for key, asset_id in ids.items()}

    @classmethod
    async def load(cls, db: Database, *keys: str) -> Graph:
        return cls(dict(zip(keys, await asset_ids(db, *keys), strict=True)))

    def depths(self, result: LineageResult) -> dict[str, int]:
        return {self.keys[node]: depth for node, depth in result.depths.items()}

    def pairs(self, edges: list[Edge]) -> list[tuple[str, str]]:
        return [(self.keys[edge.upstream_id], self.keys[edge.downstream_id]) for edge in edges]


async def _declared_graph(db: Database) -> Graph:
    """s1, s2 -> st -> m -> d1 -> x, and m -> d2 (all declared, no jobs)."""
    await declare(db, "w/st", at(0), upstream_keys=["w/s1", "w/s2"])
    await declare(db, "w/m", at(0), upstream_keys=["w/st"])
    await declare(db, "w/d1", at(0), upstream_keys=["w/m"])
    await declare(db, "w/d2", at(0), upstream_keys=["w/m"])
    await declare(db, "w/x", at(0), upstream_keys=["w/d1"])
    return await Graph.load(db, "w/s1", "w/s2", "w/st", "w/m", "w/d1", "w/d2", "w/x")


async def _traverse(
    db: Database,
    graph: Graph,
    root: str,
    direction: Direction,
    depth: int,
    max_nodes: int = 1000,
    as_of: datetime | None = None,
) -> LineageResult:
    async with db.session() as session:
        return await traverse_lineage(session, graph.ids[root], direction, depth, max_nodes, as_of)


async def test_directions_and_depth_limits(db: Database) -> None:
    graph = await _declared_graph(db)

    up1 = await _traverse(db, graph, "w/m", Direction.UPSTREAM, 1)
    assert graph.depths(up1) == {"w/m": 0, "w/st": -1}
    assert graph.pairs(up1.edges) == [("w/st", "w/m")]
    up2 = await _traverse(db, graph, "w/m", Direction.UPSTREAM, 2)
    assert graph.depths(up2) == {"w/m": 0, "w/st": -1, "w/s1": -2, "w/s2": -2}
    assert sorted(graph.pairs(up2.edges)) == [("w/s1", "w/st"), ("w/s2", "w/st"), ("w/st", "w/m")]

    down1 = await _traverse(db, graph, "w/m", Direction.DOWNSTREAM, 1)
    assert graph.depths(down1) == {"w/m": 0, "w/d1": 1, "w/d2": 1}
    down9 = await _traverse(db, graph, "w/m", Direction.DOWNSTREAM, 9)
    assert graph.depths(down9) == {"w/m": 0, "w/d1": 1, "w/d2": 1, "w/x": 2}

    both = await _traverse(db, graph, "w/m", Direction.BOTH, 2)
    assert graph.depths(both) == {**graph.depths(up2), **graph.depths(down9)}
    assert both.truncated is False
    assert len(both.edges) == 6
    # node_ids: root first, then by distance, upstream before downstream at equal distance.
    assert [graph.keys[node] for node in both.node_ids][:2] == ["w/m", "w/st"]
    assert [abs(both.depths[node]) for node in both.node_ids] == [0, 1, 1, 1, 2, 2, 2]

    root_only = await _traverse(db, graph, "w/m", Direction.BOTH, 0)
    assert graph.depths(root_only) == {"w/m": 0}
    assert root_only.edges == []
    source = await _traverse(db, graph, "w/s1", Direction.UPSTREAM, 5)
    assert graph.depths(source) == {"w/s1": 0}


async def test_edges_between_the_same_assets_through_several_jobs_are_one_edge(db: Database) -> None:
    await record(db, "copy", "r1", "COMPLETE", at(10), inputs=["w/a"], outputs=["w/b"])
    await record(db, "check", "r2", "COMPLETE", at(20), inputs=["w/a"], outputs=["w/b"])
    await declare(db, "w/b", at(30), upstream_keys=["w/a"])
    graph = await Graph.load(db, "w/a", "w/b")
    result = await _traverse(db, graph, "w/b", Direction.UPSTREAM, 1)
    assert graph.pairs(result.edges) == [("w/a", "w/b")]
    (edge,) = result.edges
    assert len(edge.job_ids) == 2
    assert result.job_ids == sorted(edge.job_ids)
    assert sorted(edge.origins) == ["declared", "run"]
    assert edge.first_seen_at == at(10)
    assert edge.last_seen_at == at(30)


async def test_cycles_terminate(db: Database) -> None:
    await record(db, "ab", "r1", "COMPLETE", at(1), inputs=["w/a"], outputs=["w/b"])
    await record(db, "bc", "r2", "COMPLETE", at(2), inputs=["w/b"], outputs=["w/c"])
    await record(db, "ca", "r3", "COMPLETE", at(3), inputs=["w/c"], outputs=["w/a"])
    graph = await Graph.load(db, "w/a", "w/b", "w/c")

    down = await _traverse(db, graph, "w/a", Direction.DOWNSTREAM, 20)
    assert graph.depths(down) == {"w/a": 0, "w/b": 1, "w/c": 2}
    assert sorted(graph.pairs(down.edges)) == [("w/a", "w/b"), ("w/b", "w/c"), ("w/c", "w/a")]
    up = await _traverse(db, graph, "w/a", Direction.UPSTREAM, 20)
    assert graph.depths(up) == {"w/a": 0, "w/c": -1, "w/b": -2}
    both = await _traverse(db, graph, "w/a", Direction.BOTH, 20)
    assert set(graph.depths(both)) == {"w/a", "w/b", "w/c"}
    assert both.truncated is False


async def test_both_directions_reach_everything_either_direction_reaches(db: Database) -> None:
    """A node met upstream first must still be expanded downstream (here: a -> b -> a, b -> d)."""
    await record(db, "ab", "r1", "COMPLETE", at(1), inputs=["w/a"], outputs=["w/b"])
    await record(db, "ba", "r2", "COMPLETE", at(2), inputs=["w/b"], outputs=["w/a", "w/d"])
    await record(db, "za", "r3", "COMPLETE", at(3), inputs=["w/z"], outputs=["w/b"])
    graph = await Graph.load(db, "w/a", "w/b", "w/d", "w/z")

    up = await _traverse(db, graph, "w/a", Direction.UPSTREAM, 5)
    down = await _traverse(db, graph, "w/a", Direction.DOWNSTREAM, 5)
    both = await _traverse(db, graph, "w/a", Direction.BOTH, 5)
    assert graph.depths(down) == {"w/a": 0, "w/b": 1, "w/d": 2}
    assert graph.depths(up) == {"w/a": 0, "w/b": -1, "w/z": -2}
    assert set(both.depths) == set(up.depths) | set(down.depths)
    assert {graph.pairs([edge])[0] for edge in both.edges} == {
        pair for result in (up, down) for pair in graph.pairs(result.edges)
    }


async def test_a_node_limit_truncates(db: Database) -> None:
    graph = await _declared_graph(db)
    full = await _traverse(db, graph, "w/m", Direction.BOTH, 5)
    assert len(full.depths) == 7
    assert full.truncated is False

    exact = await _traverse(db, graph, "w/m", Direction.BOTH, 5, max_nodes=7)
    assert exact.truncated is False
    assert len(exact.depths) == 7

    for limit in (1, 2, 3, 6):
        result = await _traverse(db, graph, "w/m", Direction.BOTH, 5, max_nodes=limit)
        assert result.truncated is True, limit
        assert len(result.depths) == limit
        assert result.depths[graph.ids["w/m"]] == 0
        # Every edge joins two returned nodes; the nodes kept are the nearest ones.
        for edge in result.edges:
            assert edge.upstream_id in result.depths
            assert edge.downstream_id in result.depths
        assert max(abs(depth) for depth in result.depths.values()) <= (0 if limit == 1 else 2)

    down = await _traverse(db, graph, "w/m", Direction.DOWNSTREAM, 1, max_nodes=2)
    assert down.truncated is True
    assert len(down.depths) == 2


async def test_deleted_assets_are_left_out(db: Database) -> None:
    graph = await _declared_graph(db)
    async with db.transaction() as session:
        await soft_delete_asset(session, "w/st", at(5))
        await soft_delete_asset(session, "w/d2", at(5))
    both = await _traverse(db, graph, "w/m", Direction.BOTH, 5)
    assert graph.depths(both) == {"w/m": 0, "w/d1": 1, "w/x": 2}
    assert sorted(graph.pairs(both.edges)) == [("w/d1", "w/x"), ("w/m", "w/d1")]
    async with db.session() as session:
        assert await find_lineage_path(session, graph.ids["w/s1"], graph.ids["w/x"], 10, 100) is None
        neighbours = await read_neighbour_assets(session, [graph.ids["w/m"]], downstream=True)
    assert {near: [a.key for a in assets] for near, assets in neighbours.items()} == {graph.ids["w/m"]: ["w/d1"]}


async def test_as_of_sees_an_edge_only_while_it_was_live(db: Database) -> None:
    # Run 1 of `load` reads a and b; run 2 reads only a, so b -> out retires when run 2 completes.
    await record(db, "load", "r1", "START", at(10), inputs=["w/a", "w/b"], outputs=["w/out"])
    await record(db, "load", "r1", "COMPLETE", at(12))
    # A failed run and another job's run without b retire nothing.
    await record(db, "load", "r-failed", "FAIL", at(15), inputs=["w/a"], outputs=["w/out"])
    await record(db, "other", "r-other", "COMPLETE", at(16), inputs=["w/c"], outputs=["w/out"])
    graph = await Graph.load(db, "w/a", "w/b", "w/c", "w/out")
    upstream = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1)
    assert set(graph.depths(upstream)) == {"w/out", "w/a", "w/b", "w/c"}

    await record(db, "load", "r2", "START", at(20), inputs=["w/a"], outputs=["w/out"])
    assert set(graph.depths(await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1))) == {
        "w/out",
        "w/a",
        "w/b",
        "w/c",
    }, "a run that has not completed retires nothing"
    await record(db, "load", "r2", "COMPLETE", at(25))

    async def upstream_at(as_of: datetime | None) -> set[str]:
        result = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1, as_of=as_of)
        return set(graph.depths(result)) - {"w/out"}

    assert await upstream_at(None) == {"w/a", "w/c"}
    assert await upstream_at(at(9)) == set()
    assert await upstream_at(at(10)) == {"w/a", "w/b"}
    assert await upstream_at(at(24)) == {"w/a", "w/b", "w/c"}
    assert await upstream_at(at(25)) == {"w/a", "w/c"}
    assert await upstream_at(at(99)) == {"w/a", "w/c"}
    result = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1, as_of=at(24))
    retired = {graph.pairs([edge])[0]: edge.retired_at for edge in result.edges}
    assert retired[("w/b", "w/out")] == at(25)
    assert retired[("w/a", "w/out")] is None


async def test_retirement_does_not_depend_on_arrival_order(db: Database) -> None:
    # The later run arrives first; the earlier run's extra edge must still retire at the later run.
    await record(db, "load", "r2", "COMPLETE", at(25), inputs=["w/a"], outputs=["w/out"])
    await record(db, "load", "r1", "COMPLETE", at(10), inputs=["w/a", "w/b"], outputs=["w/out"])
    graph = await Graph.load(db, "w/a", "w/b", "w/out")
    now_result = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1)
    assert set(graph.depths(now_result)) == {"w/out", "w/a"}
    before = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1, as_of=at(20))
    assert set(graph.depths(before)) == {"w/out", "w/a", "w/b"}


async def test_shortest_path_downstream_and_upstream(db: Database) -> None:
    graph = await _declared_graph(db)
    # A shortcut: s1 -> m directly, besides s1 -> st -> m.
    await declare(db, "w/m", at(1), upstream_keys=["w/st", "w/s1"])
    ids = graph.ids

    async with db.session() as session:
        down = await find_lineage_path(session, ids["w/s1"], ids["w/x"], 10, 100)
        up = await find_lineage_path(session, ids["w/x"], ids["w/s1"], 10, 100)
        same = await find_lineage_path(session, ids["w/m"], ids["w/m"], 10, 100)
        siblings = await find_lineage_path(session, ids["w/d2"], ids["w/x"], 10, 100)
        sources = await find_lineage_path(session, ids["w/s1"], ids["w/s2"], 10, 100)
        too_deep = await find_lineage_path(session, ids["w/s1"], ids["w/x"], 2, 100)
        deep_enough = await find_lineage_path(session, ids["w/s1"], ids["w/x"], 3, 100)

    assert down is not None
    assert graph.pairs(down) == [("w/s1", "w/m"), ("w/m", "w/d1"), ("w/d1", "w/x")]
    assert up is not None
    # Upstream: the chain starts at `from` and walks against the edges.
    assert graph.pairs(up) == [("w/d1", "w/x"), ("w/m", "w/d1"), ("w/s1", "w/m")]
    assert same == []
    assert siblings is None
    assert sources is None
    assert too_deep is None
    assert deep_enough is not None
    assert len(deep_enough) == 3


async def test_a_path_follows_only_live_edges(db: Database) -> None:
    await record(db, "load", "r1", "COMPLETE", at(10), inputs=["w/a"], outputs=["w/b"])
    await record(db, "load", "r2", "COMPLETE", at(20), inputs=["w/c"], outputs=["w/b"])
    graph = await Graph.load(db, "w/a", "w/b", "w/c")
    async with db.session() as session:
        assert await find_lineage_path(session, graph.ids["w/a"], graph.ids["w/b"], 5, 100) is None
        path = await find_lineage_path(session, graph.ids["w/c"], graph.ids["w/b"], 5, 100)
    assert path is not None
    assert graph.pairs(path) == [("w/c", "w/b")]


async def test_read_neighbour_assets(db: Database) -> None:
    graph = await _declared_graph(db)
    # A second edge between m and d1, through a job: d1 is still listed once.
    await record(db, "publish", "r1", "COMPLETE", at(5), inputs=["w/m"], outputs=["w/d1"])
    ids = graph.ids
    async with db.session() as session:
        down = await read_neighbour_assets(session, [ids["w/m"], ids["w/x"], ids["w/m"]], downstream=True)
        up = await read_neighbour_assets(session, [ids["w/st"], ids["w/s1"]], downstream=False)
        nothing = await read_neighbour_assets(session, [], downstream=True)
    # Each neighbour once (d1 has two edges from m), in id order, as its row.
    assert {graph.keys[key]: [asset.key for asset in assets] for key, assets in down.items()} == {
        "w/m": sorted(["w/d1", "w/d2"], key=lambda key: ids[key]),
        "w/x": [],
    }
    assert {graph.keys[key]: [asset.key for asset in assets] for key, assets in up.items()} == {
        "w/st": sorted(["w/s1", "w/s2"], key=lambda key: ids[key]),
        "w/s1": [],
    }
    assert nothing == {}


async def test_traversal_from_an_isolated_asset(db: Database) -> None:
    await declare(db, "w/alone", at(0))
    graph = await Graph.load(db, "w/alone")
    for direction in Direction:
        result = await _traverse(db, graph, "w/alone", direction, 3)
        assert graph.depths(result) == {"w/alone": 0}
        assert (result.edges, result.truncated, result.job_ids) == ([], False, [])


async def test_a_pair_joined_by_a_live_and_a_retired_edge_is_live(db: Database) -> None:
    # `other` keeps writing a -> out; `load` wrote it once and then stopped.
    await record(db, "other", "o1", "COMPLETE", at(5), inputs=["w/a"], outputs=["w/out"])
    await record(db, "load", "l1", "COMPLETE", at(10), inputs=["w/a"], outputs=["w/out"])
    await record(db, "load", "l2", "COMPLETE", at(20), inputs=["w/b"], outputs=["w/out"])
    graph = await Graph.load(db, "w/a", "w/b", "w/out")
    for as_of in (None, at(15), at(30)):
        result = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1, as_of=as_of)
        (edge,) = [edge for edge in result.edges if edge.upstream_id == graph.ids["w/a"]]
        assert edge.retired_at is None, as_of
    result = await _traverse(db, graph, "w/out", Direction.UPSTREAM, 1, as_of=at(15))
    (edge,) = [edge for edge in result.edges if edge.upstream_id == graph.ids["w/a"]]
    assert len(edge.job_ids) == 2


async def test_every_level_of_a_walk_is_one_statement_whatever_its_width(db: Database) -> None:
    graph = await _declared_graph(db)
    with caught_statements(db.read_engine, lambda statement: "lineage_edges" in statement) as caught:
        walked = await _traverse(db, graph, "w/x", Direction.UPSTREAM, 9)
    assert graph.depths(walked) == {"w/x": 0, "w/d1": -1, "w/m": -2, "w/st": -3, "w/s1": -4, "w/s2": -4}
    # Frontiers of one asset (x, d1, m, st), then of two (s1, s2): on Postgres one array parameter, so one statement
    # to prepare and plan, where an IN list is a statement for every width.
    assert len(caught) == 5
    if db.dialect == "postgresql":
        assert len({statement for statement, _ in caught}) == 1
