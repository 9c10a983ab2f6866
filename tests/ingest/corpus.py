"""The shared OpenLineage corpus, for tests: where it is, what its inventory says, reading event files,
filling templated events with concrete values, and the official JSON-schema verdict on an event.

The corpus lives beside the project (`<root>/../shared/corpus/openlineage`) and is never copied into it.
When it is missing, a test that needs it fails under CI=true and is skipped otherwise.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from rfc3339_validator import validate_rfc3339

from tests.helpers import graphql_data

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".." / "shared" / "corpus" / "openlineage"
IN_CI = os.environ.get("CI") == "true"

# --- where the corpus is -----------------------------------------------------------------------------------


def corpus_present() -> bool:
    return (CORPUS / "inventory.csv").is_file()


def require_corpus() -> Path:
    """The corpus directory; fails under CI=true when it is missing, skips the test otherwise."""
    if not corpus_present():
        message = f"OpenLineage corpus not found at {CORPUS.resolve()}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CORPUS


def params(items: Sequence[Any], ids: Callable[[Any], str]) -> list[Any]:
    """pytest parameters for corpus items; without the corpus one `None` parameter whose test then fails
    (CI) or skips by calling `require_corpus()`."""
    if not corpus_present():
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(item, id=ids(item)) for item in items]


# --- the inventory -----------------------------------------------------------------------------------------

COMPLETE_NATURES = ("captured-real", "hand-authored fixture", "hand-authored seed")


@dataclass(frozen=True)
class InventoryRow:
    path: str
    nature: str
    kind: str
    template: str
    n_events: int
    partial_events: int
    schema_valid: str
    event_types: str

    @property
    def file(self) -> Path:
        return CORPUS / self.path

    @property
    def is_complete(self) -> bool:
        """Holds events (not partial expectations) without template placeholders."""
        return self.n_events > 0 and self.partial_events == 0 and not self.template

    @property
    def all_schema_valid(self) -> bool:
        return self.n_events > 0 and self.schema_valid == f"{self.n_events}/{self.n_events}"

    @property
    def postable_as_is(self) -> bool:
        """A complete, non-templated file of real or hand-written events that all pass the official schema."""
        return (
            self.nature.startswith(COMPLETE_NATURES)
            and not self.template
            and self.partial_events == 0
            and self.all_schema_valid
        )


def _number(text: str) -> int:
    return int(text) if text.strip() else 0


@functools.cache
def inventory() -> tuple[InventoryRow, ...]:
    with (CORPUS / "inventory.csv").open(newline="", encoding="utf-8") as handle:
        return tuple(
            InventoryRow(
                path=row["path"],
                nature=row["nature"],
                kind=row["kind"],
                template=row["template"],
                n_events=_number(row["n_events"]),
                partial_events=_number(row["partial_events"]),
                schema_valid=row["schema_valid"],
                event_types=row["event_types"],
            )
            for row in csv.DictReader(handle)
        )


def inventory_rows(predicate: Callable[[InventoryRow], bool]) -> list[InventoryRow]:
    return [row for row in inventory() if predicate(row)] if corpus_present() else []


# --- reading event files -----------------------------------------------------------------------------------


def read_events(path: Path) -> list[Any]:
    """The events of a file: one JSON event, a JSON array of events, or NDJSON (one event a line)."""
    text = path.read_text(encoding="utf-8").strip()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return document if isinstance(document, list) else [document]


def datasets(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The datasets an event names: inputs, outputs, or the dataset of a DatasetEvent."""
    found = [*(event.get("inputs") or []), *(event.get("outputs") or [])]
    if isinstance(event.get("dataset"), dict):
        found.append(event["dataset"])
    return found


def symlink_keys(dataset: dict[str, Any], kind: str | None = None) -> list[str]:
    """`namespace/name` of each symlink identifier of a dataset (only those of `kind` when given)."""
    identifiers = ((dataset.get("facets") or {}).get("symlinks") or {}).get("identifiers") or []
    return [
        f"{identifier['namespace']}/{identifier['name']}"
        for identifier in identifiers
        if kind is None or str(identifier.get("type", "")).upper() == kind
    ]


