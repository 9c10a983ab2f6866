"""Rows read as plain records (slotted dataclasses), not ORM objects.

An ORM object costs an identity-map entry, an instance state and one attribute set per column: for the long lists
the API answers (catalog pages, audit logs) several times what the row's values cost. A record is made from its
columns in one call. Records are for reading; whatever writes keeps the ORM's objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Bundle

R = TypeVar("R")


class RecordBundle(Bundle[R]):
    """Selects the columns of `entity` named by the fields of `record` (in their order), one record per row."""

    def __init__(self, name: str, record: type[R], entity: Any) -> None:
        fields: dict[str, Any] = getattr(record, "__dataclass_fields__")  # noqa: B009
        super().__init__(name, *(getattr(entity, field) for field in fields))
        self.record = record

    def create_row_processor(self, query: Any, procs: Sequence[Callable[[Any], Any]], labels: Any) -> Any:
        record = self.record

        def make(row: Any) -> R:
            return record(*[proc(row) for proc in procs])

        return make
