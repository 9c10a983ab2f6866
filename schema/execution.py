"""graphql-core's execution, with a shortcut for the fields that cost the most in big answers: plain leaves.

A page of 100 assets with eight fields each is 800 fields, almost all of them an attribute read and a scalar's
serialization. graphql-core builds a resolve-info object for each and walks its generic completion, several times
what reading the attribute costs. For a field without resolver, arguments or extensions whose type is a scalar, an
enum or a list of them, this reads the attribute and serializes it directly; so too for a field whose resolver's
answer is often at hand (see AT_HAND). Anything else, and any value that is not plainly serializable (null where
it may not be, a serializer raising), takes graphql-core's own path, which answers it and its errors as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLField, GraphQLLeafType, GraphQLList, GraphQLNonNull, GraphQLObjectType, is_leaf_type
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined, UndefinedType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

STRAWBERRY_FIELD = "strawberry-definition"
# Field metadata: `strawberry.field(metadata={AT_HAND: read})`, where `read(source)` answers a leaf field that has a
# resolver without running it when the answer is at hand (the resolver runs when `read` returns Undefined).
AT_HAND = "gateway:at-hand"


class _Leaf:
    """How to answer one plain leaf field: read it (Strawberry's attribute resolver, or the field's read of what is
    at hand), then serialize."""

    __slots__ = ("coerce", "is_list", "non_null", "resolve")

    def __init__(
        self, resolve: Callable[[Any, None], Any], leaf_type: GraphQLLeafType, non_null: bool, is_list: bool
    ) -> None:
        self.resolve = resolve
        self.coerce = leaf_type.coerce_output_value
        self.non_null = non_null
        self.is_list = is_list

    def answer(self, source: Any) -> Any:
        """The field's answer, or Undefined where graphql-core's path must answer (an error to report)."""
        # A basic field's resolver reads the attribute and never looks at its info.
        value = self.resolve(source, None)
        if value is Undefined:
            return Undefined
        if value is None:
            return Undefined if self.non_null else None
        if not self.is_list:
            coerced = self.coerce(value)
            return Undefined if coerced is None else coerced
        if not isinstance(value, list | tuple):
            return Undefined
        coerce = self.coerce
        items = [None if item is None else coerce(item) for item in value]
        return Undefined if None in items else items


_NOT_A_LEAF = object()
# Kept on the schema's own field object: it lives exactly as long as the schema, whichever schema it is.
_CACHED = "_gateway_plain_leaf"


def _plain_leaf(field: GraphQLField) -> _Leaf | None:
    found = getattr(field, _CACHED, None)
    if found is None:
        found = _describe(field) or _NOT_A_LEAF
        setattr(field, _CACHED, found)
    return found if isinstance(found, _Leaf) else None


def _describe(field: GraphQLField) -> _Leaf | None:
    definition = (field.extensions or {}).get(STRAWBERRY_FIELD)
    if not isinstance(definition, StrawberryField) or field.args:
        return None
    at_hand = definition.metadata.get(AT_HAND)
    resolve: Callable[[Any, None], Any]
    if at_hand is not None:
        resolve = lambda source, _info: at_hand(source)  # noqa: E731
    elif definition.is_basic_field and field.resolve is not None and getattr(field.resolve, "_is_default", False):
        resolve = field.resolve
    else:
        return None
    field_type, non_null = field.type, isinstance(field.type, GraphQLNonNull)
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    is_list = isinstance(field_type, GraphQLList)
    if isinstance(field_type, GraphQLList):
        # Lists of non-null leaves only (owners, tags): a null item is graphql-core's to report.
        if not isinstance(field_type.of_type, GraphQLNonNull):
            return None
        field_type = field_type.of_type.of_type
    if not is_leaf_type(field_type):
        return None
    return _Leaf(resolve, field_type, non_null, is_list)


class GatewayExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always passes a manager; only one holding middleware changes how fields resolve.
        manager = self.middleware_manager
        self._plain = manager is None or not manager.middlewares

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any = None,
    ) -> Any | UndefinedType:
        node = field_details_list[0].node
        field = parent_type.fields.get(node.name.value)
        if self._plain and field is not None and not node.arguments:
            leaf = _plain_leaf(field)
            if leaf is not None:
                try:
                    answer = leaf.answer(source)
                except Exception:  # graphql-core's path below reports it, located
                    answer = Undefined
                if answer is not Undefined:
                    return answer
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
