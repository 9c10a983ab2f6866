"""The gateway's typed models agree with the official OpenLineage JSON schema.

The official verdict comes from `spec/OpenLineage.json` (core 2-0-2) and every `spec/facets/*.json`, with the
gateway's deliberate leniencies taken out on the schema side (see `corpus.OfficialSchema`). The gateway's
verdict is whether `parse_event` accepts the event. They must agree on every complete corpus event and on
mutations of valid events: a deleted field, a value of the wrong JSON type, an unknown extra field, anywhere
in the envelope or in a facet the gateway interprets. Facets the gateway keeps as opaque JSON are out of scope:
problems inside them do not count.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ingest.events import EventError, parse_event
from gateway.ingest.facets import DatasetFacets, InputDatasetFacets, JobFacets, OutputDatasetFacets, RunFacets
from tests.ingest.corpus import (
    CORPUS,
    FACET_KINDS,
    Filler,
    InventoryRow,
    Path_,
    Problem,
    facet_containers,
    facet_kind,
    facet_location,
    gateway_path,
    has_placeholders,
    inventory,
    inventory_rows,
    official_schema,
    params,
    read_events,
    require_corpus,
)

# The facets the gateway types, by facet kind: the fields its facet containers declare.
INTERPRETED: dict[str, frozenset[str]] = {
    kind: frozenset(field.alias or name for name, field in model.model_fields.items())
    for kind, model in (
        ("RunFacet", RunFacets),
        ("JobFacet", JobFacets),
        ("DatasetFacet", DatasetFacets),
        ("InputDatasetFacet", InputDatasetFacets),
        ("OutputDatasetFacet", OutputDatasetFacets),
    )
}
# The facets the gateway is meant to interpret (the brief of this test).
MEANT_TO_INTERPRET = {
    "parent",
    "errorMessage",
    "nominalTime",
    "ownership",
    "documentation",
    "jobType",
    "sql",
    "tags",
    "schema",
    "symlinks",
    "datasetType",
    "columnLineage",
    "lifecycleStateChange",
    "dataQualityMetrics",
    "inputStatistics",
    "outputStatistics",
}
# Where a facet example of each kind goes in an event.
CONTAINER_OF_KIND: dict[str, Path_] = {
    "RunFacet": ("run", "facets"),
    "JobFacet": ("job", "facets"),
    "DatasetFacet": ("outputs", 0, "facets"),
    "InputDatasetFacet": ("inputs", 0, "inputFacets"),
    "OutputDatasetFacet": ("outputs", 0, "outputFacets"),
}
# A plain RunEvent with inputs and outputs and no facets, to carry facet examples.
CARRIER = "marquez/api-test-resources/open_lineage/event_simple.json"
SAMPLES_PER_FACET = 4
# Objects whose keys are names (facets by key, columns by name...), not fields of a record.
MAP_KEYS = frozenset({"facets", "inputFacets", "outputFacets", "fields", "columnMetrics", "quantiles"})


def relevant(problem: Problem) -> bool:
    """A problem the gateway is expected to see: in the envelope or in a facet it interprets."""
    return problem.in_envelope or problem.facet[1] in INTERPRETED.get(problem.facet[0], frozenset())


def gateway_verdict(event: Any) -> tuple[bool, str]:
    try:
        parse_event(event)
    except EventError as error:
        return False, str(error)
    return True, ""


def explain(event: Any) -> str:
    problems = [problem for problem in official_schema().problems(event) if relevant(problem)]
    shown = "; ".join(f"{problem.where}: {problem.message[:120]}" for problem in problems[:5])
    return f"official problems: {shown or 'none'}"


def assert_agree(event: Any, what: str) -> bool:
    official = official_schema().verdict(event, relevant)
    accepted, error = gateway_verdict(event)
    assert accepted == official, (
        f"{what}: the official schema {'accepts' if official else 'refuses'} it, the gateway "
        f"{'accepts' if accepted else 'refuses'} it ({error or 'no error'}); {explain(event)}\n"
        f"{json.dumps(event)[:3000]}"
    )
    return accepted


# --- (a) every complete corpus event -----------------------------------------------------------------------


def test_interpreted_facets_are_official_facets() -> None:
    require_corpus()
    official = official_schema()
    interpreted = {key for keys in INTERPRETED.values() for key in keys}
    assert interpreted >= MEANT_TO_INTERPRET, f"not typed by the gateway: {MEANT_TO_INTERPRET - interpreted}"
    for kind, keys in INTERPRETED.items():
        for key in keys:
            assert kind in official.kinds(key), f"the gateway types {kind} {key!r}, which no official schema defines"


@pytest.mark.parametrize("row", params(inventory_rows(lambda row: row.is_complete), lambda row: row.path))
def test_complete_corpus_event_gets_the_official_verdict(row: InventoryRow | None) -> None:
    require_corpus()
    assert row is not None
    events = read_events(row.file)
    assert len(events) == row.n_events
    for index, event in enumerate(events):
        assert_agree(event, f"{row.path}[{index}]")


def test_each_leniency_is_needed_and_granted() -> None:
    """Each leniency, applied to a strictly valid event, is refused by the strict schema and accepted by the
    lenient reading and by the gateway."""
    require_corpus()
    strict = official_schema(lenient=False)
    (event,) = read_events(CORPUS / "openlineage-python-client/example_full_event.json")
    assert strict.verdict(event), strict.problems(event)
    variants = {
        "no schemaURL": lambda e: e.pop("schemaURL"),
        "no facet _producer": lambda e: e["run"]["facets"]["parent"].pop("_producer"),
        "no facet _schemaURL": lambda e: e["job"]["facets"]["documentation"].pop("_schemaURL"),
        "eventTime without zone": lambda e: e.update(eventTime=e["eventTime"][:19]),
        "runId not a UUID": lambda e: e["run"].update(runId="run-1"),
        "parent runId not a UUID": lambda e: e["run"]["facets"]["parent"]["run"].update(runId="parent-run-1"),
        # Found in the corpus, beyond the gateway's documented leniencies:
        "nominal time as a date": lambda e: e["run"]["facets"]["nominalTime"].update(nominalStartTime="2020-01-01"),
        "null optional member": lambda e: e["run"]["facets"]["nominalTime"].update(nominalEndTime=None),
        "null optional facet": lambda e: e["job"]["facets"].update(sql=None),
    }
    for name, change in variants.items():
        variant = copy.deepcopy(event)
        change(variant)
        assert not strict.verdict(variant), f"{name}: the strict schema should refuse it"
        assert official_schema().verdict(variant), f"{name}: {official_schema().problems(variant)}"
        assert gateway_verdict(variant)[0], f"{name}: {gateway_verdict(variant)[1]}"


# --- (b) mutations of valid events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    origin: str
    event: dict[str, Any]


def _container(event: dict[str, Any], path: Path_) -> dict[str, Any]:
    node: Any = event
    for part in path:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    assert isinstance(node, dict)
    return node


def _facet_examples() -> Iterator[tuple[str, str, str, Any]]:
    """(origin, kind, key, facet) of every facet of an interpreted key found in the corpus: in events of any
    file (templates filled) and in the spec's facet examples."""
    for row in inventory():
        if row.n_events == 0 or row.path.startswith("spec/"):
            continue
        try:
            events = read_events(row.file)
        except (ValueError, UnicodeDecodeError):
            continue
        if has_placeholders(events):
            events = Filler(row.path).fill([event for event in events if isinstance(event, dict)])
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                continue
            for path, kind, container in facet_containers(event):
                if isinstance(container, dict):
                    for key, facet in container.items():
                        if key in INTERPRETED[kind]:
                            yield f"{row.path}[{index}] {gateway_path((*path, key))}", kind, key, facet
    for example in sorted((CORPUS / "spec" / "tests").glob("*/*.json")):
        kind = facet_kind(example.parent.name)
        if kind is None:
            continue
        for key, facet in json.loads(example.read_text(encoding="utf-8")).items():
            if key in INTERPRETED[kind]:
                yield str(example.relative_to(CORPUS)), kind, key, facet


