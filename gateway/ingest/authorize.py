"""Which namespaces an OpenLineage event writes, and whether the caller may write them all."""

from __future__ import annotations

from collections.abc import Iterator

from gateway.auth import Principal
from gateway.ingest.events import Dataset, DatasetEvent, Event, JobEvent, RunEvent
from gateway.keys import join_key


def _dataset_namespaces(dataset: Dataset) -> Iterator[str]:
    yield dataset.namespace
    symlinks = dataset.facets.symlinks
    # A symlink may make the table its key: it is written as much as the dataset named in the event.
    for identifier in (symlinks.identifiers or []) if symlinks else []:
        yield identifier.namespace


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
    keys: set[str] = set()
    for dataset in datasets:
        keys.add(join_key(dataset.namespace, dataset.name))
        symlinks = dataset.facets.symlinks
        for identifier in (symlinks.identifiers or []) if symlinks else []:
            keys.add(join_key(identifier.namespace, identifier.name))
    return keys


def forbidden_namespace(principal: Principal, event: Event) -> str | None:
    """The first namespace of the event the caller may not write, or None when it may write them all."""
    if principal.sees_everything:
        return None
    return next((ns for ns in sorted(event_namespaces(event)) if not principal.grants.matches(ns)), None)
