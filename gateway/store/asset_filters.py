"""Asset filters compiled to SQL, in lockstep for SQLite (JSON1) and Postgres (JSONB, GIN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, exists, func, literal, select, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from gateway.errors import InvalidInput
from gateway.orm import Asset


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
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    materialized_after: datetime | None = None
    materialized_before: datetime | None = None
    include_deleted: bool = False


def _json_array_has(dialect: str, column: Any, value: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return type_coerce(column, JSONB).contains([value])
    elements = func.json_each(column).table_valued("value").alias("element")
    return exists(select(literal(1)).select_from(elements).where(elements.c.value == value))


def _metadata_equals(dialect: str, match: MetadataMatch) -> ColumnElement[bool]:
    if '"' in match.key or not match.key:
        raise InvalidInput(f"metadata key {match.key!r} must be non-empty and must not contain a double quote")
    if dialect == "postgresql":
        return type_coerce(Asset.metadata_, JSONB).contains({match.key: match.value})
    path = f'$."{match.key}"'
    encoded = orjson.dumps(match.value).decode()
    return func.json_extract(Asset.metadata_, path) == func.json_extract(literal(encoded), "$")


def asset_conditions(asset_filter: AssetFilter, dialect: str) -> list[ColumnElement[bool]]:
    f = asset_filter
    conditions: list[ColumnElement[bool]] = []
    if not f.include_deleted:
        conditions.append(Asset.deleted_at.is_(None))
    if f.keys is not None:
        conditions.append(Asset.key.in_(list(f.keys)))
    if f.key_prefix:
        conditions.append(Asset.key.startswith(f.key_prefix, autoescape=True))
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
        conditions.append(Asset.namespace.startswith(f.namespace_prefix, autoescape=True))
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
    if f.updated_after:
        conditions.append(Asset.updated_at >= f.updated_after)
    if f.updated_before:
        conditions.append(Asset.updated_at < f.updated_before)
    if f.materialized_after:
        conditions.append(Asset.last_materialized_at >= f.materialized_after)
    if f.materialized_before:
        conditions.append(Asset.last_materialized_at < f.materialized_before)
    return conditions or [true()]
