"""The OpenLineage envelope (RunEvent, DatasetEvent, JobEvent; spec 1-0-x and 2-0-x), parsed in one pass.

Lenient where real producers are (no `schemaURL`, times without a zone, run ids that are not UUIDs),
strict on structure: a broken event yields `EventError` naming the field and the problem.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from gateway.ingest.facets import (
    DatasetFacets,
    InputDatasetFacets,
    JobFacets,
    OutputDatasetFacets,
    RunFacets,
    Timestamp,
    Typed,
    without_nulls,
)


class EventType(StrEnum):
    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    ABORT = "ABORT"
    FAIL = "FAIL"
    OTHER = "OTHER"


_Strict = Typed


class Run(_Strict):
    runId: str = Field(min_length=1, max_length=255)
    facets: RunFacets = Field(default_factory=RunFacets)


class Job(_Strict):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    facets: JobFacets = Field(default_factory=JobFacets)


class Dataset(_Strict):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    facets: DatasetFacets = Field(default_factory=DatasetFacets)


class InputDataset(Dataset):
    inputFacets: InputDatasetFacets = Field(default_factory=InputDatasetFacets)


class OutputDataset(Dataset):
    outputFacets: OutputDatasetFacets = Field(default_factory=OutputDatasetFacets)


def _utc(moment: datetime) -> datetime:
    # Marquez reads a time without a zone as UTC, and so do we.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Event(_Strict):
    eventTime: Timestamp
    producer: str = Field(min_length=1)
    schemaURL: str | None = None

    @field_validator("eventTime")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class RunEvent(_Event):
    eventType: EventType | None = None
    run: Run
    job: Job
    inputs: list[InputDataset] | None = None
    outputs: list[OutputDataset] | None = None


class DatasetEvent(_Event):
    dataset: Dataset


class JobEvent(_Event):
    job: Job
    # The spec types a JobEvent's datasets as a RunEvent's: input and output facets included.
    inputs: list[InputDataset] | None = None
    outputs: list[OutputDataset] | None = None


Event = RunEvent | DatasetEvent | JobEvent

_RUN_EVENT = TypeAdapter(RunEvent)
_DATASET_EVENT = TypeAdapter(DatasetEvent)
_JOB_EVENT = TypeAdapter(JobEvent)


class EventError(ValueError):
    """Why an event was refused: the path of the first bad field and the problem."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.problem = message


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _first_error(error: ValidationError) -> EventError:
    detail = error.errors(include_url=False)[0]
    location = tuple(part for part in detail["loc"] if part not in ("function-after",))
    message = detail["msg"]
    if detail["type"] == "missing":
        message = "is required"
    elif "input" in detail and detail["type"] not in ("missing",):
        try:
            shown = orjson.dumps(detail["input"]).decode()
        except TypeError:
            # orjson writes no integer beyond 64 bits (a document read by another JSON parser may hold one).
            shown = repr(detail["input"])
        message = f"{detail['msg'].rstrip('.')} (got {shown[:80]})"
    return EventError(message, _path(location))


def parse_event(document: Any) -> Event:
    """One decoded JSON value -> a typed event, or EventError."""
    if not isinstance(document, dict):
        raise EventError(f"an event must be a JSON object, got {type(document).__name__}")
    document = without_nulls(document)
    # As the spec's oneOf decides: a RunEvent has `run` and `job`, a DatasetEvent `dataset` (and not both `job`
    # and `run`), a JobEvent `job` and no `run`, whatever else it carries (`eventType` included).
    try:
        if "run" in document and ("job" in document or "dataset" not in document):
            return _RUN_EVENT.validate_python(document)
        if "dataset" in document:
            return _DATASET_EVENT.validate_python(document)
        if "job" in document:
            return _JOB_EVENT.validate_python(document)
        if "eventType" in document:
            # A run's event without `run` nor `job`: say what is missing.
            return _RUN_EVENT.validate_python(document)
    except ValidationError as error:
        raise _first_error(error) from None
    raise EventError("not an OpenLineage event: expected `run` (RunEvent), `dataset` or `job`")
