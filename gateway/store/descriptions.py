"""Assets as producers describe them (OpenLineage dataset facets), independent of arrival order.

The newest description (by event time) wins each attribute it gives; an older one only fills
attributes nothing newer has set. Symlinks become aliases, so a path and its table are one asset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, bindparam, case, cast, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.keys import split_key, validate_key
from gateway.orm import Asset, AssetAlias
from gateway.store.sql import bind_rows, cached, dialect_name, in_list, insert_for, later

_LISTS = ("owners", "tags", "fields")
_SCALARS = ("type", "description")
DESCRIBED_ATTRIBUTES = (*_SCALARS, *_LISTS)
# Rows of one INSERT: 23 parameters each stays below both dialects' limits on bind parameters.
ROWS_PER_STATEMENT = 1_000


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


def merge_described(
    stored: Any, new: Any, attributes: Sequence[str], when_given: bool = False
) -> dict[str, ColumnElement[Any]]:
    """SET clauses for an upsert: each given attribute and its time, newest description first.

    `when_given` makes one statement serve descriptions that give different attributes: one that does not give
    an attribute comes with no time for it, and leaves it as it is."""
    changes: dict[str, ColumnElement[Any]] = {}
    for attribute in attributes:
        wins = newest_wins(stored, new, attribute)
        if when_given:
            wins = and_(new[f"{attribute}_described_at"].is_not(None), wins)
        at = f"{attribute}_described_at"
        changes[attribute] = case((wins, new[attribute]), else_=stored[attribute])
        changes[at] = case((wins, new[at]), else_=stored[at])
    return changes


_ASSETS: Any = Asset.__table__
_ALIASES: Any = AssetAlias.__table__


@dataclass
class Described:
    """What descriptions named: each identifier the key of its asset, and each of those keys the asset's id."""

    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Found:
    """An identifier that names a stored asset, by its key or as an alias."""

    identifier: str
    asset_id: int
    key: str
    by_alias: bool
    deleted_at: datetime | None


def _build_resolve(dialect: str) -> Any:
    asset = (_ASSETS.c.id, _ASSETS.c.key)
    by_key = select(_ASSETS.c.key, *asset, literal(False), _ASSETS.c.deleted_at).where(
        in_list(dialect, _ASSETS.c.key, "identifiers")
    )
    by_alias = (
        select(_ALIASES.c.alias, *asset, literal(True), _ASSETS.c.deleted_at)
        .select_from(_ALIASES.join(_ASSETS, _ASSETS.c.id == _ALIASES.c.asset_id))
        .where(in_list(dialect, _ALIASES.c.alias, "identifiers"))
    )
    return union_all(by_key, by_alias)


async def lookup_identifiers(session: AsyncSession, identifiers: Sequence[str]) -> list[Found]:
    """Each identifier that is an asset's key or an alias, with its asset, in one statement."""
    rows = await session.execute(cached(session, "resolve", _build_resolve), {"identifiers": list(identifiers)})
    return [Found(name, asset_id, key, bool(alias), deleted) for name, asset_id, key, alias, deleted in rows]


# Asset key -> (id, deleted_at) of the assets a lookup found.
Stored = dict[str, tuple[int, datetime | None]]


def _stored(found: Sequence[Found]) -> Stored:
    return {row.key: (row.asset_id, row.deleted_at) for row in found}


async def _resolve(session: AsyncSession, identifiers: list[str]) -> tuple[dict[str, tuple[int, str]], Stored]:
    """identifier -> (asset id, asset key), for identifiers that are asset keys or aliases; and those assets."""
    found: dict[str, tuple[int, str]] = {}
    rows = await lookup_identifiers(session, identifiers)
    # An identifier that is an asset's key names that asset, even should it also be an alias of another.
    for row in sorted(rows, key=lambda row: row.by_alias):
        found.setdefault(row.identifier, (row.asset_id, row.key))
    return found, _stored(rows)


async def apply_descriptions(
    session: AsyncSession, descriptions: Sequence[AssetDescription], event_time: datetime, now: datetime
) -> Described:
    """Apply descriptions; every identifier mentioned -> the key of the asset it names, and those assets' ids."""
    identifiers = _identifiers(descriptions)
    if not identifiers:
        return Described()
    known, stored = await _resolve(session, identifiers)
    planned = _targets(descriptions, known)
    if planned is None:
        return await _describe_one_by_one(session, descriptions, known, stored, event_time, now)
    applied, described = planned
    rows = [_values(key, d, event_time, now) for key, d in applied]
    described.ids = await _upsert_described(session, rows, stored)
    await _add_aliases(session, _new_aliases(described, known), described.ids, now)
    return described


