"""Who is calling: bearer tokens looked up by hash (briefly cached), or anonymous while auth is off.

Auth is on as soon as the database holds an active token, and stays on for the life of the process (revoking
every token does not open the gateway). Without tokens it is off only on a loopback address, unless the operator
passes `--insecure`.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from gateway.auth import (
    ANONYMOUS,
    NamespaceGrants,
    Principal,
    Scope,
    Unauthenticated,
    bearer_token,
    hash_token,
    is_loopback,
)
from gateway.database import Database
from gateway.settings import Settings
from gateway.store import tokens

logger = logging.getLogger("gateway.auth")
_CACHE_LIMIT = 10_000


class InsecureStartup(Exception):
    """Serving a non-loopback address without any token, and without `--insecure`."""


class Authenticator:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.enabled = False
        self._checked_at = float("-inf")
        self._principals: dict[str, tuple[Principal | None, float]] = {}

    async def start(self) -> None:
        """Decides whether auth is on; refuses an open gateway on a public address."""
        self.enabled = await self._tokens_exist()
        if self.enabled:
            logger.info("authentication is on: requests need a bearer token")
        elif not is_loopback(self.settings.host) and not self.settings.insecure:
            raise InsecureStartup(
                f"refusing to serve {self.settings.host} without authentication: create a token with "
                "`asset-gateway token create --name NAME --scope admin --namespace '*'` or pass --insecure"
            )
        elif self.settings.insecure:
            logger.warning("authentication is OFF on %s (--insecure): anyone can read and write", self.settings.host)
        else:
            logger.warning("authentication is off (no tokens); create one with `asset-gateway token create`")

    async def _tokens_exist(self) -> bool:
        async with self.db.session() as session:
            return await tokens.count_active_tokens(session, datetime.now(UTC)) > 0

    async def _auth_required(self) -> bool:
        if self.enabled:
            return True
        if time.monotonic() - self._checked_at >= self.settings.auth_cache_seconds:
            self._checked_at = time.monotonic()
            self.enabled = await self._tokens_exist()
            if self.enabled:
                logger.info("a token exists now: authentication is on")
        return self.enabled

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an Authorization header value; raises Unauthenticated."""
        if not await self._auth_required():
            return ANONYMOUS
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("this gateway needs a token: send `Authorization: Bearer <token>`")
        principal = await self._principal(hash_token(token))
        if principal is None:
            raise Unauthenticated("the token is unknown, revoked or expired")
        return principal

    async def _principal(self, token_hash: str) -> Principal | None:
        cached = self._principals.get(token_hash)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        now = datetime.now(UTC)
        async with self.db.session() as session:
            row = await tokens.active_token_by_hash(session, token_hash, now)
        principal = None
        if row is not None:
            principal = Principal(
                name=row.name, scope=Scope(row.scope), grants=NamespaceGrants(tuple(row.namespaces)), token_id=row.id
            )
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                async with self.db.transaction() as session:
                    await tokens.mark_used(session, row.id, now)
        if len(self._principals) >= _CACHE_LIMIT:
            self._principals.clear()
        self._principals[token_hash] = (principal, time.monotonic() + self.settings.auth_cache_seconds)
        return principal
