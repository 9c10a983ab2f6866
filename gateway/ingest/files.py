"""Reading OpenLineage events from files and folders (.json, .ndjson, .jsonl, optionally gzipped)."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.ingest.service import BodyError, decode_documents

SUFFIXES = (".json", ".ndjson", ".jsonl")


@dataclass(frozen=True)
class SourceDocument:
    source: str
    document: Any


def event_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.removesuffix(".gz").endswith(SUFFIXES))
            )
        else:
            found.append(path)
    return found


def read_documents(path: Path) -> Iterator[SourceDocument]:
    """Each event in a file, named `file` or `file:line/index` for the summary. Unreadable files raise."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    name = path.name.removesuffix(".gz")
    content_type = "application/x-ndjson" if name.endswith((".ndjson", ".jsonl")) else "application/json"
    try:
        documents, is_batch = decode_documents(data, content_type)
    except BodyError as error:
        raise ValueError(f"{path}: {error.message}") from None
    for index, document in enumerate(documents):
        yield SourceDocument(f"{path}[{index}]" if is_batch else str(path), document)