def _identifiers(descriptions: Sequence[AssetDescription]) -> list[str]:
    return sorted({validate_key(i, "dataset key") for d in descriptions for i in (d.key, *d.aliases)})


def _target(description: AssetDescription, known: Mapping[str, tuple[int, str]]) -> tuple[str, bool]:
    """The key of the asset a description names, and whether that asset must first take the description's key."""
    candidates = [description.key, *sorted(description.aliases)]
    target = next((known[c][1] for c in candidates if c in known), description.key)
    # The asset was first seen by another of its names (a file path before its table): it takes the name this
    # description gives it, as it would have had this event come first.
    renamed = description.key not in known and target != description.key and target in description.aliases
    return target, renamed


def _targets(
    descriptions: Sequence[AssetDescription], known: Mapping[str, tuple[int, str]]
) -> tuple[list[tuple[str, AssetDescription]], Described] | None:
    """Each description with the key of its asset, in the order they apply, and every identifier's asset key;
    None when an asset must be renamed (each rename changes what the next descriptions name)."""
    described = Described()
    applied: list[tuple[str, AssetDescription]] = []
    for description in sorted(descriptions, key=lambda d: d.key):
        target, renamed = _target(description, known)
        if renamed:
            return None
        applied.append((target, description))
        for identifier in (description.key, *description.aliases):
            described.keys[identifier] = target
    return applied, described


async def _describe_one_by_one(
    session: AsyncSession,
    descriptions: Sequence[AssetDescription],
    known: dict[str, tuple[int, str]],
    stored: Stored,
    event_time: datetime,
    now: datetime,
) -> Described:
    described = Described()
    for description in sorted(descriptions, key=lambda d: d.key):
        target, renamed = _target(description, known)
        if renamed:
            await _rename_asset(session, known[target][0], description)
            known = {
                identifier: (asset_id, description.key if key == target else key)
                for identifier, (asset_id, key) in known.items()
                if identifier != target
            }
            if target in stored:
                held = stored[target]
                stored = {key: value for key, value in stored.items() if key != target} | {description.key: held}
            target = description.key
        rows = [_values(target, description, event_time, now)]
        described.ids |= await _upsert_described(session, rows, stored)
        for identifier in (description.key, *description.aliases):
            described.keys[identifier] = target
    await _add_aliases(session, _new_aliases(described, known), described.ids, now)
    return described


def _new_aliases(described: Described, known: Mapping[str, tuple[int, str]]) -> list[tuple[str, str]]:
    """(alias, asset key) for the identifiers the descriptions made aliases of the assets they name."""
    aliases = sorted(
        {
            (identifier, target)
            for identifier, target in described.keys.items()
            if identifier != target and identifier not in known
        }
    )
    # A name that is the key of an asset these aliases name stays that asset's own.
    targets = {target for _, target in aliases}
    return [(alias, target) for alias, target in aliases if alias not in targets]


async def _add_aliases(
    session: AsyncSession, aliases: Sequence[tuple[str, str]], ids: Mapping[str, int], now: datetime
) -> int:
    """Insert the aliases none has taken; how many were inserted."""
    rows = [
        {"alias": alias, "asset_id": ids[target], "source": "symlink", "created_at": now} for alias, target in aliases
    ]
    if not rows:
        return 0
    inserted = await session.execute(cached(session, "symlink aliases", _build_add_aliases), rows)
    return len(inserted.all())


def _build_add_aliases(dialect: str) -> Any:
    statement = insert_for(dialect, _ALIASES).on_conflict_do_nothing(index_elements=["alias"])
    return statement.returning(_ALIASES.c.alias)


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


# The columns of `_values`.
_DESCRIPTION_COLUMNS = (
    "key",
    "namespace",
    "name",
    *DESCRIBED_ATTRIBUTES,
    "metadata",
    *(f"{attribute}_described_at" for attribute in DESCRIBED_ATTRIBUTES),
    "described_at",
    "created_at",
    "updated_at",
)


