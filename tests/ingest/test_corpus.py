"""Real OpenLineage events from other projects, posted to the gateway as they are, on SQLite and Postgres.

Expectations come from the files themselves: every dataset an event names is an asset (its key
`namespace/name`, or that key an alias of the asset a TABLE symlink names), every run is an execution of its
job, and posting the same file again changes nothing. Deliberately invalid files are refused with the path of
the field the official JSON schema refuses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.ingest.corpus import (
    InventoryRow,
    all_asset_keys,
    assets_by_key,
    datasets,
    executions_by_run_id,
    inventory_rows,
    official_schema,
    params,
    post_file,
    read_events,
    require_corpus,
    state,
    symlink_keys,
)

# More files than this are sampled (deterministically, spread over the inventory) to keep the run short.
MAX_FILES = 100
POSTABLE = inventory_rows(lambda row: row.postable_as_is)
SAMPLED = POSTABLE if len(POSTABLE) <= MAX_FILES else POSTABLE[:: -(-len(POSTABLE) // MAX_FILES)]

INVALID = [
    "openlineage-fluentd-proxy/events/event_invalid_dataset_facet.json",
    "openlineage-fluentd-proxy/events/event_invalid_input_dataset_facet.json",
    "openlineage-fluentd-proxy/events/event_invalid_job_facet.json",
    "openlineage-fluentd-proxy/events/event_invalid_output_dataset_facet.json",
    "openlineage-fluentd-proxy/events/event_invalid_run_facet.json",
    "openlineage-fluentd-proxy/events/event_no_run_id.json",
]
# Marquez accepts these though the strict schema does not (no schemaURL, no time zone) or barely does.
LENIENT = [
    "marquez/api-test-resources/open_lineage/event_without_schema_url.json",
    "marquez/api-test-resources/open_lineage/event_required_no_timezone.json",
    "marquez/api-test-resources/open_lineage/event_required_nanoseconds.json",
    "marquez/api-test-resources/open_lineage/event_required_only.json",
]
ERROR_PREFIX = "invalid OpenLineage event: "


def _key(dataset: dict[str, Any]) -> str:
    return f"{dataset['namespace']}/{dataset['name']}"


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    # The gateway reads a time without a zone as UTC (as Marquez does).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _same_instant(reported: str, sent: str) -> bool:
    # Sub-microsecond digits (nanoseconds) cannot be kept by a datetime.
    sent = re.sub(r"(\.\d{6})\d+", r"\1", sent)
    return _time(reported) == _time(sent)


TERMINAL = {"COMPLETE", "FAIL", "ABORT"}


class Shown:
    """Checks, after each posted file, that GraphQL shows what the events posted so far describe."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.runs: dict[str, list[dict[str, Any]]] = {}

    async def check(self, events: list[dict[str, Any]], origin: str) -> None:
        resolved = await self._assets(events, origin)
        run_events = [event for event in events if "run" in event]
        for event in run_events:
            self.runs.setdefault(event["run"]["runId"], []).append(event)
        run_ids = list(dict.fromkeys(event["run"]["runId"] for event in run_events))
        executions = await executions_by_run_id(self.client, run_ids)
        for run_id in run_ids:
            execution = executions[run_id]
            assert execution is not None, f"{origin}: no execution {run_id}"
            self._check_run(execution, self.runs[run_id], resolved, f"{origin}: run {run_id}")

    async def _assets(self, events: list[dict[str, Any]], origin: str) -> dict[str, str]:
        """Each dataset is an asset, known by its own key (an alias when a TABLE symlink names the asset) and by
        every symlink; returns dataset key -> asset key."""
        all_datasets = [dataset for event in events for dataset in datasets(event)]
        lookups = [_key(dataset) for dataset in all_datasets]
        lookups += [key for dataset in all_datasets for key in symlink_keys(dataset)]
        assets = await assets_by_key(self.client, lookups)
        resolved: dict[str, str] = {}
        for dataset in all_datasets:
            own = _key(dataset)
            asset = assets[own]
            assert asset is not None, f"{origin}: no asset for dataset {own}"
            tables = symlink_keys(dataset, "TABLE")
            if tables:
                assert asset["key"] in tables, f"{origin}: {own} has TABLE symlinks {tables}, asset is {asset['key']}"
                assert own in asset["aliases"], f"{origin}: {own} is not an alias of {asset['key']}"
            else:
                assert asset["key"] == own, f"{origin}: dataset {own} is asset {asset['key']}"
            for other in symlink_keys(dataset):
                named = assets[other]
                assert named is not None, f"{origin}: symlink {other} of {own} names no asset"
                assert named["key"] == asset["key"], f"{origin}: symlink {other} names {named['key']}"
            resolved[own] = asset["key"]
        return resolved

    def _check_run(
        self, execution: dict[str, Any], history: list[dict[str, Any]], resolved: dict[str, str], where: str
    ) -> None:
        jobs = {(event["job"]["namespace"], event["job"]["name"]) for event in history}
        assert (execution["job"]["namespace"], execution["job"]["name"]) in jobs, f"{where}: job {execution['job']}"
        states = {event.get("eventType") or "OTHER" for event in history}
        # Terminal states win over START and RUNNING, whatever the order of arrival.
        assert execution["state"] in (states & TERMINAL or states), f"{where}: {execution['state']} not of {states}"
        latest = max(history, key=lambda event: _time(event["eventTime"]))
        assert _same_instant(execution["eventTime"], latest["eventTime"]), f"{where}: {execution['eventTime']}"
        named = [(event["run"].get("facets") or {}).get("parent") for event in history]
        parents = {parent["run"]["runId"] for parent in named if parent} - {execution["runId"]}
        if parents:
            assert execution["parent"] is not None, f"{where}: no parent, expected one of {parents}"
            assert execution["parent"]["runId"] in parents, f"{where}: parent"
        for role in ("inputs", "outputs"):
            shown = {touch["asset"]["key"] for touch in execution[role]}
            sent = {resolved.get(_key(d), _key(d)) for event in history for d in event.get(role) or []}
            assert sent <= shown, f"{where}: {role} {sorted(sent - shown)} missing"


