"""API tokens: created, listed, revoked, and looked up by the hash of the bearer token."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import orm
from gateway.errors import Conflict, NotFound


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    token_hash: str,
    display_prefix: str,
    scope: str,
    namespaces: Sequence[str],
    now: datetime,
    expires_at: datetime | None = None,
) -> orm.ApiToken:
    existing = await session.scalar(select(orm.ApiToken.id).where(orm.ApiToken.name == name))
    if existing is not None:
        raise Conflict(f"a token named {name!r} exists already; revoke it or choose another name")
    token = orm.ApiToken(
        name=name,
        token_hash=token_hash,
        display_prefix=display_prefix,
        scope=scope,
        namespaces=list(namespaces),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    return token


async def list_tokens(session: AsyncSession, include_revoked: bool = False) -> list[orm.ApiToken]:
    query = select(orm.ApiToken).order_by(orm.ApiToken.name)
    if not include_revoked:
        query = query.where(orm.ApiToken.revoked_at.is_(None))
    return list(await session.scalars(query))


async def revoke_token(session: AsyncSession, name: str, now: datetime) -> orm.ApiToken:
    token = await session.scalar(
        select(orm.ApiToken).where(orm.ApiToken.name == name, orm.ApiToken.revoked_at.is_(None))
    )
    if token is None:
        raise NotFound(f"no active token named {name!r}")
    token.revoked_at = now
    await session.flush()
    return token


async def active_token_by_hash(session: AsyncSession, token_hash: str, now: datetime) -> orm.ApiToken | None:
    return await session.scalar(
        select(orm.ApiToken).where(
            orm.ApiToken.token_hash == token_hash,
            orm.ApiToken.revoked_at.is_(None),
            or_(orm.ApiToken.expires_at.is_(None), orm.ApiToken.expires_at > now),
        )
    )


async def count_active_tokens(session: AsyncSession, now: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(orm.ApiToken)
        .where(
            orm.ApiToken.revoked_at.is_(None),
            or_(orm.ApiToken.expires_at.is_(None), orm.ApiToken.expires_at > now),
        )
    )
    return int(count or 0)


async def mark_used(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(update(orm.ApiToken).where(orm.ApiToken.id == token_id).values(last_used_at=now))