# --- filling templates -------------------------------------------------------------------------------------

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/corpus-test"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_JINJA = re.compile(r"^\s*\{\{\s*(?P<body>.*?)\s*\}\}\s*$", re.DOTALL)
_JSON_UNIT = re.compile(r"^\$\{json-unit\.(?P<kind>[a-z-]+)\}(?P<rest>.*)$", re.DOTALL)
_MATCH = re.compile(r"^match\(\s*result\s*,\s*(?P<quote>['\"])(?P<regex>.*)(?P=quote)\s*\)$", re.DOTALL)
_ENV_VAR = re.compile(r"^env_var\(\s*['\"](?P<name>[^'\"]+)['\"]")
_AFTER_MINUTES = re.compile(r"^RUN_END_TIME_AFTER_(?P<minutes>\d+)_MINUTES$")
_INTEGER_KEYS = frozenset({"rowCount", "size", "fileCount", "bytes", "nullCount", "distinctCount", "count"})
_TIME_KEYS = frozenset({"eventTime", "nominalStartTime", "nominalEndTime"})
_URI_KEYS = frozenset({"producer", "_producer", "schemaURL", "_schemaURL"})


def is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(_JINJA.match(value) or _JSON_UNIT.match(value))


def has_placeholders(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_placeholders(item) for item in value.values())
    if isinstance(value, list):
        return any(has_placeholders(item) for item in value)
    return is_placeholder(value)


def example_of(regex: str) -> str:
    """A string the regex matches fully: wildcards become `x`, escapes their character."""
    candidate = re.sub(r"\\(.)", r"\1", re.sub(r"\.[*+]", "x", regex))
    if re.fullmatch(regex, candidate) is None:
        raise ValueError(f"cannot make an example of the regex {regex!r}")
    return candidate


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Filler:
    """Concrete values for placeholders, deterministic for a given seed.

    Run ids are per job: every event of a job (START, COMPLETE...) and every parent or root facet naming that
    job get the same id, the job's literal run id when some event of the list has one. A templated eventTime
    gets a distinct time in list order, so that a list's order is also its time order.
    """

    seed: str
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)

    def uuid(self, *parts: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(("corpus-test", self.seed, *parts))))

    def time(self, seconds: float) -> str:
        return _iso(self.start + timedelta(seconds=seconds))

    def value(self, placeholder: str, path: tuple[str | int, ...], seconds: float) -> Any:
        key = next((part for part in reversed(path) if isinstance(part, str)), "")
        jinja, unit = _JINJA.match(placeholder), _JSON_UNIT.match(placeholder)
        body = jinja.group("body") if jinja else ""
        kind = unit.group("kind") if unit else ""
        if key in _TIME_KEYS or "is_datetime" in body or body == "RUN_START_TIME":
            return self.time(seconds)
        if after := _AFTER_MINUTES.match(body):
            return self.time(seconds + 60 * int(after.group("minutes")))
        if "is_uuid" in body or key == "runId":
            return self.uuid(*map(str, path))
        if key in _INTEGER_KEYS or kind == "any-number":
            return 1
        if kind == "any-boolean":
            return True
        if matched := _MATCH.match(body):
            return example_of(matched.group("regex"))
        if unit and kind == "regex":
            return example_of(unit.group("rest"))
        if env := _ENV_VAR.match(body):
            return f"env-{env.group('name')}"
        if key in _URI_KEYS:
            return PRODUCER
        return f"filled-{key or 'value'}"

    def fill(self, events: Sequence[dict[str, Any]], job_name: str | None = None) -> list[dict[str, Any]]:
        """The events with every placeholder and every field an expectation may leave out (eventTime, producer,
        schemaURL, run.runId, job.name, the parent's run id, a symlink's namespace) given a concrete value;
        the input is left as it was."""
        literal: dict[tuple[str, str], str] = {}
        for event in events:
            run_id = (event.get("run") or {}).get("runId")
            if isinstance(run_id, str) and not is_placeholder(run_id):
                literal.setdefault(_job_of(event.get("job") or {}, job_name), run_id)

        def run_id_for(job: dict[str, Any]) -> str:
            key = _job_of(job, job_name)
            return literal.setdefault(key, self.uuid("run", *key))

        filled = []
        for position, original in enumerate(events):
            event = copy.deepcopy(original)
            if "job" in event:
                if "name" not in event["job"] and job_name is not None:
                    event["job"]["name"] = job_name
                run = event.setdefault("run", {})
                if not isinstance(run.get("runId"), str) or is_placeholder(run["runId"]):
                    run["runId"] = run_id_for(event["job"])
                parent = (run.get("facets") or {}).get("parent")
                if isinstance(parent, dict):
                    for holder in (parent, parent.get("root")):
                        if isinstance(holder, dict) and isinstance(holder.get("job"), dict):
                            parent_run = holder.setdefault("run", {})
                            if not isinstance(parent_run.get("runId"), str) or is_placeholder(parent_run["runId"]):
                                parent_run["runId"] = run_id_for(holder["job"])
            for dataset in datasets(event):
                # Expectations may leave out a symlink's namespace: the dataset's own stands in.
                for identifier in ((dataset.get("facets") or {}).get("symlinks") or {}).get("identifiers") or []:
                    identifier.setdefault("namespace", dataset.get("namespace"))
            if "eventTime" not in event:
                event["eventTime"] = self.time(position)
            event.setdefault("producer", PRODUCER)
            event.setdefault("schemaURL", SCHEMA_URL)
            filled.append(self._replace(event, (), position))
        return filled

    def _replace(self, value: Any, path: tuple[str | int, ...], position: int) -> Any:
        if isinstance(value, dict):
            return {key: self._replace(item, (*path, key), position) for key, item in value.items()}
        if isinstance(value, list):
            return [self._replace(item, (*path, index), position) for index, item in enumerate(value)]
        if is_placeholder(value):
            return self.value(value, path, position)
        return value