def _groups() -> dict[str, list[InventoryRow]]:
    grouped: dict[str, list[InventoryRow]] = {}
    for row in SAMPLED:
        grouped.setdefault(row.path.rsplit("/", 1)[0], []).append(row)
    return grouped


@pytest.mark.parametrize("group", params(sorted(_groups().items()), lambda item: item[0]))
async def test_valid_corpus_files_are_accepted_and_shown(
    client: httpx.AsyncClient, group: tuple[str, list[InventoryRow]] | None
) -> None:
    """The files of one folder (often the events of related runs), posted one by one in a fresh database."""
    require_corpus()
    assert group is not None
    _, rows = group
    shown = Shown(client)
    for row in rows:
        events = read_events(row.file)
        assert len(events) == row.n_events, row.path
        response = await post_file(client, row.file)
        assert response.status_code == 201, f"{row.path}: {response.text}"
        report = response.json()
        assert report["rejected"] == [], f"{row.path}: {report}"
        assert report["accepted"] == len(events), f"{row.path}: {report}"
        await shown.check(events, row.path)

    before = await state(client)
    for row in rows:
        again = await post_file(client, row.file)
        assert again.status_code == 201, f"{row.path}: {again.text}"
        assert again.json() == {"accepted": 0, "duplicates": row.n_events, "rejected": []}, row.path
    after = await state(client)
    assert len(after["assets"]) == len(before["assets"])
    assert len(after["executions"]) == len(before["executions"])
    assert after == before, "posting the files again changed what the gateway shows"


def test_enough_corpus_files_are_posted() -> None:
    require_corpus()
    assert len(POSTABLE) >= 50, [row.path for row in POSTABLE]
    assert len(SAMPLED) <= MAX_FILES
    natures = {row.nature.split(" (")[0] for row in SAMPLED}
    assert {"captured-real", "hand-authored fixture"} <= natures, natures


async def test_invalid_fixtures_are_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    """Each deliberately invalid fixture: 400, naming a field the official schema refuses (one database for
    all: nothing of them may be stored)."""
    corpus = require_corpus()
    wrong = []
    for path in INVALID:
        (event,) = read_events(corpus / path)
        problems = official_schema().problems(event)
        assert problems, f"{path} is meant to be invalid, yet the official schema accepts it"
        expected = sorted({problem.where for problem in problems})
        response = await post_file(client, corpus / path)
        message = response.json().get("error", "") if response.status_code == 400 else response.text
        named = message[len(ERROR_PREFIX) :].split(": ", 1)[0] if message.startswith(ERROR_PREFIX) else None
        if response.status_code != 400 or named not in expected:
            wrong.append(f"{path}: {response.status_code} {message!r}; the official schema refuses {expected}")
    assert not wrong, "\n".join(wrong)
    assert await all_asset_keys(client) == [], "a refused event left assets behind"


async def test_marquez_lenient_fixtures_are_accepted(client: httpx.AsyncClient) -> None:
    """Marquez accepts these though the strict schema refuses some (no schemaURL, no time zone)."""
    corpus = require_corpus()
    shown = Shown(client)
    for path in LENIENT:
        events = read_events(corpus / path)
        response = await post_file(client, corpus / path)
        assert response.status_code == 201, f"{path}: {response.text}"
        assert response.json() == {"accepted": len(events), "duplicates": 0, "rejected": []}, path
        await shown.check(events, path)
