"""Which namespaces an OpenLineage event writes, and whether the caller may write them all."""

from __future__ import annotations

from collections.abc import Iterator

from gateway.auth import Principal
from gateway.ingest.events import Dataset, DatasetEvent, Event, JobEvent, RunEvent
from gateway.keys import join_key


def _named_datasets(dataset: Dataset) -> Iterator[tuple[str, str]]:
    """(namespace, name) of every asset a dataset of the event may create or change."""
    yield dataset.namespace, dataset.name
    symlinks = dataset.facets.symlinks
    # A symlink may make the table its key: it is written as much as the dataset named in the event.
    for identifier in (symlinks.identifiers or []) if symlinks else []:
        yield identifier.namespace, identifier.name
    # Column lineage names its source datasets, which are created when unknown.
    columns = dataset.facets.columnLineage
    if columns is not None:
        for column in columns.fields.values():
            for source in column.inputFields:
                yield source.namespace, source.name
        for source in columns.dataset or ():
            yield source.namespace, source.name


def _dataset_namespaces(dataset: Dataset) -> Iterator[str]:
    for namespace, _ in _named_datasets(dataset):
        yield namespace


def event_namespaces(event: Event) -> set[str]:
    """Every namespace the event creates or changes rows in: its job, parent jobs, datasets and symlinks."""
    namespaces: set[str] = set()
    if isinstance(event, DatasetEvent):
        namespaces.update(_dataset_namespaces(event.dataset))
        return namespaces
    namespaces.add(event.job.namespace)
    for dataset in (*(event.inputs or ()), *(event.outputs or ())):
        namespaces.update(_dataset_namespaces(dataset))
    if isinstance(event, RunEvent) and (parent := event.run.facets.parent) is not None:
        namespaces.add(parent.job.namespace)
        if parent.root is not None:
            namespaces.add(parent.root.job.namespace)
    assert isinstance(event, RunEvent | JobEvent)
    return namespaces


def event_dataset_keys(event: Event) -> set[str]:
    """The asset keys the event names (before alias resolution), symlinks included."""
    datasets = [event.dataset] if isinstance(event, DatasetEvent) else [*(event.inputs or ()), *(event.outputs or ())]
    return {join_key(namespace, name) for dataset in datasets for namespace, name in _named_datasets(dataset)}


def forbidden_namespace(principal: Principal, event: Event) -> str | None:
    """The first namespace of the event the caller may not write, or None when it may write them all."""
    if principal.sees_everything:
        return None
    return next((ns for ns in sorted(event_namespaces(event)) if not principal.grants.matches(ns)), None)