def _job_of(job: dict[str, Any], default_name: str | None) -> tuple[str, str]:
    return (str(job.get("namespace", "")), str(job.get("name", default_name or "")))


# --- the official JSON schema ------------------------------------------------------------------------------

CORE_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
BRANCHES = ("RunEvent", "DatasetEvent", "JobEvent")
# Facet kinds, most specific first: "InputDatasetFacet" also ends with "DatasetFacet".
FACET_KINDS = ("InputDatasetFacet", "OutputDatasetFacet", "DatasetFacet", "JobFacet", "RunFacet")
LENIENT_TIME = "date-time-zone-optional"
LENIENT_NOMINAL_TIME = "date-or-date-time-zone-optional"

Path_ = tuple[str | int, ...]


def gateway_path(path: Path_) -> str:
    """`("outputs", 0, "facets", "ownership")` -> `outputs[0].facets.ownership`, as the gateway names fields."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def facet_kind(definition: str) -> str | None:
    return next((kind for kind in FACET_KINDS if definition.endswith(kind)), None)


def facet_location(path: Path_) -> tuple[str, str] | None:
    """(facet kind, facet key) when the path lies inside (or is) a facet of an event; None for the envelope.

    Only the outermost facet counts: facets nested in a parent facet belong to the parent facet.
    """
    if len(path) >= 3 and path[0] in ("run", "job") and path[1] == "facets":
        return ("RunFacet" if path[0] == "run" else "JobFacet", str(path[2]))
    if len(path) >= 3 and path[0] == "dataset" and path[1] == "facets":
        return ("DatasetFacet", str(path[2]))
    if len(path) >= 4 and path[0] in ("inputs", "outputs") and isinstance(path[1], int):
        container = {"facets": "DatasetFacet", "inputFacets": "InputDatasetFacet", "outputFacets": "OutputDatasetFacet"}
        if path[2] in container:
            return (container[str(path[2])], str(path[3]))
    return None


def facet_containers(event: dict[str, Any]) -> Iterator[tuple[Path_, str, Any]]:
    """(path, facet kind, container) of every facets object of an event."""
    for part, kind in (("run", "RunFacet"), ("job", "JobFacet")):
        holder = event.get(part)
        if isinstance(holder, dict) and "facets" in holder:
            yield (part, "facets"), kind, holder["facets"]
    if isinstance(event.get("dataset"), dict) and "facets" in event["dataset"]:
        yield ("dataset", "facets"), "DatasetFacet", event["dataset"]["facets"]
    for role, own in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        items = event.get(role)
        if not isinstance(items, list):
            continue
        for index, dataset in enumerate(items):
            if not isinstance(dataset, dict):
                continue
            if "facets" in dataset:
                yield (role, index, "facets"), "DatasetFacet", dataset["facets"]
            if own in dataset:
                yield (role, index, own), _kind(own), dataset[own]


def _kind(container: str) -> str:
    return {"inputFacets": "InputDatasetFacet", "outputFacets": "OutputDatasetFacet"}[container]


@dataclass(frozen=True)
class Problem:
    """One reason the official schema refuses an event."""

    path: Path_
    message: str
    facet: tuple[str, str] | None
    validator: str

    @property
    def where(self) -> str:
        return gateway_path(self.path)

    @property
    def in_envelope(self) -> bool:
        """Outside every facet, or the core's rule that a facet is an object."""
        if self.facet is None:
            return True
        return self.validator == "type" and facet_location(self.path[:-1]) is None


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if error.context:
        for child in error.context:
            yield from _leaves(child)
    else:
        yield error