@functools.cache
def bases() -> tuple[Base, ...]:
    """Valid events to mutate: every complete corpus event the official schema accepts, and a plain event
    carrying each officially valid example of each interpreted facet (a few per facet, smallest to largest)."""
    official = official_schema()
    found: list[Base] = []
    for row in inventory_rows(lambda row: row.is_complete):
        for index, event in enumerate(read_events(row.file)):
            if official.verdict(event, relevant):
                found.append(Base(f"{row.path}[{index}]", event))
    (carrier,) = read_events(CORPUS / CARRIER)
    examples: dict[tuple[str, str], dict[str, tuple[str, Any]]] = {}
    for origin, kind, key, facet in _facet_examples():
        examples.setdefault((kind, key), {}).setdefault(json.dumps(facet, sort_keys=True), (origin, facet))
    for (kind, key), by_text in sorted(examples.items()):
        ordered = []
        for text in sorted(by_text, key=lambda text: (len(text), text)):
            origin, facet = by_text[text]
            event = copy.deepcopy(carrier)
            _container(event, CONTAINER_OF_KIND[kind])[key] = facet
            if official.verdict(event):
                ordered.append((origin, event))
        step = max(1, len(ordered) // SAMPLES_PER_FACET)
        for origin, event in ordered[::step][:SAMPLES_PER_FACET]:
            found.append(Base(f"{kind} {key} from {origin}", event))
    return tuple(found)


def test_every_interpreted_facet_has_a_valid_example() -> None:
    require_corpus()
    covered = {
        location[1] for base in bases() for path in sites(base.event) if (location := facet_location(path)) is not None
    }
    assert covered >= MEANT_TO_INTERPRET, f"no valid example in the corpus of {MEANT_TO_INTERPRET - covered}"


def test_every_base_event_is_accepted() -> None:
    require_corpus()
    for base in bases():
        assert_agree(base.event, base.origin)


def sites(event: Any, path: Path_ = ()) -> list[Path_]:
    """Every location in the envelope or inside an interpreted facet (not the event itself)."""
    found: list[Path_] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(event, dict):
        children = list(event.items())
    elif isinstance(event, list):
        children = list(enumerate(event))
    for part, value in children:
        child = (*path, part)
        location = facet_location(child)
        if location is not None and location[1] not in INTERPRETED.get(location[0], frozenset()):
            continue
        found.append(child)
        found.extend(sites(value, child))
    return found


def _at(event: Any, path: Path_) -> Any:
    for part in path:
        event = event[part]
    return event


def _focus(path: Path_) -> str:
    location = facet_location(path)
    return "envelope" if location is None else f"{location[0]}.{location[1]}"


@functools.cache
def _sites_by_focus(index: int) -> dict[str, list[Path_]]:
    grouped: dict[str, list[Path_]] = {}
    for path in sites(bases()[index].event):
        grouped.setdefault(_focus(path), []).append(path)
    return grouped


@st.composite
def a_site(draw: st.DrawFn, keyed_only: bool = False, dicts_only: bool = False) -> tuple[Base, Path_]:
    """A base event and a location in it: first the envelope or one of its interpreted facets, then a place."""
    index = draw(st.integers(min_value=0, max_value=len(bases()) - 1))
    base = bases()[index]
    grouped = {
        focus: [
            path
            for path in paths
            if (not keyed_only or isinstance(path[-1], str))
            and (not dicts_only or isinstance(_at(base.event, path), dict))
        ]
        for focus, paths in _sites_by_focus(index).items()
    }
    grouped = {focus: paths for focus, paths in grouped.items() if paths}
    if dicts_only:
        grouped.setdefault("envelope", []).append(())
    focus = draw(st.sampled_from(sorted(grouped)))
    return base, draw(st.sampled_from(grouped[focus]))


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


WRONG_VALUES: tuple[Any, ...] = (None, True, 7, 2.5, "text", [], {}, [1, "a"], {"key": "value"})
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
MUTATIONS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@MUTATIONS
@given(st.data())
def test_deleting_a_field_gets_the_official_verdict(data: st.DataObject) -> None:
    require_corpus()
    base, path = data.draw(a_site(keyed_only=True))
    event = copy.deepcopy(base.event)
    del _at(event, path[:-1])[path[-1]]
    assert_agree(event, f"{base.origin} without {gateway_path(path)}")


@MUTATIONS
@given(st.data())
def test_a_value_of_the_wrong_type_gets_the_official_verdict(data: st.DataObject) -> None:
    require_corpus()
    base, path = data.draw(a_site())
    current = _type_of(_at(base.event, path))
    wrong = [value for value in WRONG_VALUES if _type_of(value) != current]
    value = data.draw(st.sampled_from(wrong))
    event = copy.deepcopy(base.event)
    _at(event, path[:-1])[path[-1]] = copy.deepcopy(value)
    assert_agree(event, f"{base.origin} with {gateway_path(path)} = {json.dumps(value)}")


@MUTATIONS
@given(st.data())
def test_an_unknown_extra_field_is_accepted(data: st.DataObject) -> None:
    require_corpus()
    base, path = data.draw(a_site(dicts_only=True))
    target = _at(base.event, path)
    name = data.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).map("extra_".__add__))
    value = data.draw(JSON)
    event = copy.deepcopy(base.event)
    _at(event, path)[name] = value
    what = f"{base.origin} with {gateway_path((*path, name)) or name} = {json.dumps(value)[:80]}"
    accepted = assert_agree(event, what)
    is_map = bool(path) and path[-1] in MAP_KEYS and isinstance(target, dict)
    if not is_map:
        assert accepted, f"{what}: an unknown field of a record must be accepted"


