"""Small SQL constructs that read the same on both dialects."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, String, Table, Text, any_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

T = TypeVar("T")


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


async def allow_generic_plans(session: AsyncSession) -> None:
    """Let the rest of this transaction reuse cached plans (Postgres' default, `plan_cache_mode = auto`).

    Serving connections plan every statement for its own values (gateway/database.py), which also re-plans the
    lookups Postgres runs for each row a foreign key checks: at S, 4 ms per 1,000 checks with cached plans, 12 to 18 ms
    without. Writes of ingestion look rows up by key, whose plans do not depend on the values."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = auto"))


def one_of(session: AsyncSession, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN values`. On Postgres as `= ANY` of one array parameter: one statement for the driver to prepare
    whatever the number of values, bound in a fraction of the time a parameter per value takes."""
    wanted = sorted(set(values))
    condition: ColumnElement[bool]
    if dialect_name(session) != "postgresql":
        condition = column.in_(wanted)
    else:
        element = BigInteger() if wanted and isinstance(wanted[0], int) else String()
        condition = column == any_(bindparam(None, wanted, type_=postgresql.ARRAY(element)))
    return condition


def in_list(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """`column IN :name` for an integer or string column, in a statement built once, the list bound when it runs: on
    Postgres one array parameter (one prepared statement whatever the length, as `one_of`), on SQLite an expanding
    one. An expanding list on Postgres is a new statement for every length: rendered again by SQLAlchemy, then
    parsed and planned by Postgres, a few ms for a batch's thousands of keys."""
    if dialect == "postgresql":
        element = String() if isinstance(column.type, String) else BigInteger()
        return column == any_(bindparam(name, type_=postgresql.ARRAY(element)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True, type_=column.type))  # type: ignore[no-any-return]


def parallel_arrays(name: str, columns: Mapping[str, Any]) -> Any:
    """Postgres: the rows of parallel arrays, each bound under its column's name (of that column's type), as a
    table `name` read by unnest. Rows already known need no join, nor statistics for one. One dimension: a JSON
    list is one value, not a nested array."""
    arrays = [bindparam(column, type_=postgresql.ARRAY(element, dimensions=1)) for column, element in columns.items()]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=name)


def insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on the session's dialect."""
    return insert_for(dialect_name(session), table)


def insert_for(dialect: str, table: Any, rows_of: Sequence[str] = ()) -> Any:
    """An INSERT that supports ON CONFLICT on the named dialect.

    With `rows_of` (column names), one execution inserts the many rows `bind_rows` binds. On Postgres they come
    as one array per column, read by unnest: a short statement, prepared once and planned in no time whatever
    the number of rows, where a VALUES list of a thousand rows binds thousands of parameters and is parsed and
    planned again at each execution (too big to keep prepared). On SQLite, the executemany of a plain INSERT."""
    target: Table = getattr(table, "__table__", table)
    if dialect != "postgresql":
        return sqlite.insert(target)
    if not rows_of:
        return postgresql.insert(target)
    given = parallel_arrays("given", {name: _element_type(target.c[name].type) for name in rows_of})
    return postgresql.insert(target).from_select(list(rows_of), select(*(given.c[name] for name in rows_of)))


def _element_type(column_type: Any) -> Any:
    # A collation belongs to the column, not to the array that carries its values.
    return String() if isinstance(column_type, String) and not isinstance(column_type, Text) else column_type


def bind_rows(dialect: str, rows: Sequence[Mapping[str, Any]], rows_of: Sequence[str]) -> Any:
    """The parameters with which an `insert_for(dialect, table, rows_of)` inserts `rows`."""
    if dialect == "postgresql":
        return {name: [row[name] for row in rows] for name in rows_of}
    return rows if len(rows) > 1 else rows[0]


_STATEMENTS: dict[tuple[str, Hashable], Any] = {}


def cached(session: AsyncSession, shape: Hashable, build: Callable[[str], T]) -> T:
    """The statement of this shape for the session's dialect, built once per process.

    Hot statements are executed with parameters rather than rebuilt with values: building one (ON CONFLICT
    clauses, `excluded` proxies, CASE trees) costs far more than executing it, and a statement object that is
    reused keeps its cache key, so SQLAlchemy compiles it once too. `shape` names everything `build` varies on.
    """
    dialect = session.bind.dialect.name if session.bind is not None else dialect_name(session)
    key = (dialect, shape)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = build(dialect)
    built: T = found
    return built


class json_object_merge(GenericFunction[Any]):
    """SQLite: top-level merge of two JSON objects, keys of the second winning, values kept as they are.

    json_patch() is no substitute: it merges nested objects recursively and deletes keys whose new
    value is null (RFC 7396), where Postgres' `||` replaces each top-level value whole.
    """

    inherit_cache = True


# json_each() gives true/false as 1/0 and objects/arrays as text: json() restores each JSON value.
_JSON_VALUE = (
    "CASE m.type WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') WHEN 'null' THEN json('null') "
    "WHEN 'object' THEN json(m.value) WHEN 'array' THEN json(m.value) ELSE m.value END"
)


@compiles(json_object_merge, "sqlite")
def _json_object_merge_sqlite(element: json_object_merge, compiler: Any, **kw: Any) -> str:
    base, overlay = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"(SELECT coalesce(json_group_object(m.key, {_JSON_VALUE}), json_object()) FROM ("
        f"SELECT b.key AS key, b.value AS value, b.type AS type FROM json_each({base}) AS b "
        f"WHERE b.key NOT IN (SELECT o.key FROM json_each({overlay}) AS o) "
        f"UNION ALL SELECT o.key, o.value, o.type FROM json_each({overlay}) AS o) AS m)"
    )


def json_merge(session: AsyncSession, base: Any, overlay: Any) -> ColumnElement[Any]:
    """Top-level merge of two JSON objects; keys of `overlay` win, each value replaced whole."""
    return json_merge_for(dialect_name(session), base, overlay)


def json_merge_for(dialect: str, base: Any, overlay: Any) -> ColumnElement[Any]:
    """`json_merge` on the named dialect."""
    if dialect == "postgresql":
        return base.op("||")(overlay)  # type: ignore[no-any-return]
    return json_object_merge(base, overlay)


def epoch_seconds(session: AsyncSession, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a stored time, as a number (for interval arithmetic on both dialects)."""
    if dialect_name(session) == "postgresql":
        return func.extract("epoch", column)  # type: ignore[return-value]
    return (func.julianday(column) - 2440587.5) * 86400.0
