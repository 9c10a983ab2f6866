"""Assets and their aliases: declare, resolve, read, soft-delete."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.keys import split_key, validate_key
from gateway.orm import Asset, AssetAlias, LineageEdge
from gateway.store.descriptions import DESCRIBED_ATTRIBUTES, lookup_identifiers, merge_described
from gateway.store.sql import cached, insert, insert_for, later, one_of

MAX_LABELS = 100
MAX_LABEL_LENGTH = 200
# Bounds on the rows one declaration writes: a statement holds at most 32,767 parameters on Postgres.
MAX_UPSTREAMS = 2_000
MAX_ALIASES = 1_000


@dataclass(frozen=True)
class AssetSpec:
    """A declaration of an asset. `None` leaves a stored attribute as it is."""

    key: str
    namespace: str | None = None
    name: str | None = None
    type: str | None = None
    display_name: str | None = None
    description: str | None = None
    owners: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    fields: Sequence[dict[str, Any]] | None = None
    upstream_keys: Sequence[str] | None = None
    aliases: Sequence[str] = field(default_factory=tuple)


def _labels(values: Sequence[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if len(values) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} {what} are allowed, got {len(values)}")
    cleaned: list[str] = []
    for value in values:
        value = value.strip()
        if not value or len(value) > MAX_LABEL_LENGTH:
            raise InvalidInput(f"each of {what} must be 1..{MAX_LABEL_LENGTH} characters, got {value[:40]!r}")
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def _width(column: Any) -> int:
    length: int = column.type.length
    return length


def _within_column(value: str | None, column: str) -> str | None:
    """`value`, refused when longer than its column holds (Postgres refuses it; SQLite would keep it)."""
    limit = _width(Asset.__table__.c[column])
    if value is not None and len(value) > limit:
        raise InvalidInput(f"an asset's {column} holds at most {limit} characters, got {len(value)}")
    return value


def _declared_values(spec: AssetSpec) -> dict[str, Any]:
    _within_column(spec.type, "type")
    _within_column(spec.display_name, "display_name")
    values: dict[str, Any] = {
        "type": spec.type,
        "display_name": spec.display_name,
        "description": spec.description,
        "owners": _labels(spec.owners, "owners"),
        "tags": _labels(spec.tags, "tags"),
        "metadata": spec.metadata,
        "fields": list(spec.fields) if spec.fields is not None else None,
    }
    return {name: value for name, value in values.items() if value is not None}


async def resolve_aliases(session: AsyncSession, keys: Iterable[str]) -> dict[str, int]:
    """alias -> asset id, for those of `keys` that are aliases."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(select(AssetAlias.alias, AssetAlias.asset_id).where(AssetAlias.alias.in_(wanted)))
    return dict(rows.all())


async def ensure_assets(session: AsyncSession, keys: Iterable[str], now: datetime) -> dict[str, int]:
    """key -> asset id for every key, creating the assets not seen before (aliases resolve first)."""
    wanted = sorted({validate_key(key, "asset key") for key in keys})
    if not wanted:
        return {}
    # Aliases and keys in one lookup; an alias wins over a key, as when aliases were resolved first.
    found = sorted(await lookup_identifiers(session, wanted), key=lambda row: row.by_alias)
    resolved = {row.identifier: row.asset_id for row in found}
    missing = [key for key in wanted if key not in resolved]
    if missing:
        rows = [
            {
                "key": key,
                "namespace": split_key(key).namespace,
                "name": split_key(key).name,
                "owners": [],
                "tags": [],
                "metadata": {},
                "fields": [],
                "created_at": now,
                "updated_at": now,
            }
            for key in missing
        ]
        statement = cached(session, "ensure assets", _build_ensure)
        for key, asset_id in await session.execute(statement, rows if len(rows) > 1 else rows[0]):
            resolved[key] = asset_id
        # Created meanwhile by another transaction (it took them first): they are found now.
        if late := [key for key in missing if key not in resolved]:
            again = await session.execute(select(Asset.key, Asset.id).where(Asset.key.in_(late)))
            resolved.update(dict(again.all()))
    return resolved


