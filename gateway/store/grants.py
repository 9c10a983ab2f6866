"""Namespace grants as SQL: the same patterns `gateway.auth.NamespaceGrants` matches in Python.

Grants are case-sensitive like the Python match: Postgres' LIKE is, SQLite's is not (ASCII), so SQLite uses
GLOB, whose wildcard is `*` too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from gateway.auth import NamespaceGrants


def _glob_escape(text: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def _glob(pattern: str) -> str:
    return "*".join(_glob_escape(part) for part in pattern.split("*"))


def namespace_clause(grants: NamespaceGrants | None, column: Any, dialect: str) -> ColumnElement[bool]:
    """True for rows whose namespace `column` the grants cover; no grants (None) means no restriction."""
    if grants is None or grants.everything:
        return true()
    clauses: list[ColumnElement[bool]] = []
    for pattern, like in zip(grants.patterns, grants.like_patterns(), strict=True):
        if "*" not in pattern:
            clauses.append(column == pattern)
        elif dialect == "sqlite":
            clauses.append(column.op("GLOB")(_glob(pattern)))
        else:
            clauses.append(column.like(like, escape="\\"))
    return or_(*clauses) if clauses else false()
