"""The shape of a document, checked right after parsing, before any validation rule walks it.

Two shapes make validation itself the attack, and neither is bounded by the token, depth or alias limits (which
are validation rules themselves):

- Fragments spread into fragments: `fragment F1 on Asset { upstream { ...F2 ...F2 } }`, and so on 30 times, is a
  few kilobytes, but walking it with every spread expanded (as the alias and depth limiters do) visits 2^30 fields,
  and validation runs on the event loop. The fields of the document with every spread expanded are counted in
  linear time (each fragment's size once), and a document over `MAX_EXPANDED_FIELDS` is refused.
- Repeats: a field may be selected several times where one response field is due, and execution merges them, but
  validating them is quadratic (graphql-core compares every pair that merges). A few hundred copies of
  `lastExecution { runId }`, or 20 copies each holding 45 copies of `parent { runId }` (900 nodes merging into
  `lastExecution.parent`), fit in the token limit and cost a second of CPU. Nodes are counted as execution merges
  them: per response path, across the selection sets merged there, with inline fragments and fragment spreads
  flattened (each fragment once per merge, as graphql-core collects fields). Real clients repeat a field only when
  a few fragments ask for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from schema.document_cache import DocumentCache

CODE = "GRAPHQL_VALIDATION_FAILED"
# A document of 4,000 tokens without fragments has at most about 2,000 fields; fragments reused across a page of
# components multiply that a few times. Past this, the alias and depth limiters alone take a tenth of a second.
MAX_EXPANDED_FIELDS = 20_000
# Deeper documents are the depth limiter's to refuse; the walk stops there (a fragment cycle through a field, which
# validation refuses, would otherwise never end).
_MAX_DEPTH = 64


def _contents(selection_set: SelectionSetNode) -> tuple[int, Counter[str]]:
    """The field nodes of a selection set at any depth, and the fragments it spreads (with how often)."""
    fields = 0
    spreads: Counter[str] = Counter()
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                fields += 1
                if selection.selection_set is not None:
                    pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                spreads[selection.name.value] += 1
    return fields, spreads


def expanded_fields(document: DocumentNode) -> int:
    """How many fields the document has with every fragment spread replaced by the fragment, computed without
    expanding anything: a fragment's size is its own fields plus the sizes of the fragments it spreads."""
    contents = {
        definition.name.value: _contents(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}
    for root in contents:
        # Depth first without recursion (fragment chains can be longer than Python's stack); a fragment on a cycle
        # counts as empty inside it, the cycle being a validation error of its own.
        stack: list[tuple[str, bool]] = [(root, False)]
        open_: set[str] = set()
        while stack:
            name, ready = stack.pop()
            if name in sizes or name not in contents:
                continue
            fields, spreads = contents[name]
            if ready:
                open_.discard(name)
                sizes[name] = fields + sum(sizes.get(target, 0) * count for target, count in spreads.items())
                continue
            if name in open_:
                continue
            open_.add(name)
            stack.append((name, True))
            stack.extend((target, False) for target in spreads if target not in sizes and target not in open_)
    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            fields, spreads = _contents(definition.selection_set)
            total += fields + sum(sizes.get(target, 0) * count for target, count in spreads.items())
    return total


class _Walk:
    def __init__(self, document: DocumentNode, limit: int) -> None:
        self.limit = limit
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }

    def fields(self, selection_sets: list[SelectionSetNode]) -> dict[str, list[FieldNode]]:
        """The field nodes that merge, by response key."""
        groups: dict[str, list[FieldNode]] = {}
        spread: set[str] = set()
        pending = list(selection_sets)
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    groups.setdefault((selection.alias or selection.name).value, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in spread:
                    spread.add(selection.name.value)
                    definition = self.fragments.get(selection.name.value)
                    if definition is not None:
                        pending.append(definition.selection_set)
        return groups

    def repeated(self, roots: list[SelectionSetNode]) -> tuple[str, int] | None:
        levels: list[tuple[list[SelectionSetNode], int]] = [(roots, 0)]
        while levels:
            selection_sets, depth = levels.pop()
            for key, nodes in self.fields(selection_sets).items():
                if len(nodes) > self.limit:
                    return key, len(nodes)
                children = [node.selection_set for node in nodes if node.selection_set is not None]
                if children and depth < _MAX_DEPTH:
                    levels.append((children, depth + 1))
        return None


def repeated_field(document: DocumentNode, limit: int) -> tuple[str, int] | None:
    """A response key with more than `limit` field nodes merging into it, and their number."""
    walk = _Walk(document, limit)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            found = walk.repeated([definition.selection_set])
            if found is not None:
                return found
    return None


def shape_error(document: DocumentNode, max_repeats: int) -> GraphQLError | None:
    """Why the document's shape is refused, or None."""
    problem = _SHAPE_PROBLEMS.get(document, max_repeats, lambda: _shape_problem(document, max_repeats))
    # A new error each time: errors are answered, and may be changed on the way, per request.
    return None if problem is None else GraphQLError(problem, extensions={"code": CODE})


# The parser cache hands out the same document for the same text, so its verdict is looked up, not recomputed.
_SHAPE_PROBLEMS: DocumentCache[str | None] = DocumentCache(maxsize=512)


def _shape_problem(document: DocumentNode, max_repeats: int) -> str | None:
    size = expanded_fields(document)
    if size > MAX_EXPANDED_FIELDS:
        return (
            f"the document selects {size} fields once its fragments are expanded; at most {MAX_EXPANDED_FIELDS}"
            " are allowed"
        )
    found = repeated_field(document, max_repeats)
    if found is not None:
        key, count = found
        return (
            f"the field {key!r} is selected {count} times at one place of the response; at most {max_repeats}"
            " are allowed"
        )
    return None


@cache
def _validations(maxsize: int) -> DocumentCache[list[GraphQLError]]:
    # One cache per size, shared by every request (the extension is made anew for each).
    return DocumentCache(maxsize)


class ShapedValidation(SchemaExtension):
    """Validation, cached per document, which checks the document's shape first and validates only a sound one.

    The check has to come first and has to stop validation: a validation rule would run beside the others (the
    alias and depth limiters build their counts before any rule reports), and an error raised elsewhere before
    validation escapes the subscription path. Errors set here before validation are what Strawberry answers.
    Validation is Strawberry's own (`validate_document`), cached as its ValidationCache caches it, but by the
    document's identity (schema/document_cache.py).
    """

    def __init__(self, max_repeats: int, maxsize: int) -> None:
        super().__init__()
        self.max_repeats = max_repeats
        self.validations = _validations(maxsize)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        error = shape_error(document, self.max_repeats)
        if error is not None:
            context.pre_execution_errors = [error]
            yield
            return
        schema, rules = context.schema._schema, tuple(context.validation_rules)
        context.pre_execution_errors = self.validations.get(
            document, (schema, rules), lambda: validate_document(schema, document, rules)
        )
        yield
