"""Asset filters compiled to SQL, in lockstep for SQLite (JSON1) and Postgres (JSONB, GIN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, bindparam, exists, func, literal, select, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from gateway.auth import NamespaceGrants
from gateway.errors import InvalidInput
from gateway.orm import Asset, AssetHealth
from gateway.store.grants import namespace_clause


@dataclass(frozen=True)
class MetadataMatch:
    key: str
    value: Any


@dataclass(frozen=True)
class AssetFilter:
    keys: Sequence[str] | None = None
    key_prefix: str | None = None
    search: str | None = None
    namespace: str | None = None
    namespace_prefix: str | None = None
    types: Sequence[str] | None = None
    owner: str | None = None
    tags: Sequence[str] | None = None
    metadata: Sequence[MetadataMatch] = field(default_factory=tuple)
    last_statuses: Sequence[str] | None = None
    health_statuses: Sequence[str] | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    materialized_after: datetime | None = None
    materialized_before: datetime | None = None
    include_deleted: bool = False
    # The caller's namespace grants (None: unrestricted); never set from client input.
    grants: NamespaceGrants | None = None


def _json_array_has(dialect: str, column: Any, value: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return type_coerce(column, JSONB).contains([value])
    elements = func.json_each(column).table_valued("value").alias("element")
    return exists(select(literal(1)).select_from(elements).where(elements.c.value == value))


def _prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in code point order."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """A case-sensitive prefix match, the same on both dialects (SQLite's LIKE ignores ASCII case).

    Both dialects order these columns by code point (binary UTF-8; collation "C" on Postgres), so
    the strings that start with `prefix` are exactly those in [prefix, upper bound): a range that
    either dialect answers from the column's index.
    """
    upper = _prefix_upper_bound(prefix)
    if upper is None:
        return and_(column >= prefix, func.substr(column, 1, len(prefix)) == prefix)
    return and_(column >= prefix, column < upper)


def _metadata_equals(dialect: str, match: MetadataMatch) -> ColumnElement[bool]:
    """The value under the top-level key equals `match.value`: same JSON type, same value.

    Numbers compare by value (1 equals 1.0), but a number never equals a boolean or a string.
    """
    if '"' in match.key or not match.key:
        raise InvalidInput(f"metadata key {match.key!r} must be non-empty and must not contain a double quote")
    value = match.value
    if dialect == "postgresql":
        document = type_coerce(Asset.metadata_, JSONB)
        # Containment uses the GIN index; it is equality for scalars, but for arrays and objects
        # it would accept a superset, so those also compare the value itself.
        contained = document.contains({match.key: value})
        if isinstance(value, dict | list):
            return and_(contained, document[match.key] == bindparam(None, value, type_=JSONB))
        return contained
    path = f'$."{match.key}"'
    # json_extract maps true/false to 1/0, so the JSON type decides as well.
    kind = func.json_type(Asset.metadata_, path)
    extracted = func.json_extract(Asset.metadata_, path)
    if value is None:
        return kind == "null"
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    if isinstance(value, int | float):
        return and_(kind.in_(("integer", "real")), extracted == value)
    if isinstance(value, str):
        return and_(kind == "text", extracted == value)
    # Arrays and objects compare as minified JSON text (json_extract minifies too).
    encoded = orjson.dumps(value).decode()
    return and_(kind == ("array" if isinstance(value, list) else "object"), extracted == func.json(literal(encoded)))


def asset_conditions(asset_filter: AssetFilter, dialect: str) -> list[ColumnElement[bool]]:
    f = asset_filter
    conditions: list[ColumnElement[bool]] = []
    if not f.include_deleted:
        conditions.append(Asset.deleted_at.is_(None))
    if f.grants is not None and not f.grants.everything:
        conditions.append(namespace_clause(f.grants, Asset.namespace, dialect))
    if f.keys is not None:
        conditions.append(Asset.key.in_(list(f.keys)))
    if f.key_prefix:
        conditions.append(_starts_with(Asset.key, f.key_prefix))
    if f.search:
        text = f.search.strip()
        conditions.append(
            Asset.key.icontains(text, autoescape=True)
            | Asset.name.icontains(text, autoescape=True)
            | Asset.display_name.icontains(text, autoescape=True)
            | Asset.description.icontains(text, autoescape=True)
        )
    if f.namespace is not None:
        conditions.append(Asset.namespace == f.namespace)
    if f.namespace_prefix:
        conditions.append(_starts_with(Asset.namespace, f.namespace_prefix))
    if f.types is not None:
        conditions.append(Asset.type.in_(list(f.types)))
    if f.owner:
        conditions.append(_json_array_has(dialect, Asset.owners, f.owner))
    for tag in f.tags or ():
        conditions.append(_json_array_has(dialect, Asset.tags, tag))
    for match in f.metadata:
        conditions.append(_metadata_equals(dialect, match))
    if f.last_statuses is not None:
        conditions.append(Asset.last_status.in_(list(f.last_statuses)))
    if f.health_statuses is not None:
        judged = select(AssetHealth.asset_id).where(AssetHealth.status.in_(list(f.health_statuses)))
        condition: ColumnElement[bool] = Asset.id.in_(judged)
        if "UNKNOWN" in f.health_statuses:
            condition = condition | ~exists().where(AssetHealth.asset_id == Asset.id)
        conditions.append(condition)
    if f.updated_after:
        conditions.append(Asset.updated_at >= f.updated_after)
    if f.updated_before:
        conditions.append(Asset.updated_at < f.updated_before)
    if f.materialized_after:
        conditions.append(Asset.last_materialized_at >= f.materialized_after)
    if f.materialized_before:
        conditions.append(Asset.last_materialized_at < f.materialized_before)
    return conditions or [true()]
