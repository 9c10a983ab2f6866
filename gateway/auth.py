"""Tokens, scopes and namespace grants: who may read and write which namespaces.

A grant is a namespace pattern where `*` matches any run of characters (`finance.*`, `postgres://prod:5432`,
`*`). It covers assets of that namespace and jobs of that namespace; an execution belongs to its job's namespace.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from gateway.errors import GatewayError

TOKEN_PREFIX = "agw_"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Scope) -> bool:
        return self.rank >= other.rank


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    code = "FORBIDDEN"


def validate_pattern(pattern: str) -> str:
    if not pattern or len(pattern) > 512 or any(ch.isspace() for ch in pattern):
        raise ValueError(f"a namespace grant is a non-empty pattern without spaces, got {pattern!r}")
    return pattern


@dataclass(frozen=True)
class NamespaceGrants:
    """The namespaces a principal may touch; `*` alone means every namespace."""

    patterns: tuple[str, ...]

    @cached_property
    def everything(self) -> bool:
        return "*" in self.patterns

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        alternatives = ["".join(".*" if part == "*" else re.escape(part) for part in _split(p)) for p in self.patterns]
        return re.compile("|".join(f"(?:{a})" for a in alternatives) or "(?!)", re.DOTALL)

    def matches(self, namespace: str) -> bool:
        return self.everything or self._regex.fullmatch(namespace) is not None

    def covers_prefix(self, prefix: str | None) -> bool:
        """Whether every namespace starting with `prefix` is granted (None: every namespace at all)."""
        if self.everything:
            return True
        if prefix is None:
            return False
        return any(
            pattern.endswith("*") and "*" not in pattern[:-1] and prefix.startswith(pattern[:-1])
            for pattern in self.patterns
        )

    def like_patterns(self) -> list[str]:
        """SQL LIKE patterns (escape character `\\`) equivalent to the grants."""
        return ["".join("%" if part == "*" else _like_escape(part) for part in _split(p)) for p in self.patterns]


def _split(pattern: str) -> list[str]:
    return [part for part in re.split(r"(\*)", pattern) if part]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's name, its scope and its namespace grants."""

    name: str
    scope: Scope
    grants: NamespaceGrants = field(default_factory=lambda: NamespaceGrants(("*",)))
    token_id: int | None = None

    @property
    def sees_everything(self) -> bool:
        return self.grants.everything

    def can_read(self, namespace: str) -> bool:
        return self.grants.matches(namespace)

    def can_write(self, namespace: str) -> bool:
        return self.scope.includes(Scope.WRITE) and self.grants.matches(namespace)

    def require(self, scope: Scope, what: str) -> None:
        """Raises Forbidden unless the principal holds `scope` (for operations not tied to one namespace)."""
        if not self.scope.includes(scope):
            raise Forbidden(f"{what} needs a token with the {scope.value} scope; this token has {self.scope.value}")

    def require_write(self, namespace: str, what: str) -> None:
        self.require(Scope.WRITE, what)
        if not self.grants.matches(namespace):
            raise Forbidden(f"{what}: this token may not write namespace {namespace!r}")

    def require_everything(self, scope: Scope, what: str) -> None:
        """For operations that span every namespace (running a monitor, managing tokens)."""
        self.require(scope, what)
        if not self.grants.everything:
            raise Forbidden(f"{what} needs a grant on every namespace ('*')")


# Auth switched off (no tokens on a loopback address, or --insecure): the caller may do anything.
ANONYMOUS = Principal(name="anonymous", scope=Scope.ADMIN)
# A request the middleware let through without a token while auth is on (the GraphiQL page): sees nothing.
NOBODY = Principal(name="nobody", scope=Scope.READ, grants=NamespaceGrants(()))


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256 random bits: a plain SHA-256 is enough at rest (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (also `Apikey`, as some clients send)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() not in ("bearer", "apikey") or not credentials.strip():
        raise Unauthenticated("the Authorization header must be `Bearer <token>`")
    return credentials.strip()


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