def _build_description_upsert(dialect: str) -> Any:
    """One shape for every description: an attribute it does not give comes with no time, and keeps its value.

    An asset the description would not change (a description no newer than the stored one) is locked but not
    rewritten: no new row version in every index of the table, no entry in the change feed, `updated_at` as it
    was. Such a row is not returned. (A description that gives no attribute only creates or revives: see
    `_upsert_described`.)"""
    statement = insert_for(dialect, _ASSETS, _DESCRIPTION_COLUMNS)
    stored, new = _ASSETS.c, statement.excluded
    changes: dict[str, Any] = merge_described(stored, new, DESCRIBED_ATTRIBUTES, when_given=True)
    changes["described_at"] = later(stored.described_at, new.described_at)
    revives = new.described_at > stored.deleted_at
    changes["deleted_at"] = case((revives, None), else_=stored.deleted_at)
    changes["updated_at"] = new.updated_at
    changes_anything = or_(
        *(
            and_(new[f"{attribute}_described_at"].is_not(None), newest_wins(stored, new, attribute))
            for attribute in DESCRIBED_ATTRIBUTES
        ),
        revives,
    )
    upsert = statement.on_conflict_do_update(index_elements=["key"], set_=changes, where=changes_anything)
    return upsert.returning(stored.key, stored.id)


def _values(
    key: str, description: AssetDescription | None, event_time: datetime | None, now: datetime
) -> dict[str, Any]:
    """The row a description upserts; without a description, the bare asset `ensure_assets` creates."""
    parts = split_key(key)
    given = description.given() if description is not None else {}
    named = description is not None and key == description.key and description.namespace and description.name
    return {
        "key": key,
        # The producer's own (namespace, name) beats splitting the key: `duckdb:///a/b.db` + `s.t` is ambiguous.
        "namespace": description.namespace if named and description is not None else parts.namespace,
        "name": description.name if named and description is not None else parts.name,
        "type": None,
        "description": None,
        "owners": [],
        "tags": [],
        "metadata": {},
        "fields": [],
        **given,
        **{
            f"{attribute}_described_at": event_time if attribute in given else None
            for attribute in DESCRIBED_ATTRIBUTES
        },
        "described_at": event_time if description is not None else None,
        "created_at": now,
        "updated_at": now,
    }


def _gives(values: Mapping[str, Any]) -> bool:
    return any(values[f"{attribute}_described_at"] is not None for attribute in DESCRIBED_ATTRIBUTES)


async def _upsert_described(session: AsyncSession, rows: Sequence[dict[str, Any]], stored: Stored) -> dict[str, int]:
    """Upsert the rows in their order; asset key -> id (of an asset left as it was, from `stored`, the assets
    read before, or read now).

    A row that gives no attribute (a dataset an event merely names) creates the asset, with no time of
    description, or brings back a deleted one named after its deletion; it leaves any other asset as it is.
    One statement takes at most one row of an asset (Postgres updates a row once per statement), so the rows of
    an asset named twice go out in rounds, in their order. The same row again changes nothing and is left out.
    """
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[str, list[dict[str, Any]]] = {}
    revived: dict[int, dict[str, Any]] = {}
    for values in rows:
        if not _gives(values):
            held = stored.get(values["key"])
            if held is None:
                values = {**values, "described_at": None}
            else:
                asset_id, deleted_at = held
                named_at = values["described_at"]
                if deleted_at is not None and named_at is not None and named_at > deleted_at:
                    revived[asset_id] = {"asset_id": asset_id, "named_at": named_at, "now": values["updated_at"]}
                continue
        earlier_ones = seen.setdefault(values["key"], [])
        if values in earlier_ones:
            continue
        if len(rounds) <= len(earlier_ones):
            rounds.append([])
        rounds[len(earlier_ones)].append(values)
        earlier_ones.append(values)
    upsert = cached(session, "description upsert", _build_description_upsert)
    ids: dict[str, int] = {}
    for batch in rounds:
        # Rows in key order: concurrent transactions lock the assets they share in the same order.
        batch.sort(key=lambda values: str(values["key"]))
        for start in range(0, len(batch), ROWS_PER_STATEMENT):
            chunk = batch[start : start + ROWS_PER_STATEMENT]
            parameters = bind_rows(dialect_name(session), chunk, _DESCRIPTION_COLUMNS)
            for key, asset_id in await session.execute(upsert, parameters):
                ids[key] = asset_id
    if revived:
        revive = cached(session, "revive named assets", _build_revive)
        await session.execute(revive, [revived[asset_id] for asset_id in sorted(revived)])
    named = {values["key"] for values in rows}
    ids |= {key: stored[key][0] for key in named - ids.keys() if key in stored}
    # Created by another transaction since the assets were read: its row was there to lock, but not returned.
    if missing := sorted(named - ids.keys()):
        found = _stored(await lookup_identifiers(session, missing))
        ids |= {key: found[key][0] for key in missing}
    return ids


