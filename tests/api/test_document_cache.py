"""Answers cached per parsed document are found by the document object, never by walking it to hash it."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import DocumentNode, parse
from strawberry.types.execution import ExecutionContext

from gateway.settings import Settings
from schema import build_schema
from schema.document_cache import DocumentCache
from schema.shape import ShapedValidation


def test_an_answer_is_computed_once_per_document_object_and_key() -> None:
    cache: DocumentCache[str] = DocumentCache(maxsize=8)
    document = parse("{ assets { edges { node { key } } } }")
    computed: list[str] = []

    def compute(answer: str) -> str:
        computed.append(answer)
        return answer

    assert cache.get(document, 1, lambda: compute("first")) == "first"
    assert cache.get(document, 1, lambda: compute("again")) == "first"
    assert cache.get(document, 2, lambda: compute("other key")) == "other key"
    # An equal document parsed anew is another object: its own answer.
    assert cache.get(parse("{ assets { edges { node { key } } } }"), 1, lambda: compute("twin")) == "twin"
    assert computed == ["first", "other key", "twin"]


def test_the_least_recently_used_answer_goes_first() -> None:
    cache: DocumentCache[int] = DocumentCache(maxsize=2)
    first, second, third = (parse(f"{{ n{number} }}") for number in range(3))
    cache.get(first, None, lambda: 1)
    cache.get(second, None, lambda: 2)
    assert cache.get(first, None, lambda: -1) == 1  # used: second is now the oldest
    cache.get(third, None, lambda: 3)
    assert len(cache) == 2
    assert cache.get(first, None, lambda: -1) == 1
    assert cache.get(second, None, lambda: -2) == -2


class _Unhashable(DocumentNode):
    def __hash__(self) -> int:
        raise AssertionError("the document was hashed")


# graphql-core names a node class's kind after the class, once it is made; visitors dispatch on the kind.
_Unhashable.kind = "document"


def _validate(schema: Any, document: DocumentNode) -> list[str]:
    extension = ShapedValidation(max_repeats=5, maxsize=16)
    extension.execution_context = ExecutionContext(
        query=None, schema=schema, allowed_operations=(), graphql_document=document
    )
    for _ in extension.on_validate():
        pass
    return [error.message for error in extension.execution_context.pre_execution_errors or []]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("{ assets(first: 2) { edges { node { key } } } }", []),
        ("{ nope }", ["Cannot query field 'nope' on type 'Query'."]),
        (
            "{ a: namespaces { __typename } " + "a: namespaces { __typename } " * 6 + "}",
            ["the field 'a' is selected 7 times"],
        ),
    ],
)
def test_validation_finds_its_verdicts_without_hashing_the_document(query: str, expected: list[str]) -> None:
    """Strawberry's ValidationCache and the shape check were keyed on the document, whose hash walks its tree."""
    schema = build_schema(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    parsed = parse(query)
    document = _Unhashable(definitions=parsed.definitions, loc=parsed.loc)
    first, again = _validate(schema, document), _validate(schema, document)
    assert first == again
    assert [message[: len(prefix)] for message, prefix in zip(first, expected, strict=True)] == expected
