"""The fast paths answer exactly what the general paths answer.

- `schema/execution.py` reads plain leaf fields itself instead of going through graphql-core's completion: every
  answer (data and errors) is compared with graphql-core's own execution of the same operation.
- `Asset.status` comes with the page, the lineage or the neighbour list it is part of: it must be the status each
  asset has on its own, read with one statement for the whole list.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.database import Database
from gateway.demo import load_demo
from gateway.settings import Settings
from monitors.freshness import monitor_from_settings
from schema import build_schema
from schema.context import Context
from schema.execution import GatewayExecutionContext
from tests.helpers import count_statements, graphql_data

DASHBOARD = "superset://bi.acme.internal/dashboard/revenue-overview"

EVERYTHING = """
query Everything($dashboard: String!) {
  assets(first: 50) {
    totalCount
    edges { cursor node {
      __typename key namespace name type displayName description owners tags metadata
      createdAt updatedAt lastMaterializedAt lastStatus status deletedAt
      schema { name type description }
      aliases
      again: key
      ... on Asset { owners tags lastStatus }
      ...Identity
      lastExecution { runId state startedAt endedAt eventTime facets errorMessage durationSeconds
                      job { namespace name type description metadata } }
      upstream { key status lastStatus }
      downstream(depth: 2) { key status }
      executions(first: 5) { edges { node { role eventTime facets execution { runId state job { name } } } }
                             pageInfo { hasNextPage endCursor } }
      freshness { status reason deadline lastUpdated causeKey }
    } }
    pageInfo { hasNextPage endCursor }
  }
  lineage(key: $dashboard, direction: UPSTREAM, depth: 10, includeJobs: true) {
    nodes { depth asset { key status type } }
    edges { upstreamKey downstreamKey }
    jobs { namespace name }
    truncated
  }
  executions(first: 20) { edges { node { runId state job { name } inputs { asset { key status } }
                                        outputs { asset { key } } } } }
  namespaces { __typename }
}
fragment Identity on Asset { key namespace }
"""


async def _demo_swept(db: Database, settings: Settings, now: datetime) -> None:
    async with db.transaction() as session:
        await load_demo(session, now)
    monitor = monitor_from_settings(db, settings)
    try:
        await monitor.run(now)
    finally:
        await monitor.aclose()


async def test_plain_leaves_answer_as_graphql_core_does(db: Database, settings: Settings, now: datetime) -> None:
    await _demo_swept(db, settings, now)
    schema = build_schema(settings)
    assert schema.execution_context_class is GatewayExecutionContext

    async def answer(execution_context_class: type) -> tuple[Any, list[Any]]:
        schema.execution_context_class = execution_context_class
        # Without tokens the caller sees every namespace.
        context = Context.create(db, settings)
        result = await schema.execute(EVERYTHING, variable_values={"dashboard": DASHBOARD}, context_value=context)
        return result.data, [error.formatted for error in result.errors or []]

    fast, fast_errors = await answer(GatewayExecutionContext)
    general, general_errors = await answer(StrawberryGraphQLCoreExecutionContext)

    assert fast_errors == general_errors == []
    assert fast == general
    # The comparison means something: the answer holds every kind of leaf the fast path reads.
    nodes = [edge["node"] for edge in fast["assets"]["edges"]]
    assert len(nodes) == 12
    statuses = {node["status"] for node in nodes}
    assert "FAILED" in statuses
    assert len(statuses) >= 3
    assert any(node["owners"] for node in nodes)
    assert any(node["tags"] for node in nodes)
    assert any(node["lastStatus"] == "FAIL" for node in nodes)
    assert any(node["description"] is None for node in nodes)


# A schema whose values break the rules, to compare the errors of both paths.
@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Paint(enum.Enum):
    """Not the schema's enum, with a value alike."""

    RED = "red"


class Label(str):
    pass


@strawberry.type
class Odd:
    name: str
    names: list[str]
    colour: Colour
    maybe: int | None
    number: int
    flag: bool


def _odd(**values: Any) -> Odd:
    fields = {"name": "x", "names": ["a"], "colour": Colour.RED, "maybe": None, "number": 1, "flag": True, **values}
    odd = Odd.__new__(Odd)
    odd.__dict__.update(fields)
    return odd


@strawberry.type
class OddQuery:
    @strawberry.field
    def odds(self) -> list[Odd]:
        return [
            _odd(),
            _odd(name=None),  # null where it may not be
            _odd(names=["a", None, "c"]),  # a null item of a list of non-null strings
            _odd(names="not a list"),
            _odd(colour="purple"),  # not a member of the enum
            _odd(number="twelve"),  # an Int that is no integer
            _odd(number=2**40),  # an Int beyond 32 bits
            _odd(maybe=7),
            _odd(colour=Paint.RED),  # another enum's member, of the same value
        ]

    @strawberry.field
    def converted(self) -> list[Odd]:
        """Values a scalar or an enum answers otherwise than as they are."""
        return [_odd(name=12, names=[Label("b"), 3.5], flag=0), _odd(name=Label("y"), colour="blue", flag=1), _odd()]


async def _both_paths(query_type: type, query: str) -> list[tuple[Any, list[tuple[str, tuple[Any, ...]]]]]:
    """The answer (data, errors by message and path) of the fast path, then of graphql-core's own execution."""
    answers = []
    for execution_context_class in (GatewayExecutionContext, StrawberryGraphQLCoreExecutionContext):
        schema = strawberry.Schema(query_type, execution_context_class=execution_context_class)
        result = await schema.execute(query)
        answers.append((result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or [])))
    return answers