def _build_ensure(dialect: str) -> Any:
    table: Any = Asset.__table__
    statement = insert_for(dialect, table).on_conflict_do_nothing(index_elements=["key"])
    return statement.returning(table.c.key, table.c.id)


async def upsert_asset(session: AsyncSession, spec: AssetSpec, now: datetime) -> Asset:
    """Create or update one asset from a declaration; a soft-deleted asset comes back."""
    key = validate_key(spec.key, "asset key")
    parts = split_key(key)
    declared = _declared_values(spec)
    described = [attribute for attribute in DESCRIBED_ATTRIBUTES if attribute in declared]
    alias_target = (await resolve_aliases(session, [key])).get(key)
    if alias_target is not None:
        raise Conflict(f"{key!r} is an alias of another asset; declare that asset by its own key")
    # Like every other attribute, an omitted namespace or name keeps the stored one (which may have
    # been declared explicitly); only a new asset falls back to the parts of its key.
    given = {
        column: _within_column(value, column)
        for column, value in (("namespace", spec.namespace), ("name", spec.name))
        if value
    }
    insert_values = {
        "key": key,
        "namespace": parts.namespace,
        "name": parts.name,
        "owners": [],
        "tags": [],
        "metadata": {},
        "fields": [],
        "created_at": now,
        **given,
        **declared,
        **{f"{attribute}_described_at": now for attribute in described},
        "described_at": now,
        "updated_at": now,
    }
    statement = insert(session, Asset).values(insert_values)
    stored, new = Asset.__table__.c, statement.excluded
    # A declaration is a description made now: type, description, owners, tags and schema follow the same
    # newest-wins rule as producers' descriptions; the rest is the API's alone.
    update_values = {
        **given,
        **{column: value for column, value in declared.items() if column not in described},
        **merge_described(stored, new, described),
        "described_at": later(stored.described_at, new.described_at),
        "updated_at": now,
        "deleted_at": None,
    }
    statement = statement.on_conflict_do_update(index_elements=["key"], set_=update_values).returning(Asset.id)
    asset_id = (await session.execute(statement)).scalar_one()
    if spec.aliases:
        await add_aliases(session, asset_id, spec.aliases, "api", now)
    if spec.upstream_keys is not None:
        await _declare_upstreams(session, asset_id, key, spec.upstream_keys, now)
    asset = await session.get(Asset, asset_id, populate_existing=True)
    assert asset is not None
    return asset


async def _declare_upstreams(
    session: AsyncSession, asset_id: int, key: str, upstream_keys: Sequence[str], now: datetime
) -> None:
    """Declared upstreams replace the asset's previous declaration; dropped edges retire."""
    if key in upstream_keys:
        raise InvalidInput(f"asset {key!r} cannot be its own upstream")
    if len(upstream_keys) > MAX_UPSTREAMS:
        raise InvalidInput(f"an asset may declare at most {MAX_UPSTREAMS} upstream assets, got {len(upstream_keys)}")
    upstream_ids = await ensure_assets(session, upstream_keys, now)
    wanted = sorted(set(upstream_ids.values()) - {asset_id})
    if wanted:
        rows = [
            {
                "upstream_id": upstream_id,
                "downstream_id": asset_id,
                "job_id": None,
                "origin": "declared",
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for upstream_id in wanted
        ]
        statement = insert(session, LineageEdge).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["upstream_id", "downstream_id"],
            index_where=LineageEdge.job_id.is_(None),
            set_={"last_seen_at": now, "retired_at": None},
        )
        await session.execute(statement)
    await session.execute(
        update(LineageEdge)
        .where(
            LineageEdge.downstream_id == asset_id,
            LineageEdge.job_id.is_(None),
            LineageEdge.retired_at.is_(None),
            LineageEdge.upstream_id.not_in(wanted),
        )
        .values(retired_at=now)
    )


