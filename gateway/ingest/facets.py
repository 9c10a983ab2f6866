"""The OpenLineage facets the gateway interprets, typed as the official facet schemas define them.

Facets the gateway does not interpret are kept as they came (any JSON object). Fields a facet schema
marks required are required here too, so an event that breaks them is refused with the field's path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Facet(BaseModel):
    # `_producer` and `_schemaURL` are required by the spec, yet producers omit them and Marquez accepts
    # that; keep them when present, never refuse for their absence.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ParentRun(BaseModel):
    model_config = ConfigDict(extra="allow")
    runId: str = Field(min_length=1, max_length=255)


class ParentJob(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)


class ParentRoot(BaseModel):
    model_config = ConfigDict(extra="allow")
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
    nominalStartTime: datetime
    nominalEndTime: datetime | None = None


class RunFacets(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]]
    parent: ParentRunFacet | None = None
    errorMessage: ErrorMessageRunFacet | None = None
    nominalTime: NominalTimeRunFacet | None = None


class Owner(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str | None = None


class OwnershipFacet(Facet):
    owners: list[Owner] | None = None


class DocumentationFacet(Facet):
    description: str


class JobTypeJobFacet(Facet):
    processingType: str
    integration: str
    jobType: str | None = None


class SQLJobFacet(Facet):
    query: str


class TagEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: str
    value: str
    source: str | None = None


class TagsFacet(Facet):
    tags: list[TagEntry] | None = None


class JobFacets(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]]
    documentation: DocumentationFacet | None = None
    jobType: JobTypeJobFacet | None = None
    ownership: OwnershipFacet | None = None
    sql: SQLJobFacet | None = None
    tags: TagsFacet | None = None


class SchemaField(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str | None = None
    description: str | None = None
    fields: list[SchemaField] | None = None


class SchemaDatasetFacet(Facet):
    fields: list[SchemaField] | None = None


class SymlinkIdentifier(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: str


class SymlinksDatasetFacet(Facet):
    identifiers: list[SymlinkIdentifier] | None = None


class DatasetTypeDatasetFacet(Facet):
    datasetType: str
    subType: str | None = None


class Transformation(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    subtype: str | None = None
    description: str | None = None


class InputField(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    field: str
    transformations: list[Transformation] | None = None


class ColumnLineageField(BaseModel):
    model_config = ConfigDict(extra="allow")
    inputFields: list[InputField]
    transformationDescription: str | None = None
    transformationType: str | None = None


class ColumnLineageDatasetFacet(Facet):
    fields: dict[str, ColumnLineageField]
    dataset: list[InputField] | None = None


class LifecycleStateChangeDatasetFacet(Facet):
    lifecycleStateChange: str


class DatasetFacets(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]]
    schema_: SchemaDatasetFacet | None = Field(default=None, alias="schema")
    documentation: DocumentationFacet | None = None
    ownership: OwnershipFacet | None = None
    symlinks: SymlinksDatasetFacet | None = None
    datasetType: DatasetTypeDatasetFacet | None = None
    tags: TagsFacet | None = None
    columnLineage: ColumnLineageDatasetFacet | None = None
    lifecycleStateChange: LifecycleStateChangeDatasetFacet | None = None


class DataQualityMetricsInputDatasetFacet(Facet):
    rowCount: int | None = None
    bytes: int | None = None
    fileCount: int | None = None
    columnMetrics: dict[str, dict[str, Any]]


class InputStatisticsInputDatasetFacet(Facet):
    rowCount: int | None = None
    size: int | None = None
    fileCount: int | None = None


class InputDatasetFacets(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]]
    dataQualityMetrics: DataQualityMetricsInputDatasetFacet | None = None
    inputStatistics: InputStatisticsInputDatasetFacet | None = None


class OutputStatisticsOutputDatasetFacet(Facet):
    rowCount: int | None = None
    size: int | None = None
    fileCount: int | None = None


class OutputDatasetFacets(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]]
    outputStatistics: OutputStatisticsOutputDatasetFacet | None = None