# Small events whose every envelope field the exhaustive tests below also change: one of each kind.
ENVELOPE_EXAMPLES = (
    CARRIER,
    "openlineage-python-client/serde_example_dataset_event.json",
    "openlineage-python-client/serde_example_job_event.json",
)
# Per JSON type, two values of other types: one of another shape, and the one lax parsers coerce from.
OTHER_TYPES: dict[str, tuple[Any, ...]] = {
    "string": (7, ["text"]),
    "integer": ("7", True),
    "number": ("2.5", True),
    "boolean": ("true", 1),
    "object": ([], "text"),
    "array": ({}, "text"),
    "null": (),
}


def exhaustive_sites() -> Iterator[tuple[Base, Path_]]:
    """Every field of every facet example, and every envelope field of a few small events."""
    envelope_origins = {f"{path}[0]" for path in ENVELOPE_EXAMPLES}
    for base in bases():
        if " from " in base.origin:
            yield from ((base, path) for path in sites(base.event) if facet_location(path) is not None)
        elif base.origin in envelope_origins:
            yield from ((base, path) for path in sites(base.event) if facet_location(path) is None)


def test_deleting_any_single_field_gets_the_official_verdict() -> None:
    require_corpus()
    checked = 0
    for base, path in exhaustive_sites():
        if isinstance(path[-1], str):
            event = copy.deepcopy(base.event)
            del _at(event, path[:-1])[path[-1]]
            assert_agree(event, f"{base.origin} without {gateway_path(path)}")
            checked += 1
    assert checked > 100


def test_any_single_value_of_another_type_gets_the_official_verdict() -> None:
    require_corpus()
    checked = 0
    for base, path in exhaustive_sites():
        for value in OTHER_TYPES[_type_of(_at(base.event, path))]:
            event = copy.deepcopy(base.event)
            _at(event, path[:-1])[path[-1]] = copy.deepcopy(value)
            assert_agree(event, f"{base.origin} with {gateway_path(path)} = {json.dumps(value)}")
            checked += 1
    assert checked > 100


def test_facet_kinds_cover_every_container() -> None:
    assert set(CONTAINER_OF_KIND) == set(FACET_KINDS) == set(INTERPRETED)