async def add_aliases(
    session: AsyncSession, asset_id: int, aliases: Iterable[str], source: str, now: datetime
) -> list[str]:
    """Map other identifiers onto an asset. An alias already owned by another asset is a conflict."""
    wanted = sorted({validate_key(alias, "alias") for alias in aliases})
    if len(wanted) > MAX_ALIASES:
        raise InvalidInput(f"at most {MAX_ALIASES} aliases can be added at once, got {len(wanted)}")
    if not wanted:
        return []
    owners = await session.execute(select(Asset.key, Asset.id).where(Asset.key.in_(wanted)))
    for alias_key, owner_id in owners:
        if owner_id != asset_id:
            raise Conflict(f"alias {alias_key!r} is the key of another asset")
    rows = [{"alias": alias, "asset_id": asset_id, "source": source, "created_at": now} for alias in wanted]
    await session.execute(insert(session, AssetAlias).values(rows).on_conflict_do_nothing(index_elements=["alias"]))
    existing = await session.execute(select(AssetAlias.alias, AssetAlias.asset_id).where(AssetAlias.alias.in_(wanted)))
    taken = sorted(alias for alias, owner in existing if owner != asset_id)
    if taken:
        raise Conflict(f"alias {taken[0]!r} already names another asset")
    return wanted


async def read_asset_by_key(session: AsyncSession, key: str, include_deleted: bool = False) -> Asset | None:
    """The asset with this key, or the asset this key is an alias of."""
    assets = await read_assets_by_keys(session, [key], include_deleted)
    return assets.get(key)


async def read_assets_by_keys(
    session: AsyncSession, keys: Sequence[str], include_deleted: bool = False
) -> dict[str, Asset]:
    """key -> asset for the keys that name an asset, directly or as an alias."""
    if not keys:
        return {}
    by_alias = select(AssetAlias.alias.label("lookup"), Asset).join(Asset, Asset.id == AssetAlias.asset_id)
    by_key = select(Asset.key.label("lookup"), Asset)
    if not include_deleted:
        by_alias = by_alias.where(Asset.deleted_at.is_(None))
        by_key = by_key.where(Asset.deleted_at.is_(None))
    unique = sorted(set(keys))
    found: dict[str, Asset] = {}
    # one_of: on Postgres one array parameter, one prepared statement; `IN` would render its list each time.
    for lookup, asset in await session.execute(by_key.where(one_of(session, Asset.key, unique))):
        found[lookup] = asset
    rest = [key for key in unique if key not in found]
    if rest:
        for lookup, asset in await session.execute(by_alias.where(one_of(session, AssetAlias.alias, rest))):
            found[lookup] = asset
    return found


async def read_assets_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Asset]:
    if not ids:
        return {}
    rows = await session.scalars(select(Asset).where(one_of(session, Asset.id, ids)))
    return {asset.id: asset for asset in rows}


async def read_aliases_by_asset_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {asset_id: [] for asset_id in ids}
    if not ids:
        return result
    rows = await session.execute(
        select(AssetAlias.asset_id, AssetAlias.alias)
        .where(one_of(session, AssetAlias.asset_id, ids))
        .order_by(AssetAlias.asset_id, AssetAlias.alias)
    )
    for asset_id, alias in rows:
        result[asset_id].append(alias)
    return result


async def soft_delete_asset(session: AsyncSession, key: str, now: datetime) -> Asset:
    asset = await read_asset_by_key(session, validate_key(key, "asset key"))
    if asset is None:
        raise NotFound(f"no asset with key {key!r}")
    asset.deleted_at = now
    asset.updated_at = now
    await session.flush()
    return asset


async def read_asset_namespaces(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """asset id -> namespace: what authorization needs to know about assets referenced elsewhere."""
    if not ids:
        return {}
    rows = await session.execute(select(Asset.id, Asset.namespace).where(one_of(session, Asset.id, ids)))
    return {int(row[0]): str(row[1]) for row in rows}
