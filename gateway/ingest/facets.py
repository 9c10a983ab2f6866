"""The OpenLineage facets the gateway interprets, typed as the official facet schemas define them.

Facets the gateway does not interpret are kept as they came (any JSON object). Fields a facet schema
marks required are required here too, so an event that breaks them is refused with the field's path.
Values have the JSON types the schema gives them: no coercion (`"5"` is not an integer, `1` is not a string
nor a time). A member whose value is `null` reads as absent, as Marquez (Jackson) reads it: dbt-ol and other
producers write `"stackTrace": null` or `"_deleted": null`; a required field that is `null` is missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError


def _json_integer(value: Any) -> Any:
    # JSON Schema's integer: a number with no fractional part (1.0 counts); never a boolean or a string.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return int(value)


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def _json_string_time(value: Any) -> Any:
    # A time is a string in JSON; pydantic would also read numbers as Unix times.
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be a valid datetime string")
    return value


def without_nulls(value: Any) -> Any:
    """A JSON object without its `null` members (anything else as it is)."""
    # `in` compares in C (JSON values equal None only when they are null): every object of every event passes here.
    if isinstance(value, dict) and None in value.values():
        return {key: item for key, item in value.items() if item is not None}
    return value


Integer = Annotated[int, BeforeValidator(_json_integer)]
Number = Annotated[int | float, BeforeValidator(_json_number)]
Timestamp = Annotated[datetime, BeforeValidator(_json_string_time)]


class Typed(BaseModel):
    """A JSON object of the spec: unknown fields kept, `null` members read as absent."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        return without_nulls(data)


class Facet(Typed):
    # `_producer` and `_schemaURL` are required by the spec, yet producers omit them and Marquez accepts
    # that; keep them when present, never refuse for their absence (but they are strings when present).
    producer_: str | None = Field(default=None, alias="_producer")
    schemaURL_: str | None = Field(default=None, alias="_schemaURL")


class JobOrDatasetFacet(Facet):
    # Job and dataset facets (not run, input or output facets) may carry `_deleted`.
    deleted_: StrictBool | None = Field(default=None, alias="_deleted")


class ParentRun(Typed):
    runId: str = Field(min_length=1, max_length=255)
    # A subset of the parent run's facets, forwarded: each one a run facet.
    facets: Annotated[dict[str, Facet], BeforeValidator(without_nulls)] | None = None


class ParentJob(Typed):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    facets: Annotated[dict[str, JobOrDatasetFacet], BeforeValidator(without_nulls)] | None = None


class ParentRoot(Typed):
    run: ParentRun
    job: ParentJob


class ParentRunFacet(Facet):
    run: ParentRun
    job: ParentJob
    root: ParentRoot | None = None


class ErrorMessageRunFacet(Facet):
    message: str
    programmingLanguage: str
    stackTrace: str | None = None


class NominalTimeRunFacet(Facet):
    nominalStartTime: Timestamp
    nominalEndTime: Timestamp | None = None


class RunFacets(Typed):
    __pydantic_extra__: dict[str, dict[str, Any]]
    parent: ParentRunFacet | None = None
    errorMessage: ErrorMessageRunFacet | None = None
    nominalTime: NominalTimeRunFacet | None = None


class Owner(Typed):
    name: str
    type: str | None = None


class OwnershipFacet(JobOrDatasetFacet):
    owners: list[Owner] | None = None


class DocumentationFacet(JobOrDatasetFacet):
    description: str
    contentType: str | None = None


class EmissionPattern(Typed):
    eventTrigger: str
    eventContentMode: str
    windowDuration: Integer | None = Field(default=None, ge=1)


class JobTypeJobFacet(JobOrDatasetFacet):
    processingType: str
    integration: str
    jobType: str | None = None
    emissionPattern: EmissionPattern | None = None


class SQLJobFacet(JobOrDatasetFacet):
    query: str
    dialect: str | None = None


