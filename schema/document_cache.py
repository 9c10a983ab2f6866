"""Answers computed once per parsed document, found again by the document's identity.

The parser cache hands out one document object per query text, so the object itself is the key. Not its hash:
graphql-core's nodes are frozen dataclasses whose hash walks the whole tree, each time (functools' caches, keyed
on the document, walked it twice per request: about 5% of an asset page's CPU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from graphql import DocumentNode

V = TypeVar("V")


class DocumentCache(Generic[V]):
    """The `maxsize` most recently used answers, by document and a hashable further key."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        # The entry holds its document: while it is cached, no other object can take its id.
        self._entries: OrderedDict[tuple[int, Hashable], tuple[DocumentNode, V]] = OrderedDict()

    def get(self, document: DocumentNode, key: Hashable, compute: Callable[[], V]) -> V:
        entry_key = (id(document), key)
        entry = self._entries.get(entry_key)
        if entry is not None and entry[0] is document:
            self._entries.move_to_end(entry_key)
            return entry[1]
        value = compute()
        self._entries[entry_key] = (document, value)
        self._entries.move_to_end(entry_key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)
