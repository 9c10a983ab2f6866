"""Opaque keyset cursors: (order, sort value, id). Pages stay correct while rows are inserted."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

import orjson
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from gateway.errors import InvalidInput

T = TypeVar("T")
Column = ColumnElement[Any] | QueryableAttribute[Any]


@dataclass(frozen=True)
class Cursor:
    order: str
    value: Any
    id: int

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return base64.urlsafe_b64encode(orjson.dumps([self.order, value, self.id])).decode()

    @classmethod
    def decode(cls, token: str, order: str, is_time: bool = False) -> Cursor:
        try:
            saved_order, value, row_id = orjson.loads(base64.urlsafe_b64decode(token.encode()))
            # Every order sorts by a string or a time (sent as ISO text with its offset): anything
            # else would reach SQL as a value of the wrong type.
            if value is not None and not isinstance(value, str):
                raise TypeError("value")
            # Postgres stores no NUL in text, and compares no id beyond 64 bits: such a cursor was never given out.
            if value is not None and "\x00" in value:
                raise ValueError("value")
            if is_time and value is not None:
                value = datetime.fromisoformat(value)
                if value.tzinfo is None:
                    raise ValueError("naive time")
            if not isinstance(row_id, int) or isinstance(row_id, bool) or not -(2**63) <= row_id < 2**63:
                raise TypeError("id")
        except (ValueError, TypeError) as error:
            raise InvalidInput(f"cursor {token[:40]!r} is not a cursor this API gave out") from error
        if saved_order != order:
            raise InvalidInput(f"cursor was made for order {saved_order}, not {order}")
        return cls(order, value, row_id)


class Cursors(Sequence[str], Generic[T]):
    """The cursors of a page's items, each encoded when first read: most answers read only the last one."""

    __slots__ = ("_encoded", "_items", "_order")

    def __init__(self, order: KeysetOrder[T], items: Sequence[T]) -> None:
        self._order = order
        self._items = items
        self._encoded: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        position = index + len(self._items) if index < 0 else index
        if not 0 <= position < len(self._items):
            raise IndexError(index)
        encoded = self._encoded.get(position)
        if encoded is None:
            item = self._items[position]
            order = self._order
            encoded = Cursor(order.name, order.sort_value(item), order.row_id(item)).encode()
            self._encoded[position] = encoded
        return encoded


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    cursors: Sequence[str]
    has_next_page: bool
    # Per item, the further columns its statement selected beside the entity (empty when it selected none).
    columns: Sequence[tuple[Any, ...]] = ()


def after_condition(
    column: Column, id_column: Column, cursor: Cursor, descending: bool, nullable: bool = True
) -> ColumnElement[bool]:
    """Rows strictly after the cursor in (column, id) order; NULLs sort last."""
    beyond_id = id_column < cursor.id if descending else id_column > cursor.id
    if cursor.value is None:
        # Inside the trailing block of NULLs only the id orders the rows.
        return and_(column.is_(None), beyond_id)
    beyond = column < cursor.value if descending else column > cursor.value
    if not nullable:
        return or_(beyond, and_(column == cursor.value, beyond_id))
    return or_(beyond, and_(column == cursor.value, beyond_id), column.is_(None))


def ordered(column: Column, id_column: Column, descending: bool, nullable: bool = True) -> list[Any]:
    """ORDER BY (column, id), NULLs last. A column that holds no NULL is ordered without saying where they go:
    Postgres reads an index backwards as DESC NULLS FIRST, so `DESC NULLS LAST` would sort every matching row
    instead of reading the first few from the index."""
    if descending:
        return [column.desc().nulls_last() if nullable else column.desc(), id_column.desc()]
    return [column.asc().nulls_last() if nullable else column.asc(), id_column.asc()]


@dataclass(frozen=True)
class KeysetOrder(Generic[T]):
    """How one list is ordered: by `column` then `id_column`, and how to read both from a row."""

    name: str
    column: Column
    id_column: Column
    descending: bool
    holds_times: bool
    sort_value: Callable[[T], Any]
    row_id: Callable[[T], int]
    # Whether `column` may hold NULL (they sort last); a column that cannot is ordered so that an index serves it.
    nullable: bool = True


async def keyset_page(
    session: AsyncSession,
    statement: Select[T],
    order: KeysetOrder[T],
    first: int,
    after: str | None,
) -> Page[T]:
    """One page of `statement` after the cursor, in `order`. The statement selects one entity, then optionally
    further columns, which the page keeps beside each item (`Page.columns`)."""
    if after:
        cursor = Cursor.decode(after, order.name, order.holds_times)
        statement = statement.where(
            after_condition(order.column, order.id_column, cursor, order.descending, order.nullable)
        )
    statement = statement.order_by(*ordered(order.column, order.id_column, order.descending, order.nullable))
    statement = statement.limit(first + 1)
    columns: list[tuple[Any, ...]] = []
    if len(statement.column_descriptions) == 1:
        rows = list((await session.scalars(statement)).all())
        read = len(rows)
        items = rows[:first]
    else:
        results = (await session.execute(statement)).all()
        read = len(results)
        items = [row[0] for row in results[:first]]
        columns = [tuple(row[1:]) for row in results[:first]]
    return Page(items, Cursors(order, items), read > first, columns)
