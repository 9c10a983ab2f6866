"""Strings no database here can store: NUL (Postgres text and JSONB refuse it) and lone surrogates (not UTF-8).

Every string a client sends, in the document or in its variables, is checked once at the edge, so that such
input is the client's BAD_USER_INPUT on both dialects instead of an error of ours on one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule

CODE = "BAD_USER_INPUT"


def problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "contains the NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def find_problem(value: Any, path: str = "") -> str | None:
    """The first unstorable string in a JSON-like value (keys included), described with where it is."""
    if isinstance(value, str):
        found = problem(value)
        return None if found is None else f"{path or 'a string'} {found}"
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (found := problem(key)) is not None:
                return f"a key of {path or 'the variables'} {found}"
            if (found := find_problem(item, where)) is not None:
                return found
        return None
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for index, item in enumerate(value):
            if (found := find_problem(item, f"{path}[{index}]")) is not None:
                return found
    return None


def variables_error(variables: Mapping[str, Any] | None) -> GraphQLError | None:
    found = find_problem(dict(variables or {}), "")
    if found is None:
        return None
    return GraphQLError(f"Variable ${found}", extensions={"code": CODE})


class StorableStrings(ValidationRule):
    """String literals of the document must be storable too."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        found = problem(node.value)
        if found is not None:
            self.report_error(GraphQLError(f"a string literal {found}", node, extensions={"code": CODE}))
