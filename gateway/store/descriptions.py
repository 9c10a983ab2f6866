"""Assets as producers describe them (OpenLineage dataset facets), independent of arrival order.

The newest description (by event time) wins each attribute it gives; an older one only fills
attributes nothing newer has set. Symlinks become aliases, so a path and its table are one asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, cast, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.keys import split_key, validate_key
from gateway.orm import Asset, AssetAlias
from gateway.store.sql import insert, later

_LISTS = ("owners", "tags", "fields")
_SCALARS = ("type", "description")
DESCRIBED_ATTRIBUTES = (*_SCALARS, *_LISTS)


@dataclass(frozen=True)
class AssetDescription:
    """What one event says about one dataset; None means the event says nothing about it."""

    key: str
    namespace: str | None = None
    name: str | None = None
    type: str | None = None
    description: str | None = None
    owners: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    fields: Sequence[dict[str, Any]] | None = None
    aliases: Sequence[str] = field(default_factory=tuple)

    def given(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in (*_SCALARS, *_LISTS)}
        return {name: list(value) if name in _LISTS else value for name, value in values.items() if value is not None}


def newest_wins(stored: Any, new: Any, attribute: str) -> ColumnElement[bool]:
    """Does the incoming value of `attribute` replace the stored one? The newer description wins; at equal
    times the greater value does, so that the result never depends on which arrived first."""
    at = f"{attribute}_described_at"
    return or_(
        stored[at].is_(None),
        new[at] > stored[at],
        and_(new[at] == stored[at], cast(new[attribute], Text) > cast(stored[attribute], Text)),
    )


def merge_described(stored: Any, new: Any, attributes: Sequence[str]) -> dict[str, ColumnElement[Any]]:
    """SET clauses for an upsert: each given attribute and its time, newest description first."""
    changes: dict[str, ColumnElement[Any]] = {}
    for attribute in attributes:
        wins = newest_wins(stored, new, attribute)
        at = f"{attribute}_described_at"
        changes[attribute] = case((wins, new[attribute]), else_=stored[attribute])
        changes[at] = case((wins, new[at]), else_=stored[at])
    return changes


async def _resolve(session: AsyncSession, identifiers: list[str]) -> dict[str, tuple[int, str]]:
    """identifier -> (asset id, asset key), for identifiers that are asset keys or aliases."""
    found: dict[str, tuple[int, str]] = {}
    rows = await session.execute(select(Asset.key, Asset.id).where(Asset.key.in_(identifiers)))
    for key, asset_id in rows:
        found[key] = (asset_id, key)
    aliased = await session.execute(
        select(AssetAlias.alias, Asset.id, Asset.key)
        .join(Asset, Asset.id == AssetAlias.asset_id)
        .where(AssetAlias.alias.in_(identifiers))
    )
    for alias, asset_id, key in aliased:
        found.setdefault(alias, (asset_id, key))
    return found


async def describe_assets(
    session: AsyncSession, descriptions: Sequence[AssetDescription], event_time: datetime, now: datetime
) -> dict[str, str]:
    """Apply descriptions; returns every identifier mentioned -> the key of the asset it names."""
    identifiers = sorted({validate_key(i, "dataset key") for d in descriptions for i in (d.key, *d.aliases)})
    if not identifiers:
        return {}
    known = await _resolve(session, identifiers)
    resolved: dict[str, str] = {}
    for description in sorted(descriptions, key=lambda d: d.key):
        candidates = [description.key, *sorted(description.aliases)]
        target = next((known[c][1] for c in candidates if c in known), description.key)
        if description.key not in known and target != description.key and target in description.aliases:
            # The asset was first seen by another of its names (a file path before its table): it takes the
            # name this description gives it, as it would have had this event come first.
            await _rename_asset(session, known[target][0], description)
            known = {
                identifier: (asset_id, description.key if key == target else key)
                for identifier, (asset_id, key) in known.items()
                if identifier != target
            }
            target = description.key
        await _upsert_description(session, target, description, event_time, now)
        for identifier in candidates:
            resolved[identifier] = target
    aliases = sorted(
        {
            (identifier, target)
            for identifier, target in resolved.items()
            if identifier != target and identifier not in known
        }
    )
    if aliases:
        ids = dict(
            (await session.execute(select(Asset.key, Asset.id).where(Asset.key.in_({t for _, t in aliases})))).all()
        )
        rows = [
            {"alias": alias, "asset_id": ids[target], "source": "symlink", "created_at": now}
            for alias, target in aliases
            if alias not in ids
        ]
        if rows:
            await session.execute(
                insert(session, AssetAlias).values(rows).on_conflict_do_nothing(index_elements=["alias"])
            )
    return resolved


async def _rename_asset(session: AsyncSession, asset_id: int, description: AssetDescription) -> None:
    parts = split_key(description.key)
    await session.execute(
        update(Asset)
        .where(Asset.id == asset_id)
        .values(
            key=description.key,
            namespace=description.namespace or parts.namespace,
            name=description.name or parts.name,
        )
        .execution_options(synchronize_session=False)
    )


async def _upsert_description(
    session: AsyncSession, key: str, description: AssetDescription, event_time: datetime, now: datetime
) -> None:
    parts = split_key(key)
    given = description.given()
    named = key == description.key and description.namespace and description.name
    values = {
        "key": key,
        # The producer's own (namespace, name) beats splitting the key: `duckdb:///a/b.db` + `s.t` is ambiguous.
        "namespace": description.namespace if named else parts.namespace,
        "name": description.name if named else parts.name,
        "owners": [],
        "tags": [],
        "metadata": {},
        "fields": [],
        **given,
        **{f"{attribute}_described_at": event_time for attribute in given},
        "described_at": event_time,
        "created_at": now,
        "updated_at": now,
    }
    statement = insert(session, Asset).values(values)
    stored, new = Asset.__table__.c, statement.excluded
    changes: dict[str, Any] = merge_described(stored, new, list(given))
    changes["described_at"] = later(stored.described_at, new.described_at)
    changes["deleted_at"] = case((new.described_at > stored.deleted_at, None), else_=stored.deleted_at)
    changes["updated_at"] = now
    await session.execute(statement.on_conflict_do_update(index_elements=["key"], set_=changes))
