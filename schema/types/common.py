"""Connections, enums and argument checks shared by the types."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import strawberry
from strawberry.scalars import JSON

from gateway.errors import InvalidInput
from gateway.store.pagination import Page
from schema.context import Info
from schema.execution import AT_HAND

T = TypeVar("T")
R = TypeVar("R")


@strawberry.enum(description="The state of an execution, as OpenLineage names run states.")
class RunState(enum.Enum):
    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"
    ABORT = "ABORT"
    OTHER = "OTHER"


@strawberry.enum(description="Whether an execution read an asset (INPUT) or wrote it (OUTPUT).")
class Role(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    # The page's cursors, encoded only for the edges whose cursor is asked for.
    cursors: strawberry.Private[Sequence[str]]
    index: strawberry.Private[int]

    def cursor_at_hand(self) -> str:
        return self.cursors[self.index]

    @strawberry.field(metadata={AT_HAND: cursor_at_hand})
    def cursor(self) -> str:
        return self.cursors[self.index]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def connection_edges(page: Page[R], convert: Callable[[R], T]) -> tuple[list[Edge[T]], PageInfo]:
    cursors = page.cursors
    edges = [Edge(node=convert(item), cursors=cursors, index=index) for index, item in enumerate(page.items)]
    return edges, PageInfo(has_next_page=page.has_next_page, end_cursor=page.cursors[-1] if page.cursors else None)


def page_size(info: Info, first: int | None) -> int:
    """`first` within 1..max page size; absent means the default."""
    limit = info.context.settings.max_page_size
    if first is None:
        return min(info.context.settings.default_page_size, limit)
    if first < 1 or first > limit:
        raise InvalidInput(f"first must be between 1 and {limit}, got {first}")
    return first


def as_utc(moment: datetime | None) -> datetime | None:
    """Times without a zone are read as UTC, as OpenLineage producers mean them."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as error:
        # 9999-12-31T23:00:00-05:00 is a fine DateTime literal, but past the last moment UTC can name.
        raise InvalidInput(f"time {moment.isoformat()} is out of range in UTC") from error


def require_utc(moment: datetime) -> datetime:
    value = as_utc(moment)
    assert value is not None
    return value


def reference_field(value: Any, typename: str, field: str) -> str:
    """A key field of a federation representation, which the client may have left out or mistyped."""
    if not isinstance(value, str):
        raise InvalidInput(f"a representation of {typename} needs the string field {field!r}")
    return value


def clean_keys(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else [value.strip() for value in values]


def as_json(value: Any) -> JSON:
    """Stored JSON goes out as the JSON scalar unchanged."""
    return cast(JSON, value)


def selects(info: Info, field_name: str) -> bool:
    """Whether a field of that name is selected anywhere below the field being resolved (fragments included)."""
    pending: list[Any] = list(info.selected_fields)
    while pending:
        selection = pending.pop()
        if getattr(selection, "name", None) == field_name:
            return True
        pending.extend(selection.selections)
    return False
