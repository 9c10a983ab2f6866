"""Ingest OpenLineage documents: validate each, store the raw event, apply it, all or nothing per call."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.database import Database, run_transaction
from gateway.ingest.events import DatasetEvent, Event, EventError, JobEvent, RunEvent, parse_event
from gateway.ingest.normalise import apply_event, check_identifiers
from gateway.store.events import RawEvent, store_raw_event


class BodyError(ValueError):
    """The request body as a whole is unusable; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Rejection:
    index: int
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error}


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [rejection.as_json() for rejection in self.rejected],
        }


@dataclass(frozen=True)
class PreparedEvent:
    event: Event
    raw: RawEvent


def content_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def prepare(document: Any) -> PreparedEvent:
    """Validate one decoded document; EventError says why it is refused."""
    event = parse_event(document)
    check_identifiers(event)
    raw = RawEvent(
        content_hash=content_hash(document),
        kind={RunEvent: "run", DatasetEvent: "dataset", JobEvent: "job"}[type(event)],
        event_time=event.eventTime,
        payload=document,
        event_type=event.eventType.value if isinstance(event, RunEvent) and event.eventType else None,
        run_id=event.run.runId if isinstance(event, RunEvent) else None,
        job_namespace=event.job.namespace if isinstance(event, RunEvent | JobEvent) else None,
        job_name=event.job.name if isinstance(event, RunEvent | JobEvent) else None,
        producer=event.producer,
    )
    return PreparedEvent(event, raw)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"content encoding {encoding!r} is not supported; use gzip or none")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise BodyError(400, f"body is not valid {encoding}: {error}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise BodyError(413, f"decompressed body exceeds {limit} bytes")
    return data


def decode_documents(body: bytes, content_type: str | None) -> tuple[list[Any], bool]:
    """(documents, is_batch): one JSON event, a JSON array of events, or NDJSON."""
    text = body.strip()
    if not text:
        raise BodyError(400, "body is empty; expected an OpenLineage event, a JSON array of events, or NDJSON")
    ndjson = "ndjson" in (content_type or "") or "jsonlines" in (content_type or "")
    if not ndjson:
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            if b"\n" not in text:
                raise BodyError(400, f"body is not valid JSON: {error}") from None
            ndjson = True
        else:
            if isinstance(document, list):
                return document, True
            return [document], False
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            raise BodyError(400, f"line {number} is not valid JSON: {error}") from None
    return documents, True


async def apply_prepared(session: AsyncSession, events: Sequence[PreparedEvent], now: datetime) -> tuple[int, int]:
    """Store then apply each new event; (accepted, duplicates). The caller owns the transaction."""
    accepted = duplicates = 0
    for prepared in events:
        if await store_raw_event(session, prepared.raw, now) is None:
            duplicates += 1
            continue
        await apply_event(session, prepared.event, now)
        accepted += 1
    return accepted, duplicates


async def ingest_documents(db: Database, documents: Sequence[Any], now: datetime) -> IngestReport:
    """Validate every document; store and apply the valid ones in one transaction."""
    report = IngestReport()
    valid: list[PreparedEvent] = []
    for index, document in enumerate(documents):
        try:
            valid.append(prepare(document))
        except EventError as error:
            report.rejected.append(Rejection(index, str(error)))
    if valid:

        async def work(session: AsyncSession) -> tuple[int, int]:
            return await apply_prepared(session, valid, now)

        report.accepted, report.duplicates = await run_transaction(db, work)
    return report
