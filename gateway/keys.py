"""Asset identity: a key is a URI-like string; OpenLineage's (namespace, name) joins into one."""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.errors import InvalidInput
from gateway.orm import KEY_LENGTH

DEFAULT_NAMESPACE = "default"
_URI_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/]*")


class KeyParts(NamedTuple):
    namespace: str
    name: str


def validate_key(key: str, what: str = "key") -> str:
    """A key is 1..512 printable characters without whitespace."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(key) > KEY_LENGTH:
        raise InvalidInput(f"{what} is {len(key)} characters long; the limit is {KEY_LENGTH}")
    # Every whitespace character but the space is unprintable too: one pass in C for the usual, valid key.
    if key.isprintable() and " " not in key:
        return key
    for position, char in enumerate(key):
        if char.isspace() or not char.isprintable():
            raise InvalidInput(f"{what} {key[:60]!r} has whitespace or a control character at position {position}")
    return key


def join_key(namespace: str, name: str) -> str:
    """`postgres://db:5432` + `shop.public.orders` -> `postgres://db:5432/shop.public.orders`."""
    return validate_key(f"{namespace}/{name}" if namespace else name)


def split_key(key: str) -> KeyParts:
    """The inverse of `join_key`: split after a URI authority, else at the first slash."""
    match = _URI_AUTHORITY.match(key)
    if match:
        namespace = match.group(0)
        rest = key[len(namespace) + 1 :]
        return KeyParts(namespace, rest or namespace)
    namespace, slash, name = key.partition("/")
    if not slash or not namespace or not name:
        return KeyParts(DEFAULT_NAMESPACE, key)
    return KeyParts(namespace, name)