@strawberry.type
class Shelf:
    odds: list[Odd]
    holes: list[Odd | None]
    one: Odd
    nothing: Odd | None
    inner: Shelf | None


def _shelf(**values: Any) -> Shelf:
    fields = {"odds": [_odd(), _odd(maybe=3)], "holes": [_odd(), None], "one": _odd(), "nothing": None, "inner": None}
    shelf = Shelf.__new__(Shelf)
    shelf.__dict__.update({**fields, **values})
    return shelf


@strawberry.type
class ShelfQuery:
    @strawberry.field
    def shelf(self) -> Shelf:
        broken = [_odd(), _odd(name=None), _odd(colour="purple"), _odd(number="twelve"), None]
        return _shelf(inner=_shelf(odds=broken, holes=[None, _odd(names=["a", None])], one=_odd(number=2**40)))


# Objects without resolvers are answered whole by the fast path (or, at the first broken value, by graphql-core).
@pytest.mark.parametrize(
    "query",
    [
        "{ shelf { odds { name maybe } holes { name } one { colour } nothing { name } } }",
        "{ shelf { __typename odds { __typename n: number ...Names } inner { holes { maybe } } } }"
        " fragment Names on Odd { name names }",
        "{ shelf { inner { odds { name } } } }",
        "{ shelf { inner { odds { maybe } } } }",
        "{ shelf { inner { odds { colour number } } } }",
        "{ shelf { inner { holes { names } } } }",
        "{ shelf { inner { one { number } } } }",
        "{ shelf { inner { one { number @skip(if: true) name } odds { name @include(if: false) maybe } } } }",
        "{ shelf { odds { name } } also: shelf { odds { maybe } } }",
    ],
)
async def test_plain_objects_answer_as_graphql_core_does(query: str) -> None:
    answers = await _both_paths(ShelfQuery, query)
    assert answers[0] == answers[1]
    assert answers[0][0] is not None


async def test_values_a_scalar_converts_answer_as_graphql_core_does() -> None:
    answers = await _both_paths(OddQuery, "{ converted { name names colour flag } }")
    assert answers[0] == answers[1]
    assert answers[0] == (
        {
            "converted": [
                {"name": "12", "names": ["b", "3.5"], "colour": "RED", "flag": False},
                {"name": "y", "names": ["a"], "colour": "BLUE", "flag": True},
                {"name": "x", "names": ["a"], "colour": "RED", "flag": True},
            ]
        },
        [],
    )


@pytest.mark.parametrize(
    "query",
    [
        "{ odds { name } }",
        "{ odds { names } }",
        "{ odds { colour } }",
        "{ odds { number } }",
        "{ odds { maybe name names colour number flag __typename } }",
    ],
)
async def test_values_breaking_the_rules_fail_as_graphql_core_reports_them(query: str) -> None:
    answers = await _both_paths(OddQuery, query)
    assert answers[0] == answers[1]
    assert answers[0][1], "each of these queries meets at least one broken value"


async def test_status_read_with_the_list_is_each_assets_own(
    client: httpx.AsyncClient, app: Starlette, db: Database, settings: Settings, now: datetime
) -> None:
    await _demo_swept(db, settings, now)
    page = await graphql_data(client, "{ assets(first: 50) { edges { node { key status } } } }")
    listed = {edge["node"]["key"]: edge["node"]["status"] for edge in page["assets"]["edges"]}
    lineage = await graphql_data(
        client,
        """query($key: String!) {
             lineage(key: $key, direction: UPSTREAM, depth: 10) { nodes { asset { key status } } } }""",
        {"key": DASHBOARD},
    )
    assert len(listed) == 12
    for key, status in listed.items():
        alone = await graphql_data(client, "query($key: String!) { asset(key: $key) { status } }", {"key": key})
        assert alone["asset"]["status"] == status, key
    for node in lineage["lineage"]["nodes"]:
        assert node["asset"]["status"] == listed[node["asset"]["key"]]

    # One statement reads the verdicts of the whole page, and none when no status is asked for.
    with count_statements(app.state.db) as counter:
        await graphql_data(client, "{ assets(first: 50) { edges { node { key status } } } }")
    assert sum("asset_health" in statement for statement in counter.statements) == 1
    with count_statements(app.state.db) as counter:
        await graphql_data(client, "{ assets(first: 50) { edges { node { key lastStatus } } } }")
    assert not any("asset_health" in statement for statement in counter.statements)


async def test_answers_leave_the_facet_merge_bookkeeping_unread(
    client: httpx.AsyncClient, app: Starlette, db: Database, settings: Settings, now: datetime
) -> None:
    await _demo_swept(db, settings, now)
    with count_statements(app.state.db) as counter:
        data = await graphql_data(
            client,
            """query($key: String!) { asset(key: $key) { executions(first: 20) { edges { node {
                 facets execution { runId facets inputs { facets } } } } } } }""",
            {"key": DASHBOARD},
        )
    assert data["asset"]["executions"]["edges"], "the dashboard has an audit log"
    assert any("run_assets" in statement for statement in counter.statements)
    assert not any("facet_times" in statement for statement in counter.statements)
