"""Values no database here can store: NUL (Postgres text and JSONB refuse it), lone surrogates (not UTF-8),
integers beyond 64 bits (JSON carries them, but orjson, which writes every answer and export, cannot: an asset
whose metadata held one would fail every query that shows it), and NaN or infinite numbers (which JSON has no
form for: Postgres refuses them, variables may carry them as `NaN`, and `1e999` is a valid literal).

Every string a client sends, in the document or in its variables, and every number it puts in a JSON value, is
checked once at the edge, so that such input is the client's BAD_USER_INPUT on both dialects instead of an error
of ours on one of them, or later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from graphql import (
    SKIP,
    FloatValueNode,
    GraphQLError,
    GraphQLInputType,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    ValidationRule,
    ValueNode,
    get_named_type,
)

CODE = "BAD_USER_INPUT"
# What orjson writes: signed 64-bit integers, and unsigned ones.
_SMALLEST, _LARGEST = -(2**63), 2**64 - 1
# Scalars that take any JSON value, literals included.
_JSON_SCALARS = frozenset({"JSON", "_Any"})


def problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "contains the NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


_NOT_FINITE = "is not a finite number, which JSON cannot hold"


def integer_problem(value: int) -> str | None:
    if _SMALLEST <= value <= _LARGEST:
        return None
    return "is an integer beyond 64 bits, which cannot be stored"


def find_problem(value: Any, path: str = "") -> str | None:
    """The first unstorable string or integer in a JSON-like value (keys included), described with where it is."""
    if isinstance(value, str):
        found = problem(value)
        return None if found is None else f"{path or 'a string'} {found}"
    if isinstance(value, int) and not isinstance(value, bool):
        found = integer_problem(value)
        return None if found is None else f"{path or 'a number'} {found}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'a number'} {_NOT_FINITE}"
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
    """String literals of the document must be storable too, and so must integer literals of JSON values (other
    integers have types of their own, which refuse what they cannot hold)."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        found = problem(node.value)
        if found is not None:
            self.report_error(GraphQLError(f"a string literal {found}", node, extensions={"code": CODE}))

    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        self._check_json(node, self.context.get_input_type())

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
        self._check_json(node, self.context.get_input_type())

    def enter_object_value(self, node: ObjectValueNode, *_: Any) -> Any:
        return self._check_json(node, self.context.get_input_type())

    def enter_list_value(self, node: ListValueNode, *_: Any) -> Any:
        # Entering a list, the visitor already stands at its items: the list's own type is one level up.
        return self._check_json(node, self.context.get_parent_input_type())

    def _check_json(self, node: ValueNode, input_type: GraphQLInputType | None) -> Any:
        # Inside a JSON literal the visitor knows no input types any more: the literal is checked whole, here.
        if input_type is None or get_named_type(input_type).name not in _JSON_SCALARS:
            return None
        pending = [node]
        while pending:
            value = pending.pop()
            if isinstance(value, ObjectValueNode):
                pending.extend(field.value for field in value.fields)
            elif isinstance(value, ListValueNode):
                pending.extend(value.values)
            elif isinstance(value, IntValueNode) and (found := integer_problem(int(value.value))) is not None:
                self.report_error(
                    GraphQLError(f"the literal {value.value[:40]} {found}", value, extensions={"code": CODE})
                )
                break
            elif isinstance(value, FloatValueNode) and not math.isfinite(float(value.value)):
                self.report_error(
                    GraphQLError(f"the literal {value.value[:40]} {_NOT_FINITE}", value, extensions={"code": CODE})
                )
                break
            elif isinstance(value, StringValueNode) and (found := problem(value.value)) is not None:
                self.report_error(GraphQLError(f"a string literal {found}", value, extensions={"code": CODE}))
                break
        # Its strings were checked with its numbers: the rest of this rule need not visit it again.
        return SKIP