def _problem(error: ValidationError, prefix: Path_ = ()) -> Problem:
    path: Path_ = (*prefix, *error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path = (*path, missing[0])
    return Problem(path, error.message, facet_location(path), str(error.validator))


def _walk(value: Any, visit: Callable[[Any], None]) -> None:
    visit(value)
    if isinstance(value, dict):
        for item in value.values():
            _walk(item, visit)
    elif isinstance(value, list):
        for item in value:
            _walk(item, visit)


def _lenient(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the gateway's deliberate leniencies: no `schemaURL` needed, facets need no
    `_producer`/`_schemaURL`, run ids need not be UUIDs, `eventTime` may lack a time zone; and nominal times
    may be plain dates or lack a time zone. (The last leniency, `null` members read as absent, is applied to
    the event: see `OfficialSchema.prepare`.)"""
    schema = copy.deepcopy(schema)
    definitions = schema.get("$defs", {})
    if "BaseEvent" in definitions:
        base = definitions["BaseEvent"]
        base["required"] = [name for name in base["required"] if name != "schemaURL"]
        base["properties"]["eventTime"]["format"] = LENIENT_TIME
    if "BaseFacet" in definitions:
        definitions["BaseFacet"]["required"] = []
    if "NominalTimeRunFacet" in definitions:
        # Not in the gateway's list of leniencies, but the corpus needs it: the official Python client's own
        # serde example (schema-valid in the inventory, where `format` is an annotation) sends plain dates.
        for name, field in definitions["NominalTimeRunFacet"]["allOf"][1]["properties"].items():
            if name in ("nominalStartTime", "nominalEndTime"):
                field["format"] = LENIENT_NOMINAL_TIME

    def relax_run_ids(node: Any) -> None:
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            run_id = node["properties"].get("runId")
            if isinstance(run_id, dict) and run_id.get("format") == "uuid":
                del run_id["format"]

    _walk(schema, relax_run_ids)
    return schema


def _facet_schemas() -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted((CORPUS / "spec" / "facets").glob("*.json"))
    ]


class OfficialSchema:
    """The official verdict on an event: the core schema (one of RunEvent, DatasetEvent, JobEvent) and,
    for each facets object, every facet schema that names the facet's key for that kind of facet."""

    def __init__(self, lenient: bool = True) -> None:
        self.lenient = lenient
        core = json.loads((CORPUS / "spec" / "OpenLineage.json").read_text(encoding="utf-8"))
        facets = _facet_schemas()
        if lenient:
            core, facets = _lenient(core), [_lenient(schema) for schema in facets]
        registry: Registry = Registry().with_resources(
            (schema["$id"], Resource.from_contents(schema)) for schema in (core, *facets)
        )
        checker = FormatChecker()
        checker.checks(LENIENT_TIME)(_date_time_zone_optional)
        checker.checks(LENIENT_NOMINAL_TIME)(_date_or_date_time_zone_optional)
        self.core = Draft202012Validator(core, registry=registry, format_checker=checker)
        self.branches = {
            name: Draft202012Validator({"$ref": f"{CORE_ID}#/$defs/{name}"}, registry=registry, format_checker=checker)
            for name in BRANCHES
        }
        # facet key -> [(kind, validator of {key: facet})]
        self.facets: dict[str, list[tuple[str, Draft202012Validator]]] = {}
        for schema in facets:
            validator = Draft202012Validator(schema, registry=registry, format_checker=checker)
            for key, definition in schema.get("properties", {}).items():
                for kind in _kinds_of(definition):
                    self.facets.setdefault(key, []).append((kind, validator))

    def kinds(self, key: str) -> set[str]:
        return {kind for kind, _ in self.facets.get(key, [])}

    def prepare(self, event: Any) -> Any:
        """The event as the lenient reading sees it: object members that are `null` are absent."""
        return drop_nulls(event) if self.lenient else event

    def branch_problems(self, event: Any, branch: str) -> list[Problem]:
        event = self.prepare(event)
        return [_problem(leaf) for error in self.branches[branch].iter_errors(event) for leaf in _leaves(error)]

    def facet_problems(self, event: Any) -> list[Problem]:
        event = self.prepare(event)
        if not isinstance(event, dict):
            return []
        problems = []
        for path, kind, container in facet_containers(event):
            if not isinstance(container, dict):
                continue
            for key, facet in container.items():
                for facet_kind_, validator in self.facets.get(key, []):
                    if facet_kind_ == kind:
                        problems.extend(
                            _problem(leaf, path)
                            for error in validator.iter_errors({key: facet})
                            for leaf in _leaves(error)
                        )
        return problems

    def verdict(self, event: Any, relevant: Callable[[Problem], bool] = lambda _: True) -> bool:
        """True when the event is valid, counting only the relevant problems."""
        valid_branches = [
            branch
            for branch in BRANCHES
            if not any(relevant(problem) for problem in self.branch_problems(event, branch))
        ]
        if len(valid_branches) != 1:
            return False
        return not any(relevant(problem) for problem in self.facet_problems(event))

    def problems(self, event: Any) -> list[Problem]:
        """Why the event is refused, read as the branch its top-level fields announce."""
        event = self.prepare(event)
        branch = "RunEvent"
        if isinstance(event, dict) and "run" not in event:
            branch = "DatasetEvent" if "dataset" in event else "JobEvent" if "job" in event else "RunEvent"
        return [*self.branch_problems(event, branch), *self.facet_problems(event)]


def drop_nulls(value: Any) -> Any:
    """The value with every `null` member of every object left out (array items stay)."""
    if isinstance(value, dict):
        return {key: drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [drop_nulls(item) for item in value]
    return value


def _kinds_of(definition: dict[str, Any]) -> set[str]:
    references = [definition.get("$ref")] + [option.get("$ref") for option in definition.get("anyOf", [])]
    return {kind for reference in references if reference and (kind := facet_kind(reference)) is not None}


def _date_time_zone_optional(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return validate_rfc3339(value) or validate_rfc3339(value + "Z")


def _date_or_date_time_zone_optional(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return _date_time_zone_optional(value) or validate_rfc3339(value + "T00:00:00Z")


@functools.cache
def official_schema(lenient: bool = True) -> OfficialSchema:
    return OfficialSchema(lenient)


# --- asking the gateway (over its HTTP API, as a client would) ---------------------------------------------

ALIASES_PER_QUERY = 20  # below the gateway's alias limit (30 by default)

Edge = tuple[str, str]
_JSON = {"content-type": "application/json"}


async def post_json(client: httpx.AsyncClient, payload: Any) -> httpx.Response:
    return await client.post("/api/v1/lineage", content=json.dumps(payload), headers=_JSON)


async def post_file(client: httpx.AsyncClient, path: Path) -> httpx.Response:
    """POST a corpus file exactly as it is (NDJSON with its own content type)."""
    data = _read_bytes(path)
    headers = _JSON
    try:
        json.loads(data)
    except json.JSONDecodeError:
        headers = {"content-type": "application/x-ndjson"}
    return await client.post("/api/v1/lineage", content=data, headers=headers)


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


async def _aliased(
    client: httpx.AsyncClient, field: str, argument: str, values: Sequence[str], selection: str, extra: str = ""
) -> dict[str, Any]:
    """`field(argument: value) {selection}` for each value, a few per request; value -> answer."""
    answers: dict[str, Any] = {}
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), ALIASES_PER_QUERY):
        chunk = unique[start : start + ALIASES_PER_QUERY]
        variables = {f"v{index}": value for index, value in enumerate(chunk)}
        declared = ", ".join(f"${name}: String!" for name in variables)
        fields = " ".join(f"{name}: {field}({argument}: ${name}{extra}) {selection}" for name in variables)
        data = await graphql_data(client, f"query({declared}) {{ {fields} }}", variables)
        answers.update({value: data[name] for name, value in variables.items()})
    return answers


async def assets_by_key(client: httpx.AsyncClient, keys: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each key -> the asset it names (by key or alias) as {key, aliases}, or None."""
    return await _aliased(client, "asset", "key", keys, "{ key aliases }")


async def executions_by_run_id(client: httpx.AsyncClient, run_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    selection = (
        "{ runId state eventTime job { namespace name } parent { runId } "
        "inputs { asset { key } } outputs { asset { key } } }"
    )
    return await _aliased(client, "execution", "runId", run_ids, selection)


async def all_asset_keys(client: httpx.AsyncClient) -> list[str]:
    keys: list[str] = []
    after: str | None = None
    while True:
        data = await graphql_data(
            client,
            "query($after: String) { assets(first: 500, after: $after) "
            "{ totalCount nodes { key } pageInfo { hasNextPage endCursor } } }",
            {"after": after},
        )
        page = data["assets"]
        keys.extend(node["key"] for node in page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            assert len(keys) == page["totalCount"]
            return keys
        after = page["pageInfo"]["endCursor"]


async def lineage_edges(client: httpx.AsyncClient) -> dict[Edge, set[tuple[str, str]]]:
    """Every live lineage edge of the graph (upstream key, downstream key) -> the (namespace, name) of its jobs:
    the union of the edges next to each asset."""
    keys = await all_asset_keys(client)
    selection = "{ truncated edges { upstreamKey downstreamKey jobs { namespace name } } }"
    # One hop with a node limit that keeps the request under the query cost limit; `truncated` proves it enough.
    graphs = await _aliased(client, "lineage", "key", keys, selection, ", direction: BOTH, depth: 1, limit: 200")
    edges: dict[Edge, set[tuple[str, str]]] = {}
    for key, graph in graphs.items():
        assert not graph["truncated"], f"more than 200 neighbours around {key}"
        for edge in graph["edges"]:
            jobs = edges.setdefault((edge["upstreamKey"], edge["downstreamKey"]), set())
            jobs.update((job["namespace"], job["name"]) for job in edge["jobs"])
    return edges


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    """What GraphQL shows of the whole store: every asset, execution and job with their attributes."""
    queries = {
        "assets": (
            "assets(first: 500, after: $after, filter: {includeDeleted: true}) { totalCount nodes { key namespace "
            "name type description owners tags metadata aliases lastStatus lastMaterializedAt updatedAt "
            "schema { name type } } pageInfo { hasNextPage endCursor } }"
        ),
        "executions": (
            "executions(first: 500, after: $after) { nodes { runId state eventTime startedAt endedAt facets "
            "errorMessage job { namespace name } parent { runId } inputs { asset { key } facets } "
            "outputs { asset { key } facets } } pageInfo { hasNextPage endCursor } }"
        ),
        "jobs": (
            "jobs(first: 500, after: $after) { nodes { namespace name type description metadata } "
            "pageInfo { hasNextPage endCursor } }"
        ),
    }
    found: dict[str, Any] = {}
    for name, query in queries.items():
        nodes: list[Any] = []
        after: str | None = None
        while True:
            page = (await graphql_data(client, f"query($after: String) {{ {query} }}", {"after": after}))[name]
            nodes.extend(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        found[name] = nodes
    return found
