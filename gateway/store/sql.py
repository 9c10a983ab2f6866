"""Small SQL constructs that read the same on both dialects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction


class later(GenericFunction[Any]):
    """The greater of two values, ignoring NULLs (greatest on Postgres, max on SQLite)."""

    inherit_cache = True


class earlier(GenericFunction[Any]):
    """The lesser of two values, ignoring NULLs (least on Postgres, min on SQLite)."""

    inherit_cache = True


@compiles(later, "postgresql")
def _later_pg(element: later, compiler: Any, **kw: Any) -> str:
    return f"greatest({compiler.process(element.clauses, **kw)})"


@compiles(earlier, "postgresql")
def _earlier_pg(element: earlier, compiler: Any, **kw: Any) -> str:
    return f"least({compiler.process(element.clauses, **kw)})"


def _null_safe(name: str, element: Any, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(clause, **kw) for clause in element.clauses)
    # SQLite's scalar max/min return NULL if any argument is NULL; Postgres ignores NULLs.
    return f"coalesce({name}(coalesce({a}, {b}), coalesce({b}, {a})), {a}, {b})"


@compiles(later, "sqlite")
def _later_sqlite(element: later, compiler: Any, **kw: Any) -> str:
    return _null_safe("max", element, compiler, **kw)


@compiles(earlier, "sqlite")
def _earlier_sqlite(element: earlier, compiler: Any, **kw: Any) -> str:
    return _null_safe("min", element, compiler, **kw)


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on the session's dialect."""
    target: Table = getattr(table, "__table__", table)
    if dialect_name(session) == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


def json_merge(session: AsyncSession, base: Any, overlay: Any) -> ColumnElement[Any]:
    """Top-level merge of two JSON objects; keys of `overlay` win."""
    if dialect_name(session) == "postgresql":
        return base.op("||")(overlay)  # type: ignore[no-any-return]
    return func.json_patch(base, overlay)


def epoch_seconds(session: AsyncSession, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a stored time, as a number (for interval arithmetic on both dialects)."""
    if dialect_name(session) == "postgresql":
        return func.extract("epoch", column)  # type: ignore[return-value]
    return (func.julianday(column) - 2440587.5) * 86400.0
