"""Ingest OpenLineage documents: validate each, store the raw event, apply it, all or nothing per call."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from gateway.auth import ANONYMOUS, Principal
from gateway.database import Database
from gateway.errors import InvalidInput
from gateway.ingest.authorize import event_dataset_keys, forbidden_namespace
from gateway.ingest.events import Dataset, DatasetEvent, Event, EventError, JobEvent, RunEvent, parse_event
from gateway.ingest.normalise import check_identifiers
from gateway.ingest.writer import GroupWriter, PreparedEvent, Written, write_events
from gateway.keys import join_key
from gateway.orm import KEY_LENGTH, Asset, ColumnLineage, Job
from gateway.store.assets import read_assets_by_keys
from gateway.store.events import RawEvent
from gateway.store.executions import MAX_DATASETS_PER_EVENT
from gateway.store.jobs import validate_job_name


def _width(column: Any) -> int:
    length: int = column.type.length
    return length


# Column widths the database enforces (Postgres refuses longer values; SQLite would keep them).
_TYPE_LENGTH = _width(Asset.__table__.c.type)
_JOB_TYPE_LENGTH = _width(Job.__table__.c.type)
_TRANSFORMATION_LENGTH = _width(ColumnLineage.__table__.c.transformation_type)


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
    # Refused for want of a grant rather than for being invalid (403 rather than 400 when alone).
    forbidden: bool = False

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


def canonical_json(document: dict[str, Any]) -> bytes:
    """The document as the content hash reads it: keys sorted, so that equal documents hash alike."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _find_nul(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return f"{path}.{key!r}" if path else repr(key)
            found = _find_nul(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for position, item in enumerate(value):
            found = _find_nul(item, f"{path}[{position}]")
            if found is not None:
                return found
    return None


def _check_length(value: str | None, limit: int, path: str) -> None:
    if value is not None and len(value) > limit:
        raise EventError(f"is {len(value)} characters long; the limit is {limit}", path)


def _check_job(namespace: str, name: str, path: str) -> None:
    try:
        validate_job_name(namespace, name)
    except InvalidInput as error:
        raise EventError(error.message, path) from None


def _check_column_lineage(dataset: Dataset, path: str) -> None:
    facet = dataset.facets.columnLineage
    if facet is None:
        return
    for field_name, lineage in facet.fields.items():
        field_path = f"{path}.facets.columnLineage.fields.{field_name[:60]}"
        _check_length(field_name, KEY_LENGTH, field_path)
        _check_length(lineage.transformationType, _TRANSFORMATION_LENGTH, f"{field_path}.transformationType")
        for position, source in enumerate(lineage.inputFields):
            source_path = f"{field_path}.inputFields[{position}]"
            try:
                join_key(source.namespace, source.name)
            except InvalidInput as error:
                raise EventError(error.message, source_path) from None
            _check_length(source.field, KEY_LENGTH, f"{source_path}.field")
            for transformation in source.transformations or []:
                _check_length(transformation.type, _TRANSFORMATION_LENGTH, f"{source_path}.transformations.type")
                _check_length(transformation.subtype, _TRANSFORMATION_LENGTH, f"{source_path}.transformations.subtype")


def check_storable(event: Event, document: dict[str, Any], serialized: bytes | None = None) -> None:
    """Refuse, before any write, values the database would refuse: the event is then rejected on its own,
    with its path, instead of failing the whole request (and alike on both dialects).

    `serialized`, the document as JSON, spares the search for NUL characters when it escapes none."""
    nul = _find_nul(document, "") if serialized is None or b"\\u0000" in serialized else None
    if nul is not None:
        raise EventError("contains a NUL character (\\u0000), which cannot be stored", nul)
    datasets: list[tuple[str, Dataset]] = []
    if isinstance(event, RunEvent | JobEvent):
        _check_job(event.job.namespace, event.job.name, "job")
        job_type = event.job.facets.jobType
        if job_type is not None:
            _check_length(job_type.jobType or job_type.processingType, _JOB_TYPE_LENGTH, "job.facets.jobType")
        inputs, outputs = event.inputs or [], event.outputs or []
        if len(inputs) + len(outputs) > MAX_DATASETS_PER_EVENT:
            raise EventError(
                f"names {len(inputs) + len(outputs)} inputs and outputs; the limit is {MAX_DATASETS_PER_EVENT}"
            )
        datasets = [(f"inputs[{i}]", d) for i, d in enumerate(inputs)]
        datasets += [(f"outputs[{i}]", d) for i, d in enumerate(outputs)]
        for path, dataset in datasets[len(inputs) :]:
            _check_column_lineage(dataset, path)
    else:
        datasets = [("dataset", event.dataset)]
        _check_column_lineage(event.dataset, "dataset")
    if isinstance(event, RunEvent) and event.run.facets.parent is not None:
        parent = event.run.facets.parent.job
        _check_job(parent.namespace, parent.name, "run.facets.parent.job")
    for path, dataset in datasets:
        dataset_type = dataset.facets.datasetType
        if dataset_type is not None:
            _check_length(dataset_type.datasetType, _TYPE_LENGTH, f"{path}.facets.datasetType.datasetType")


def prepare(document: Any) -> PreparedEvent:
    """Validate one decoded document; EventError says why it is refused."""
    try:
        event = parse_event(document)
    except OverflowError:
        # A time at the edge of the calendar whose offset pushes it past year 1 or 9999 in UTC.
        raise EventError("is out of the range of representable times once converted to UTC", "eventTime") from None
    try:
        serialized = canonical_json(document)
    except orjson.JSONEncodeError as error:
        # orjson refuses, among others, documents nested deeper than 255 levels.
        raise EventError(f"cannot be stored as JSON: {error}") from None
    digest = hashlib.sha256(serialized).hexdigest()
    check_identifiers(event)
    check_storable(event, document, serialized)
    raw = RawEvent(
        content_hash=digest,
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
    window = zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS
    parts: list[bytes] = []
    size = 0
    rest = body
    # A gzip body may hold several members one after the other (RFC 1952 2.2); each one is part of the body.
    while True:
        inflater = zlib.decompressobj(window)
        try:
            data = inflater.decompress(rest, limit - size + 1)
        except zlib.error as error:
            raise BodyError(400, f"body is not valid {encoding}: {error}") from None
        size += len(data)
        if size > limit or inflater.unconsumed_tail:
            raise BodyError(413, f"decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            raise BodyError(400, f"body is not valid {encoding}: the compressed stream is truncated")
        parts.append(data)
        rest = inflater.unused_data
        if not rest or encoding == "deflate" or not rest.strip(b"\x00"):
            return b"".join(parts)


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


async def _without_foreign_aliases(
    db: Database, principal: Principal, valid: list[tuple[int, PreparedEvent]], report: IngestReport
) -> list[tuple[int, PreparedEvent]]:
    """Drops events naming a dataset that is an alias of an asset outside the grants (it would write that asset)."""
    keys = {index: event_dataset_keys(prepared.event) for index, prepared in valid}
    async with db.session() as session:
        existing = await read_assets_by_keys(session, sorted(set().union(*keys.values())))
    kept: list[tuple[int, PreparedEvent]] = []
    for index, prepared in valid:
        foreign = sorted(
            a.namespace for key in keys[index] if (a := existing.get(key)) and not principal.can_write(a.namespace)
        )
        if foreign:
            message = f"this token may not write namespace {foreign[0]!r} (a dataset of the event is an alias there)"
            report.rejected.append(Rejection(index, message, forbidden=True))
        else:
            kept.append((index, prepared))
    return kept


async def ingest_documents(
    db: Database,
    documents: Sequence[Any],
    now: datetime,
    principal: Principal = ANONYMOUS,
    writer: GroupWriter | None = None,
) -> IngestReport:
    """Validate every document; store and apply the valid ones in one transaction (with `writer`, one it shares
    with other requests' events).

    Should the store refuse one of them, the transaction is rolled back and runs again without it.
    """
    report = IngestReport()
    valid: list[tuple[int, PreparedEvent]] = []
    for index, document in enumerate(documents):
        try:
            prepared = prepare(document)
        except EventError as error:
            report.rejected.append(Rejection(index, str(error)))
            continue
        if (namespace := forbidden_namespace(principal, prepared.event)) is not None:
            message = f"this token may not write namespace {namespace!r}"
            report.rejected.append(Rejection(index, message, forbidden=True))
            continue
        valid.append((index, prepared))
    if valid and not principal.sees_everything:
        valid = await _without_foreign_aliases(db, principal, valid, report)
    if valid:
        events = [event for _, event in valid]
        outcomes = await (writer.write(events) if writer is not None else write_events(db, events, now))
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, str):
                report.rejected.append(Rejection(index, outcome))
            elif outcome is Written.ACCEPTED:
                report.accepted += 1
            else:
                report.duplicates += 1
    report.rejected.sort(key=lambda rejection: rejection.index)
    return report
