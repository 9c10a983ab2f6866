"""Authorization at the GraphQL edge: scope and namespace checks for mutations and admin fields.

Reads are filtered by the loaders and the store (see schema/loaders.py). Writes are checked twice: before,
on the namespaces the input names (a clear message), and after, inside the transaction, on the rows the
write actually touched (a key may be an alias of an asset elsewhere), so a refused write rolls back whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Forbidden, Principal, Scope
from gateway.errors import NotFound
from gateway.keys import split_key, validate_key
from gateway.orm import Asset as AssetRow
from gateway.store import assets, runs
from schema.context import Info


def principal(info: Info) -> Principal:
    return info.context.principal


def require_scope(info: Info, scope: Scope, what: str) -> None:
    principal(info).require(scope, what)


def require_everything(info: Info, scope: Scope, what: str) -> None:
    principal(info).require_everything(scope, what)


def key_namespace(key: str, namespace: str | None = None) -> str:
    return namespace if namespace is not None else split_key(key.strip()).namespace


def alias_namespaces(aliases: Iterable[str]) -> list[str]:
    """The namespaces aliases claim a name in. An alias without one of its own (a URN, a bare name) claims
    nothing beyond the asset it names, so writing that asset is enough."""
    return [split_key(alias.strip()).namespace for alias in aliases if "/" in alias]


def require_write_namespaces(info: Info, namespaces: Iterable[str], what: str) -> None:
    caller = principal(info)
    caller.require(Scope.WRITE, what)
    for namespace in sorted(set(namespaces)):
        caller.require_write(namespace, what)


async def visible_asset(info: Info, key: str) -> AssetRow:
    """The asset the caller may see, or NOT_FOUND (an invisible asset is not found, not forbidden)."""
    row = await info.context.loaders.asset_by_key.load(validate_key(key.strip()))
    if row is None:
        raise NotFound(f"no asset with key {key!r}")
    return row


async def check_existing_asset(info: Info, session: AsyncSession, key: str, what: str) -> None:
    """Refuses a write to an asset that exists (by key or alias) in a namespace the caller may not write."""
    existing = (await assets.read_assets_by_keys(session, [key.strip()], include_deleted=True)).get(key.strip())
    if existing is not None and not principal(info).can_write(existing.namespace):
        raise Forbidden(f"{what}: the asset {key!r} is in a namespace this token may not write")


def check_written_asset(info: Info, row: AssetRow, what: str) -> None:
    principal(info).require_write(row.namespace, what)


async def check_written_run(info: Info, session: AsyncSession, run_pk: int, what: str) -> None:
    job_namespace, asset_namespaces = await runs.read_run_namespaces(session, run_pk)
    require_write_namespaces(info, [job_namespace, *asset_namespaces], what)
