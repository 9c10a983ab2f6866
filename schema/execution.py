"""graphql-core's execution, with a shortcut for the fields that cost the most in big answers: plain fields.

A page of 100 assets with eight fields each is 800 fields and 200 objects (edges and nodes), almost all of them an
attribute read and a scalar's serialization. graphql-core builds a path and a resolve-info object for each and
walks its generic completion, several times what reading the attribute costs. A plain field is answered directly:

- a leaf (scalar, enum, or list of them) without resolver or arguments: read the attribute, serialize it;
- an object (or list of objects) without resolver or arguments, whose selection holds only plain fields: read it,
  then answer each of its fields the same way, building the response's dictionaries directly;
- either of them with a resolver whose answer is often at hand (see AT_HAND), when it is.

Anything else, and any value that is not plainly answered (null where it may not be, a serializer raising, an
answer not at hand), takes graphql-core's own path for the whole field, which answers it and its errors as before:
a plain field reads attributes only, so reading it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined, UndefinedType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

STRAWBERRY_FIELD = "strawberry-definition"
# Field metadata: `strawberry.field(metadata={AT_HAND: read})`, where `read(source)` answers a field that has a
# resolver without running it when the answer is at hand (the resolver runs when `read` returns Undefined).
AT_HAND = "gateway:at-hand"


class _Leaf:
    """How to answer one plain leaf field: read it (the attribute, or the field's read of what is at hand), then
    serialize."""

    __slots__ = ("coerce", "is_list", "non_null", "read")

    def __init__(self, read: Callable[[Any], Any], leaf_type: GraphQLLeafType, non_null: bool, is_list: bool) -> None:
        self.read = read
        self.coerce = _serializer(leaf_type)
        self.non_null = non_null
        self.is_list = is_list

    def answer(self, source: Any) -> Any:
        """The field's answer, or Undefined where graphql-core's path must answer (an error to report)."""
        value = self.read(source)
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


# Built-in scalars whose serialization returns a value of this exact type unchanged (not Float: it refuses NaN).
_UNCHANGED: dict[GraphQLScalarType, type] = {GraphQLString: str, GraphQLBoolean: bool}


def _serializer(leaf_type: GraphQLLeafType) -> Callable[[Any], Any]:
    """The leaf type's serialization, answering directly the values it returns unchanged or looks up: per value a
    type check, or a dictionary lookup instead of Strawberry's search through an enum's values."""
    coerce = leaf_type.coerce_output_value
    if isinstance(leaf_type, GraphQLEnumType):
        # Strawberry's enums know the Python enum they serialize: its members' names are known in advance.
        wrapped = getattr(leaf_type, "wrapped_cls", None)
        if not (isinstance(wrapped, type) and issubclass(wrapped, Enum)):
            return coerce
        names = {member: coerce(member) for member in wrapped}

        def serialize_enum(value: Any) -> Any:
            return names[value] if type(value) is wrapped else coerce(value)

        return serialize_enum
    exact = _UNCHANGED.get(leaf_type) if isinstance(leaf_type, GraphQLScalarType) else None
    if exact is None:
        return coerce
    return lambda value: value if type(value) is exact else coerce(value)


# The answer of a plain field for its source object, or Undefined where graphql-core's path must answer.
Answer = Callable[[Any], Any]


class _Object:
    """How to read one object field, or list of objects, that may be plain (whether it is depends on the selection
    a query makes of it)."""

    __slots__ = ("is_list", "items_non_null", "non_null", "object_type", "read")

    def __init__(
        self,
        read: Callable[[Any], Any],
        object_type: GraphQLObjectType,
        non_null: bool,
        is_list: bool,
        items_non_null: bool,
    ) -> None:
        self.read = read
        self.object_type = object_type
        self.non_null = non_null
        self.is_list = is_list
        self.items_non_null = items_non_null

    def answering(self, fields: list[tuple[str, Answer]]) -> Answer:
        """The answer of this field when its selection is `fields`: (response name, answer) in order."""
        read, non_null, is_list, items_non_null = self.read, self.non_null, self.is_list, self.items_non_null

        def fill(value: Any) -> Any:
            answer = {}
            for name, field in fields:
                item = field(value)
                if item is Undefined:
                    return Undefined
                answer[name] = item
            return answer

        def answer(source: Any) -> Any:
            value = read(source)
            if value is Undefined:
                return Undefined
            if value is None:
                return Undefined if non_null else None
            if not is_list:
                return fill(value)
            if not isinstance(value, list | tuple):
                return Undefined
            answers: list[Any] = []
            for item in value:
                if item is None:
                    if items_non_null:
                        return Undefined
                    answers.append(None)
                    continue
                filled = fill(item)
                if filled is Undefined:
                    return Undefined
                answers.append(filled)
            return answers

        return answer


def _constant(value: str) -> Answer:
    return lambda _source: value


_NOT_PLAIN = object()
# Kept on the schema's own field object: it lives exactly as long as the schema, whichever schema it is.
_CACHED = "_gateway_plain_field"


def _plain_field(field: GraphQLField) -> _Leaf | _Object | None:
    found = getattr(field, _CACHED, None)
    if found is None:
        found = _describe(field) or _NOT_PLAIN
        setattr(field, _CACHED, found)
    return found if isinstance(found, _Leaf | _Object) else None


def _describe(field: GraphQLField) -> _Leaf | _Object | None:
    definition = (field.extensions or {}).get(STRAWBERRY_FIELD)
    if not isinstance(definition, StrawberryField) or field.args:
        return None
    at_hand = definition.metadata.get(AT_HAND)
    read: Callable[[Any], Any]
    if at_hand is not None:
        read = at_hand
    elif definition.is_basic_field and field.resolve is not None and getattr(field.resolve, "_is_default", False):
        # What Strawberry's resolver of a basic field does (`default_resolver(source, python_name)`), called directly.
        resolver, name = definition.default_resolver, definition.python_name
        read = attrgetter(name) if resolver is getattr else lambda source: resolver(source, name)
    else:
        return None
    field_type, non_null = field.type, isinstance(field.type, GraphQLNonNull)
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    is_list = items_non_null = isinstance(field_type, GraphQLList)
    if isinstance(field_type, GraphQLList):
        field_type = field_type.of_type
        items_non_null = isinstance(field_type, GraphQLNonNull)
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
    if is_leaf_type(field_type):
        # Lists of non-null leaves only (owners, tags): a null item is graphql-core's to report.
        if is_list and not items_non_null:
            return None
        return _Leaf(read, field_type, non_null, is_list)
    # An object type that checks what it is given (is_type_of: it implements an interface) takes the long path.
    if isinstance(field_type, GraphQLObjectType) and field_type.is_type_of is None:
        return _Object(read, field_type, non_null, is_list, items_non_null)
    return None


class GatewayExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always passes a manager; only one holding middleware changes how fields resolve.
        manager = self.middleware_manager
        self._plain = manager is None or not manager.middlewares
        # The plan of each plain field of this operation, by its field nodes' list (which graphql-core memoizes
        # per selection, as it does its sub-fields: kept alive here so that its id stays its own).
        self._plans: dict[tuple[str, int], tuple[FieldDetailsList, Answer | None]] = {}

    def _plan(self, parent_type: GraphQLObjectType, field: GraphQLField, details: FieldDetailsList) -> Answer | None:
        key = (parent_type.name, id(details))
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = (details, self._build_plan(field, details))
        return found[1]

    def _build_plan(self, field: GraphQLField, details: FieldDetailsList) -> Answer | None:
        described = _plain_field(field)
        if described is None or any(detail.node.directives for detail in details):
            return None
        if isinstance(described, _Leaf):
            return described.answer
        object_type = described.object_type
        grouped, deferred, _ = self.collect_subfields(object_type, details)
        if deferred:
            return None
        fields: list[tuple[str, Answer]] = []
        for response_name, sub_details in grouped.items():
            node = sub_details[0].node
            if node.arguments:
                return None
            if node.name.value == "__typename":
                fields.append((response_name, _constant(object_type.name)))
                continue
            sub_field = object_type.fields.get(node.name.value)
            plan = None if sub_field is None else self._plan(object_type, sub_field, sub_details)
            if plan is None:
                return None
            fields.append((response_name, plan))
        return described.answering(fields)

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
            plan = self._plan(parent_type, field, field_details_list)
            if plan is not None:
                try:
                    answer = plan(source)
                except Exception:  # graphql-core's path below reports it, located
                    answer = Undefined
                if answer is not Undefined:
                    return answer
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