class TagEntry(Typed):
    key: str
    value: str
    source: str | None = None
    # Dataset tags only: the field of the dataset the tag applies to.
    field: str | None = None


class TagsFacet(JobOrDatasetFacet):
    tags: list[TagEntry] | None = None


class JobFacets(Typed):
    __pydantic_extra__: dict[str, dict[str, Any]]
    documentation: DocumentationFacet | None = None
    jobType: JobTypeJobFacet | None = None
    ownership: OwnershipFacet | None = None
    sql: SQLJobFacet | None = None
    tags: TagsFacet | None = None


class SchemaField(Typed):
    name: str
    type: str | None = None
    description: str | None = None
    ordinal_position: Integer | None = None
    fields: list[SchemaField] | None = None


class SchemaDatasetFacet(JobOrDatasetFacet):
    fields: list[SchemaField] | None = None


class SymlinkIdentifier(Typed):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: str


class SymlinksDatasetFacet(JobOrDatasetFacet):
    identifiers: list[SymlinkIdentifier] | None = None


class DatasetTypeDatasetFacet(JobOrDatasetFacet):
    datasetType: str
    subType: str | None = None


class Transformation(Typed):
    type: str
    subtype: str | None = None
    description: str | None = None
    masking: StrictBool | None = None


class InputField(Typed):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    field: str
    transformations: list[Transformation] | None = None


class ColumnLineageField(Typed):
    inputFields: list[InputField]
    transformationDescription: str | None = None
    transformationType: str | None = None


class ColumnLineageDatasetFacet(JobOrDatasetFacet):
    fields: Annotated[dict[str, ColumnLineageField], BeforeValidator(without_nulls)]
    dataset: list[InputField] | None = None


class PreviousIdentifier(Typed):
    name: str
    namespace: str


class LifecycleStateChangeDatasetFacet(JobOrDatasetFacet):
    lifecycleStateChange: str
    previousIdentifier: PreviousIdentifier | None = None


class DatasetFacets(Typed):
    __pydantic_extra__: dict[str, dict[str, Any]]
    schema_: SchemaDatasetFacet | None = Field(default=None, alias="schema")
    documentation: DocumentationFacet | None = None
    ownership: OwnershipFacet | None = None
    symlinks: SymlinksDatasetFacet | None = None
    datasetType: DatasetTypeDatasetFacet | None = None
    tags: TagsFacet | None = None
    columnLineage: ColumnLineageDatasetFacet | None = None
    lifecycleStateChange: LifecycleStateChangeDatasetFacet | None = None


class ColumnMetrics(Typed):
    nullCount: Integer | None = None
    distinctCount: Integer | None = None
    sum: Number | None = None
    count: Number | None = None
    min: Number | None = None
    max: Number | None = None
    quantiles: Annotated[dict[str, Number], BeforeValidator(without_nulls)] | None = None


class DataQualityMetricsInputDatasetFacet(Facet):
    rowCount: Integer | None = None
    bytes: Integer | None = None
    fileCount: Integer | None = None
    lastUpdated: Timestamp | None = None
    columnMetrics: Annotated[dict[str, ColumnMetrics], BeforeValidator(without_nulls)]


class InputStatisticsInputDatasetFacet(Facet):
    rowCount: Integer | None = None
    size: Integer | None = None
    fileCount: Integer | None = None


class InputDatasetFacets(Typed):
    __pydantic_extra__: dict[str, dict[str, Any]]
    dataQualityMetrics: DataQualityMetricsInputDatasetFacet | None = None
    inputStatistics: InputStatisticsInputDatasetFacet | None = None


class OutputStatisticsOutputDatasetFacet(Facet):
    rowCount: Integer | None = None
    size: Integer | None = None
    fileCount: Integer | None = None


class OutputDatasetFacets(Typed):
    __pydantic_extra__: dict[str, dict[str, Any]]
    outputStatistics: OutputStatisticsOutputDatasetFacet | None = None
