"""What the security tests share: an admin token made the way `asset-gateway token create` makes one."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.auth import Scope, hash_token, new_token
from gateway.database import Database
from gateway.store import tokens


async def create_admin_token(db: Database, name: str = "security-tests") -> str:
    """Creates an admin token on every namespace; returns the bearer secret (only its hash is stored)."""
    secret = new_token()
    async with db.transaction() as session:
        await tokens.create_token(
            session,
            name=name,
            token_hash=hash_token(secret),
            display_prefix=secret[:10],
            scope=Scope.ADMIN.value,
            namespaces=["*"],
            now=datetime.now(UTC),
        )
    return secret
