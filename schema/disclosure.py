"""What the API tells about itself: introspection and "Did you mean ...?" suggestions, both switchable.

With introspection off, `__schema` and `__type` are refused with a coded error; `__typename` stays (clients need it)
and so does federation's `_service { sdl }`, which is how a supergraph composes this subgraph. Suggestions let a
caller without introspection rebuild the schema field by field from error messages, so they can go too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule

INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
_INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})

# graphql-core's did_you_mean(): " Did you mean 'a'?", " Did you mean 'a' or 'b'?", " Did you mean 'a', 'b', or
# 'c'?", with "the enum value " before the names for enums; not always at the end of the message.
_SUGGESTION = re.compile(r" Did you mean (?:the enum value )?'[^']*'(?:(?:, |,? or )'[^']*')*\?")


class NoIntrospection(ValidationRule):
    """Refuses `__schema` and `__type` anywhere in the document."""

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        name = node.name.value
        if name in _INTROSPECTION_FIELDS:
            self.report_error(
                GraphQLError(
                    f"introspection is disabled on this gateway: {name} cannot be queried",
                    node,
                    extensions={"code": INTROSPECTION_DISABLED},
                )
            )


def without_suggestions(message: str) -> str:
    return _SUGGESTION.sub("", message)


def hide_suggestions(errors: Iterable[GraphQLError]) -> None:
    """Removes the suggestions from the messages, in place (the same error objects go on to the response)."""
    for error in errors:
        error.message = without_suggestions(error.message)