def _build_revive(dialect: str) -> Any:
    return (
        update(_ASSETS)
        .where(_ASSETS.c.id == bindparam("asset_id"), _ASSETS.c.deleted_at < bindparam("named_at"))
        .values(deleted_at=None, updated_at=bindparam("now"))
    )


@dataclass
class _Touch:
    """One description of an asset in a batch (none: the asset as `ensure_assets` creates it)."""

    position: int
    description: AssetDescription | None
    event_time: datetime | None


class DescriptionBatch:
    """The descriptions of many events, applied as if each event's were applied in turn.

    Each event's descriptions resolve against the assets and aliases that the batch's earlier events create, as
    they would have one event after the other. Then every asset is upserted once: its first description in the
    batch (the one that would have created it), then only those that can still win an attribute, the newest
    for each (its own round only where descriptions of one time must be compared in the database). Which
    description wins does not depend on their order, so the result is the one of applying them in turn.
    """

    def __init__(self, found: Sequence[Found]) -> None:
        self._keys = {row.identifier for row in found if not row.by_alias}
        self._stored = _stored(found)
        self._aliases = {row.identifier: row.key for row in found if row.by_alias}
        self._touches: dict[str, list[_Touch]] = {}
        self._new_aliases: list[tuple[str, str]] = []
        self._described: list[Described] = []

    @staticmethod
    async def load(session: AsyncSession, identifiers: Sequence[str]) -> DescriptionBatch:
        """A batch whose events name these identifiers (asset keys, aliases, or neither yet)."""
        wanted = sorted(set(identifiers))
        found: list[Found] = []
        # Each identifier is bound twice (keys and aliases).
        for start in range(0, len(wanted), 10_000):
            found += await lookup_identifiers(session, wanted[start : start + 10_000])
        return DescriptionBatch(found)

    def _known(self, identifiers: Sequence[str]) -> dict[str, tuple[int, str]]:
        # As `_resolve` finds them (a key before an alias); the ids are not needed to plan.
        known: dict[str, tuple[int, str]] = {}
        for identifier in identifiers:
            if identifier in self._keys:
                known[identifier] = (0, identifier)
            elif identifier in self._aliases:
                known[identifier] = (0, self._aliases[identifier])
        return known

    def describe(self, descriptions: Sequence[AssetDescription], event_time: datetime) -> Described | None:
        """Plan one event's descriptions; what they name (ids once applied), or None when an asset must be
        renamed (then the batch is better applied one event at a time)."""
        identifiers = _identifiers(descriptions)
        described = Described()
        if identifiers:
            known = self._known(identifiers)
            planned = _targets(descriptions, known)
            if planned is None:
                return None
            applied, described = planned
            aliases = _new_aliases(described, known)
            for target, description in applied:
                self._touch(target, description, event_time)
            self._new_aliases += aliases
            self._aliases.update(aliases)
        self._described.append(described)
        return described

    def ensure(self, keys: Iterable[str]) -> None:
        """Plan `ensure_assets(keys)`: the assets it creates are there for the batch's later events."""
        for key in sorted(set(keys)):
            if key not in self._aliases and key not in self._keys:
                self._touch(key, None, None)

    def _touch(self, key: str, description: AssetDescription | None, event_time: datetime | None) -> None:
        touches = self._touches.setdefault(key, [])
        touches.append(_Touch(len(touches), description, event_time))
        self._keys.add(key)

    def _rows(self, now: datetime) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for key, (first, *rest) in self._touches.items():
            rows.append(_values(key, first.description, first.event_time, now))
            described = [
                (touch.position, touch.event_time, touch.description.given())
                for touch in rest
                if touch.description is not None and touch.event_time is not None
            ]
            kept: set[int] = set()
            if described:
                # The newest description may revive the asset.
                kept.add(max(described, key=lambda touch: (touch[1], -touch[0]))[0])
            for attribute in DESCRIBED_ATTRIBUTES:
                giving = [(position, moment) for position, moment, given in described if attribute in given]
                if giving:
                    newest = max(moment for _, moment in giving)
                    kept.update(position for position, moment in giving if moment == newest)
            rows += [_values(key, touch.description, touch.event_time, now) for touch in rest if touch.position in kept]
        return rows

    async def apply(self, session: AsyncSession, now: datetime) -> bool:
        """Write the planned descriptions and aliases, and fill in the ids of what each event named. False when
        the database held an alias the plan did not know (another transaction added it meanwhile)."""
        ids = await _upsert_described(session, self._rows(now), self._stored)
        added = await _add_aliases(session, self._new_aliases, ids, now)
        for described in self._described:
            described.ids = {target: ids[target] for target in described.keys.values()}
        return added == len(self._new_aliases)
