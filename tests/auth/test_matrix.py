"""The authorization matrix: every read path, mutation, admin operation and the ingestion endpoint, per token.

The world (tests/auth/world.py) is loaded before any token exists; then the tokens are issued and auth is on.
Reads and refused writes share one world per dialect and module; each refused write checks that the database
did not change. Writes that succeed get a fresh world each.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from gateway.orm import ApiToken
from gateway.store import tokens
from tests.auth.world import (
    ALL_ASSETS,
    ALL_JOBS,
    ALL_RUNS,
    ATTRIBUTION,
    CLICKS,
    CLICKS_ALIAS,
    EVERYTHING_TOKENS,
    FINANCE_ASSETS,
    FINANCE_JOBS,
    FINANCE_RUNS,
    FINANCE_TOKENS,
    LEDGER,
    ORDERS,
    ORDERS_DAILY,
    PAYROLL,
    R_ATTRIBUTE,
    R_BUILD_DAILY,
    R_BUILD_ORDERS,
    R_DAG,
    R_LOAD_CLICKS,
    R_PAYROLL,
    R_PUBLISH,
    RAW_ORDERS,
    READER_TOKENS,
    RECORD,
    RUN_MONITOR,
    SET_POLICY,
    UPSERT,
    World,
    ask,
    bearer,
    codes,
    column_lineage,
    dataset,
    difference,
    ol_event,
    snapshot,
)
from tests.ingest.support import load_documents

Data = dict[str, Any]


@dataclass(frozen=True)
class Refused:
    """The operation answers this error code (and no data for the field)."""

    code: str


def edges(connection: Data) -> list[Data]:
    return [edge["node"] for edge in connection["edges"]]


def keys(items: list[Data]) -> list[str]:
    return sorted(item["key"] for item in items)


def job_names(items: list[Data]) -> list[str]:
    return sorted(f"{item['namespace']}/{item['name']}" for item in items)


# --- reads: what each grant sees ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadCase:
    id: str
    query: str
    variables: Data
    pick: Callable[[Data], Any]
    finance: Any  # what a `finance.*` token sees, whatever its scope
    everything: Any  # what a `*` token sees


ENTITIES = """query($representations: [_Any!]!) { _entities(representations: $representations) {
    __typename ... on Asset { key } ... on Execution { runId } ... on Job { namespace name } } }"""
REPRESENTATIONS = [
    {"__typename": "Asset", "key": CLICKS},
    {"__typename": "Asset", "key": ORDERS},
    {"__typename": "Asset", "key": CLICKS_ALIAS},
    {"__typename": "Asset", "key": LEDGER},
    {"__typename": "Execution", "runId": R_ATTRIBUTE},
    {"__typename": "Execution", "runId": R_BUILD_DAILY},
    {"__typename": "Job", "namespace": "marketing.etl", "name": "attribute"},
    {"__typename": "Job", "namespace": "finance.etl", "name": "payroll"},
]
ASSET = "query($key: String!) { asset(key: $key) { key } }"
LINEAGE = """query($key: String!, $direction: LineageDirection!) {
    lineage(key: $key, direction: $direction, depth: 5, includeJobs: true) {
        root { key } nodes { depth asset { key } }
        edges { upstreamKey downstreamKey upstream { key } downstream { key } jobs { namespace name } }
        jobs { namespace name } } }"""
PATH = (
    "query($from: String!, $to: String!) { lineagePath(from: $from, to: $to) { nodes { key } edges { upstreamKey } } }"
)
EXECUTION_ASSETS = """query($runId: String!) { execution(runId: $runId) {
    job { name } inputs { asset { key } } outputs { asset { key } } parent { runId } } }"""


def _depths(data: Data) -> dict[str, int]:
    return {node["asset"]["key"]: node["depth"] for node in data["lineage"]["nodes"]}


def _lineage(data: Data) -> tuple[dict[str, int], list[tuple[str, str, list[str]]], list[str]]:
    graph = data["lineage"]
    for edge in graph["edges"]:
        assert (edge["upstream"]["key"], edge["downstream"]["key"]) == (edge["upstreamKey"], edge["downstreamKey"])
    lineage_edges = sorted((e["upstreamKey"], e["downstreamKey"], job_names(e["jobs"])) for e in graph["edges"])
    return _depths(data), lineage_edges, job_names(graph["jobs"])


def _path(data: Data) -> list[str] | None:
    path = data["lineagePath"]
    return None if path is None else [node["key"] for node in path["nodes"]]


def _execution_assets(data: Data) -> Any:
    execution = data["execution"]
    if execution is None:
        return None
    return {
        "job": execution["job"]["name"],
        "inputs": sorted(item["asset"]["key"] for item in execution["inputs"]),
        "outputs": sorted(item["asset"]["key"] for item in execution["outputs"]),
        "parent": execution["parent"] and execution["parent"]["runId"],
    }


def _entity(item: Data | None) -> str | None:
    if item is None:
        return None
    return str(item.get("key") or item.get("runId") or f"{item['namespace']}/{item['name']}")


READ_CASES = [
    ReadCase(
        "assets",
        "{ assets(first: 100) { totalCount edges { node { key } } pageInfo { hasNextPage } } }",
        {},
        lambda d: (keys(edges(d["assets"])), d["assets"]["totalCount"], d["assets"]["pageInfo"]["hasNextPage"]),
        (FINANCE_ASSETS, 4, False),
        (ALL_ASSETS, 7, False),
    ),
    ReadCase(
        "assets-paged",
        "{ assets(first: 2) { totalCount edges { node { key } } pageInfo { hasNextPage } } }",
        {},
        lambda d: (keys(edges(d["assets"])), d["assets"]["totalCount"], d["assets"]["pageInfo"]["hasNextPage"]),
        (FINANCE_ASSETS[:2], 4, True),
        (ALL_ASSETS[:2], 7, True),
    ),
    ReadCase(
        "assets-marketing-prefix",
        "query($f: AssetFilterInput) { assets(filter: $f, first: 100) { totalCount edges { node { key } } } }",
        {"f": {"namespacePrefix": "marketing."}},
        lambda d: (keys(edges(d["assets"])), d["assets"]["totalCount"]),
        ([], 0),
        ([ATTRIBUTION, CLICKS], 2),
    ),
    ReadCase(
        "assets-by-keys",
        "query($f: AssetFilterInput) { assets(filter: $f, first: 100) { totalCount edges { node { key } } } }",
        {"f": {"keys": [CLICKS, ORDERS, LEDGER]}},
        lambda d: (keys(edges(d["assets"])), d["assets"]["totalCount"]),
        ([ORDERS], 1),
        (sorted([CLICKS, ORDERS, LEDGER]), 3),
    ),
    ReadCase(
        "assets-search",
        "query($f: AssetFilterInput) { assets(filter: $f, first: 100) { totalCount edges { node { key } } } }",
        {"f": {"search": "clicks"}},
        lambda d: (keys(edges(d["assets"])), d["assets"]["totalCount"]),
        ([], 0),
        ([CLICKS], 1),
    ),
    ReadCase("asset-visible", ASSET, {"key": ORDERS}, lambda d: d["asset"], {"key": ORDERS}, {"key": ORDERS}),
    ReadCase("asset-marketing", ASSET, {"key": CLICKS}, lambda d: d["asset"], None, {"key": CLICKS}),
    ReadCase("asset-by-finance-alias", ASSET, {"key": CLICKS_ALIAS}, lambda d: d["asset"], None, {"key": CLICKS}),
    ReadCase("asset-other-case", ASSET, {"key": LEDGER}, lambda d: d["asset"], None, {"key": LEDGER}),
    ReadCase(
        "asset-neighbours",
        """query($key: String!) { asset(key: $key) { upstream { key } downstream { key }
            far: downstream(depth: 3) { key } farUp: upstream(depth: 3) { key } } }""",
        {"key": ORDERS},
        lambda d: {name: keys(items) for name, items in d["asset"].items()},
        {"upstream": [RAW_ORDERS], "downstream": [ORDERS_DAILY], "far": [ORDERS_DAILY], "farUp": [RAW_ORDERS]},
        {
            "upstream": sorted([CLICKS, RAW_ORDERS]),
            "downstream": sorted([ATTRIBUTION, ORDERS_DAILY]),
            "far": sorted([ATTRIBUTION, ORDERS_DAILY, PAYROLL]),
            "farUp": sorted([CLICKS, RAW_ORDERS]),
        },
    ),
    # Neighbours of every asset of a page at once (the loaders batch them across roots).
    ReadCase(
        "assets-with-neighbours",
        "{ assets(first: 100) { edges { node { key upstream { key } downstream(depth: 2) { key } } } } }",
        {},
        lambda d: {node["key"]: (keys(node["upstream"]), keys(node["downstream"])) for node in edges(d["assets"])},
        {
            RAW_ORDERS: ([], sorted([ORDERS, ORDERS_DAILY])),
            ORDERS: ([RAW_ORDERS], [ORDERS_DAILY]),
            ORDERS_DAILY: ([ORDERS], []),
            PAYROLL: ([], []),
        },
        {
            RAW_ORDERS: ([], sorted([ORDERS, ORDERS_DAILY, ATTRIBUTION])),
            ORDERS: (sorted([CLICKS, RAW_ORDERS]), sorted([ORDERS_DAILY, ATTRIBUTION, PAYROLL])),
            ORDERS_DAILY: ([ORDERS], []),
            PAYROLL: ([ATTRIBUTION], []),
            CLICKS: ([], sorted([ORDERS, ORDERS_DAILY, ATTRIBUTION])),
            ATTRIBUTION: ([ORDERS], [PAYROLL]),
            LEDGER: ([], []),
        },
    ),
    ReadCase(
        "lineage-both",
        LINEAGE,
        {"key": ORDERS, "direction": "BOTH"},
        _lineage,
        (
            {ORDERS: 0, RAW_ORDERS: -1, ORDERS_DAILY: 1},
            [
                (ORDERS, ORDERS_DAILY, ["finance.etl/build_daily"]),
                (RAW_ORDERS, ORDERS, ["finance.etl/build_orders"]),
            ],
            ["finance.etl/build_daily", "finance.etl/build_orders"],
        ),
        (
            {ORDERS: 0, CLICKS: -1, RAW_ORDERS: -1, ORDERS_DAILY: 1, ATTRIBUTION: 1, PAYROLL: 2},
            sorted(
                [
                    (ATTRIBUTION, PAYROLL, ["finance.etl/payroll"]),
                    (CLICKS, ORDERS, ["finance.etl/build_orders"]),
                    (ORDERS, ATTRIBUTION, ["marketing.etl/attribute"]),
                    (ORDERS, ORDERS_DAILY, ["finance.etl/build_daily", "marketing.etl/publish"]),
                    (RAW_ORDERS, ORDERS, ["finance.etl/build_orders"]),
                ]
            ),
            [
                "finance.etl/build_daily",
                "finance.etl/build_orders",
                "finance.etl/payroll",
                "marketing.etl/attribute",
                "marketing.etl/publish",
            ],
        ),
    ),
    # PAYROLL's only upstream is a marketing asset: the traversal stops there rather than passing through.
    ReadCase(
        "lineage-upstream-through-marketing",
        LINEAGE,
        {"key": PAYROLL, "direction": "UPSTREAM"},
        _depths,
        {PAYROLL: 0},
        {PAYROLL: 0, ATTRIBUTION: -1, ORDERS: -2, CLICKS: -3, RAW_ORDERS: -3},
    ),
    ReadCase(
        "lineage-of-marketing-asset",
        LINEAGE,
        {"key": CLICKS, "direction": "BOTH"},
        lambda d: d["lineage"]["root"]["key"],
        Refused("NOT_FOUND"),
        CLICKS,
    ),
    ReadCase(
        "lineage-of-finance-alias",
        LINEAGE,
        {"key": CLICKS_ALIAS, "direction": "BOTH"},
        lambda d: d["lineage"]["root"]["key"],
        Refused("NOT_FOUND"),
        CLICKS,
    ),
    ReadCase(
        "path-through-marketing",
        PATH,
        {"from": ORDERS, "to": PAYROLL},
        _path,
        None,
        [ORDERS, ATTRIBUTION, PAYROLL],
    ),
    ReadCase(
        "path-within-finance",
        PATH,
        {"from": RAW_ORDERS, "to": ORDERS_DAILY},
        _path,
        [RAW_ORDERS, ORDERS, ORDERS_DAILY],
        [RAW_ORDERS, ORDERS, ORDERS_DAILY],
    ),
    ReadCase(
        "path-from-marketing", PATH, {"from": CLICKS, "to": ORDERS}, _path, Refused("NOT_FOUND"), [CLICKS, ORDERS]
    ),
    ReadCase(
        "executions",
        "{ executions(first: 100) { edges { node { runId } } } }",
        {},
        lambda d: sorted(node["runId"] for node in edges(d["executions"])),
        FINANCE_RUNS,
        ALL_RUNS,
    ),
    ReadCase(
        "executions-of-marketing-jobs",
        """query($f: ExecutionFilterInput) { executions(filter: $f, first: 100) { edges { node { runId } } } }""",
        {"f": {"jobNamespace": "marketing.etl"}},
        lambda d: sorted(node["runId"] for node in edges(d["executions"])),
        [],
        sorted([R_LOAD_CLICKS, R_DAG, R_ATTRIBUTE, R_PUBLISH]),
    ),
    ReadCase(
        "execution-of-marketing-job",
        "query($runId: String!) { execution(runId: $runId) { runId } }",
        {"runId": R_ATTRIBUTE},
        lambda d: d["execution"],
        None,
        {"runId": R_ATTRIBUTE},
    ),
    ReadCase(
        "execution-inputs-outputs",
        EXECUTION_ASSETS,
        {"runId": R_BUILD_ORDERS},
        _execution_assets,
        {"job": "build_orders", "inputs": [RAW_ORDERS], "outputs": [ORDERS], "parent": None},
        {"job": "build_orders", "inputs": sorted([CLICKS, RAW_ORDERS]), "outputs": [ORDERS], "parent": None},
    ),
    ReadCase(
        "execution-marketing-parent",
        EXECUTION_ASSETS,
        {"runId": R_BUILD_DAILY},
        _execution_assets,
        {"job": "build_daily", "inputs": [ORDERS], "outputs": [ORDERS_DAILY], "parent": None},
        {"job": "build_daily", "inputs": [ORDERS], "outputs": [ORDERS_DAILY], "parent": R_DAG},
    ),
    ReadCase(
        "asset-executions",
        """query($key: String!) { asset(key: $key) {
            executions(first: 50) { edges { node { role execution { runId } } } } } }""",
        {"key": ORDERS},
        lambda d: sorted((node["role"], node["execution"]["runId"]) for node in edges(d["asset"]["executions"])),
        sorted([("OUTPUT", R_BUILD_ORDERS), ("INPUT", R_BUILD_DAILY)]),
        sorted([("OUTPUT", R_BUILD_ORDERS), ("INPUT", R_BUILD_DAILY), ("INPUT", R_ATTRIBUTE), ("INPUT", R_PUBLISH)]),
    ),
    ReadCase(
        "asset-last-execution-and-jobs",
        """query($key: String!) { asset(key: $key) {
            lastExecution { runId } producers { namespace name } consumers { namespace name } } }""",
        {"key": ORDERS_DAILY},
        lambda d: (d["asset"]["lastExecution"], job_names(d["asset"]["producers"]), job_names(d["asset"]["consumers"])),
        (None, ["finance.etl/build_daily"], []),
        ({"runId": R_PUBLISH}, ["finance.etl/build_daily", "marketing.etl/publish"], []),
    ),
    ReadCase(
        "asset-consumers",
        "query($key: String!) { asset(key: $key) { consumers { namespace name } } }",
        {"key": ORDERS},
        lambda d: job_names(d["asset"]["consumers"]),
        ["finance.etl/build_daily"],
        ["finance.etl/build_daily", "marketing.etl/attribute", "marketing.etl/publish"],
    ),
    ReadCase(
        "column-lineage",
        """query($key: String!) { asset(key: $key) {
            columnLineage { downstreamField upstreamField upstream { key } } } }""",
        {"key": ORDERS},
        lambda d: sorted(
            (c["downstreamField"], c["upstreamField"], c["upstream"]["key"]) for c in d["asset"]["columnLineage"]
        ),
        [("order_id", "id", RAW_ORDERS)],
        sorted([("order_id", "id", RAW_ORDERS), ("campaign", "campaign_id", CLICKS)]),
    ),
    ReadCase(
        "jobs",
        "{ jobs(first: 100) { edges { node { namespace name } } } }",
        {},
        lambda d: job_names(edges(d["jobs"])),
        FINANCE_JOBS,
        ALL_JOBS,
    ),
    ReadCase(
        "jobs-in-marketing",
        '{ jobs(namespace: "marketing.etl", first: 100) { edges { node { namespace name } } } }',
        {},
        lambda d: job_names(edges(d["jobs"])),
        [],
        [job for job in ALL_JOBS if job.startswith("marketing.")],
    ),
    ReadCase(
        "job-in-marketing",
        '{ job(namespace: "marketing.etl", name: "attribute") { name latestExecution { runId } } }',
        {},
        lambda d: d["job"],
        None,
        {"name": "attribute", "latestExecution": {"runId": R_ATTRIBUTE}},
    ),
    ReadCase(
        "job-in-finance",
        """{ job(namespace: "finance.etl", name: "payroll") {
            latestExecution { runId } executions { edges { node { runId } } } } }""",
        {},
        lambda d: (d["job"]["latestExecution"]["runId"], [node["runId"] for node in edges(d["job"]["executions"])]),
        (R_PAYROLL, [R_PAYROLL]),
        (R_PAYROLL, [R_PAYROLL]),
    ),
    ReadCase(
        "namespaces",
        "{ namespaces { name assetCount } }",
        {},
        lambda d: sorted((n["name"], n["assetCount"]) for n in d["namespaces"]),
        [("finance.hr", 1), ("finance.sales", 3)],
        sorted([("finance.hr", 1), ("finance.sales", 3), ("marketing.web", 2), ("FINANCE.audit", 1)]),
    ),
    ReadCase(
        "alerts",
        "{ alerts(first: 50) { totalCount edges { node { kind asset { key } } } } }",
        {},
        lambda d: (d["alerts"]["totalCount"], sorted(node["asset"]["key"] for node in edges(d["alerts"]))),
        (1, [ORDERS_DAILY]),
        (2, sorted([CLICKS, ORDERS_DAILY])),
    ),
    ReadCase(
        "alerts-in-marketing",
        '{ alerts(filter: { namespace: "marketing.web" }) { totalCount edges { node { kind } } } }',
        {},
        lambda d: (d["alerts"]["totalCount"], len(d["alerts"]["edges"])),
        (0, 0),
        (1, 1),
    ),
    ReadCase(
        "asset-alerts-and-freshness",
        """query($key: String!) { asset(key: $key) {
            status alerts { kind } freshness { status policy { name } } } }""",
        {"key": ORDERS_DAILY},
        lambda d: d["asset"],
        {
            "status": "STALE",
            "alerts": [{"kind": "STALE"}],
            "freshness": {"status": "STALE", "policy": {"name": "daily-hourly"}},
        },
        {
            "status": "STALE",
            "alerts": [{"kind": "STALE"}],
            "freshness": {"status": "STALE", "policy": {"name": "daily-hourly"}},
        },
    ),
    ReadCase(
        "federation-entities",
        ENTITIES,
        {"representations": REPRESENTATIONS},
        lambda d: [_entity(item) for item in d["_entities"]],
        [None, ORDERS, None, None, None, R_BUILD_DAILY, None, "finance.etl/payroll"],
        [CLICKS, ORDERS, CLICKS, LEDGER, R_ATTRIBUTE, R_BUILD_DAILY, "marketing.etl/attribute", "finance.etl/payroll"],
    ),
    # Policies' selectors name keys and namespaces anywhere: listing them needs a grant on every namespace.
    ReadCase(
        "freshness-policies",
        "{ freshnessPolicies { name asset { key } } }",
        {},
        lambda d: sorted((p["name"], p["asset"]["key"]) for p in d["freshnessPolicies"]),
        Refused("FORBIDDEN"),
        [("clicks-hourly", CLICKS), ("daily-hourly", ORDERS_DAILY)],
    ),
]


async def check_answer(
    client: httpx.AsyncClient,
    secret: str | None,
    query: str,
    variables: Data,
    pick: Callable[[Data], Any],
    expected: Any,
) -> None:
    body = await ask(client, secret, query, variables)
    if isinstance(expected, Refused):
        assert codes(body) == [expected.code], body
        data = body.get("data")
        assert data is None or all(value is None for value in data.values()), body
        if expected.code == "NOT_FOUND":
            assert "forbidden" not in body["errors"][0]["message"].lower(), body
        return
    assert "errors" not in body, body["errors"]
    assert pick(body["data"]) == expected


@pytest.mark.parametrize("token", READER_TOKENS)
@pytest.mark.parametrize("case", READ_CASES, ids=lambda case: case.id)
async def test_reads_show_only_granted_namespaces(world: World, case: ReadCase, token: str) -> None:
    expected = case.finance if token in FINANCE_TOKENS else case.everything
    assert token in FINANCE_TOKENS or token in EVERYTHING_TOKENS
    await check_answer(world.client, world.token(token), case.query, case.variables, case.pick, expected)


# --- writes and admin operations that are refused ----------------------------------------------------------------

DELETE = "mutation($key: String!) { deleteAsset(key: $key) { key } }"
ALIASES = "mutation($key: String!, $aliases: [String!]!) { addAssetAliases(key: $key, aliases: $aliases) { key } }"
DELETE_POLICY = 'mutation { deleteFreshnessPolicy(name: "daily-hourly") }'
RUN_SHIPPER = "mutation($name: String!) { runShipper(name: $name) { shipped error } }"
SHIPPERS = "{ shippers { name } }"
ACKNOWLEDGE = 'mutation($id: ID!) { acknowledgeAlert(id: $id, by: "someone") { id acknowledgedBy } }'


def execution(job: tuple[str, str], inputs: list[str], outputs: list[str], **extra: Any) -> Data:
    return {
        "input": {
            "job": {"namespace": job[0], "name": job[1]},
            "runId": f"run-{job[1]}",
            "state": "COMPLETE",
            "inputs": [{"key": key} for key in inputs],
            "outputs": [{"key": key} for key in outputs],
            **extra,
        }
    }


@dataclass(frozen=True)
class WriteCase:
    id: str
    token: str
    query: str
    variables: Data


def alert_of(key: str) -> str:
    """A variable placeholder: the id of the alert on `key`, filled in per world."""
    return f"@alert:{key}"


def fill(variables: Data, world: World) -> Data:
    filled = copy.deepcopy(variables)
    for name, value in filled.items():
        if isinstance(value, str) and value.startswith("@alert:"):
            filled[name] = world.alert_ids[value.removeprefix("@alert:")]
    return filled


NEW_FINANCE = "finance.sales/new_table"
NEW_MARKETING = "marketing.web/new_table"

REFUSED_WRITES: list[tuple[WriteCase, str]] = [
    # upsertAsset
    (WriteCase("upsert-read-scope", "fin_read", UPSERT, {"input": {"key": NEW_FINANCE}}), "FORBIDDEN"),
    (WriteCase("upsert-read-everything", "all_read", UPSERT, {"input": {"key": NEW_FINANCE}}), "FORBIDDEN"),
    (WriteCase("upsert-outside", "fin_write", UPSERT, {"input": {"key": NEW_MARKETING}}), "FORBIDDEN"),
    (WriteCase("upsert-outside-admin", "fin_admin", UPSERT, {"input": {"key": NEW_MARKETING}}), "FORBIDDEN"),
    (
        WriteCase("upsert-existing-outside", "fin_write", UPSERT, {"input": {"key": CLICKS, "description": "x"}}),
        "FORBIDDEN",
    ),
    (
        WriteCase(
            "upsert-into-other-namespace",
            "fin_write",
            UPSERT,
            {"input": {"key": NEW_FINANCE, "namespace": "marketing.web"}},
        ),
        "FORBIDDEN",
    ),
    # Declaring a finance namespace on a marketing asset would move it into the grant.
    (
        WriteCase(
            "upsert-moves-marketing-asset",
            "fin_write",
            UPSERT,
            {"input": {"key": CLICKS, "namespace": "finance.sales"}},
        ),
        "FORBIDDEN",
    ),
    # A declared upstream that does not exist yet is created: an asset in marketing.web.
    (
        WriteCase(
            "upsert-upstream-outside",
            "fin_write",
            UPSERT,
            {"input": {"key": NEW_FINANCE, "upstream": ["marketing.web/brand_new"]}},
        ),
        "FORBIDDEN",
    ),
    # An alias in marketing.web would capture that name: marketing's events for it would land on finance's asset.
    (
        WriteCase(
            "upsert-alias-outside",
            "fin_write",
            UPSERT,
            {"input": {"key": NEW_FINANCE, "aliases": ["marketing.web/claimed"]}},
        ),
        "FORBIDDEN",
    ),
    # deleteAsset / addAssetAliases: an invisible asset is not found, a visible one needs the write scope.
    (WriteCase("delete-outside", "fin_write", DELETE, {"key": CLICKS}), "NOT_FOUND"),
    (WriteCase("delete-by-finance-alias", "fin_admin", DELETE, {"key": CLICKS_ALIAS}), "NOT_FOUND"),
    (WriteCase("delete-read-scope", "fin_read", DELETE, {"key": ORDERS}), "FORBIDDEN"),
    (WriteCase("delete-read-everything", "all_read", DELETE, {"key": CLICKS}), "FORBIDDEN"),
    (WriteCase("aliases-outside", "fin_write", ALIASES, {"key": CLICKS, "aliases": ["finance.sales/x"]}), "NOT_FOUND"),
    (
        WriteCase("aliases-read-scope", "fin_read", ALIASES, {"key": ORDERS, "aliases": ["finance.sales/x"]}),
        "FORBIDDEN",
    ),
    (
        WriteCase(
            "aliases-into-other-namespace", "fin_write", ALIASES, {"key": ORDERS, "aliases": ["marketing.web/claimed"]}
        ),
        "FORBIDDEN",
    ),
    # recordExecution: the job, every input and output, and the parent job must be granted.
    (WriteCase("record-read-scope", "fin_read", RECORD, execution(("finance.etl", "j"), [], [ORDERS])), "FORBIDDEN"),
    (
        WriteCase("record-read-everything", "all_read", RECORD, execution(("finance.etl", "j"), [], [ORDERS])),
        "FORBIDDEN",
    ),
    (
        WriteCase("record-output-outside", "fin_write", RECORD, execution(("finance.etl", "j"), [ORDERS], [CLICKS])),
        "FORBIDDEN",
    ),
    (
        WriteCase("record-input-outside", "fin_write", RECORD, execution(("finance.etl", "j"), [CLICKS], [ORDERS])),
        "FORBIDDEN",
    ),
    (
        WriteCase("record-job-outside", "fin_admin", RECORD, execution(("marketing.etl", "j"), [], [ORDERS])),
        "FORBIDDEN",
    ),
    # The key is in finance.sales, but it is an alias of the marketing asset.
    (
        WriteCase("record-output-alias", "fin_write", RECORD, execution(("finance.etl", "j"), [], [CLICKS_ALIAS])),
        "FORBIDDEN",
    ),
    (
        WriteCase(
            "record-parent-outside",
            "fin_write",
            RECORD,
            execution(
                ("finance.etl", "j"),
                [],
                [ORDERS],
                parent={"runId": "p", "job": {"namespace": "marketing.etl", "name": "dag"}},
            ),
        ),
        "FORBIDDEN",
    ),
    # Admin operations spanning every namespace need admin on `*`.
    (WriteCase("run-monitor-read", "fin_read", RUN_MONITOR, {}), "FORBIDDEN"),
    (WriteCase("run-monitor-write", "fin_write", RUN_MONITOR, {}), "FORBIDDEN"),
    (WriteCase("run-monitor-finance-admin", "fin_admin", RUN_MONITOR, {}), "FORBIDDEN"),
    (WriteCase("run-monitor-read-everything", "all_read", RUN_MONITOR, {}), "FORBIDDEN"),
    (
        WriteCase(
            "set-policy-write", "fin_write", SET_POLICY, {"input": {"name": "p", "assetKey": ORDERS, "maxAge": "2h"}}
        ),
        "FORBIDDEN",
    ),
    (
        WriteCase(
            "set-policy-finance-admin",
            "fin_admin",
            SET_POLICY,
            {"input": {"name": "p", "assetKey": ORDERS, "maxAge": "2h"}},
        ),
        "FORBIDDEN",
    ),
    (
        WriteCase(
            "set-policy-read-everything",
            "all_read",
            SET_POLICY,
            {"input": {"name": "p", "assetKey": ORDERS, "maxAge": "2h"}},
        ),
        "FORBIDDEN",
    ),
    (WriteCase("delete-policy-finance-admin", "fin_admin", DELETE_POLICY, {}), "FORBIDDEN"),
    (WriteCase("run-shipper-write", "fin_write", RUN_SHIPPER, {"name": "finance"}), "FORBIDDEN"),
    (WriteCase("run-shipper-read-everything", "all_read", RUN_SHIPPER, {"name": "everything"}), "FORBIDDEN"),
    # A shipper exporting more than the admin's grants is not theirs to see.
    (WriteCase("run-shipper-beyond-grant", "fin_admin", RUN_SHIPPER, {"name": "everything"}), "NOT_FOUND"),
    (WriteCase("shippers-read", "fin_read", SHIPPERS, {}), "FORBIDDEN"),
    (WriteCase("shippers-write", "fin_write", SHIPPERS, {}), "FORBIDDEN"),
    (WriteCase("shippers-read-everything", "all_read", SHIPPERS, {}), "FORBIDDEN"),
    # acknowledgeAlert writes the alert's asset's namespace.
    (WriteCase("acknowledge-read-scope", "fin_read", ACKNOWLEDGE, {"id": alert_of(ORDERS_DAILY)}), "FORBIDDEN"),
    (WriteCase("acknowledge-read-everything", "all_read", ACKNOWLEDGE, {"id": alert_of(CLICKS)}), "FORBIDDEN"),
    (WriteCase("acknowledge-outside", "fin_write", ACKNOWLEDGE, {"id": alert_of(CLICKS)}), "NOT_FOUND"),
]


@pytest.mark.parametrize(("case", "code"), REFUSED_WRITES, ids=[case.id for case, _ in REFUSED_WRITES])
async def test_refused_writes_change_nothing(isolated_world: World, case: WriteCase, code: str) -> None:
    world = isolated_world
    before = await snapshot(world.db)
    body = await ask(world.client, world.token(case.token), case.query, fill(case.variables, world))
    assert codes(body) == [code], body
    assert body.get("data") is None, body
    message = body["errors"][0]["message"]
    if code == "FORBIDDEN":
        assert "scope" in message or "namespace" in message or "'*'" in message, message
    after = await snapshot(world.db)
    assert after == before, difference(before, after)


# --- writes and admin operations that are allowed ----------------------------------------------------------------


@dataclass(frozen=True)
class AllowedCase:
    write: WriteCase
    pick: Callable[[Data], Any]
    expected: Any
    # A query run afterwards with the same token, and what it must answer then.
    check: tuple[str, Data, Any] | None = None


ALLOWED_WRITES = [
    AllowedCase(
        WriteCase("upsert-in-grant", "fin_write", UPSERT, {"input": {"key": NEW_FINANCE}}),
        lambda d: d["upsertAsset"],
        {"key": NEW_FINANCE, "namespace": "finance.sales"},
        (ASSET, {"key": NEW_FINANCE}, {"asset": {"key": NEW_FINANCE}}),
    ),
    AllowedCase(
        WriteCase(
            "upsert-finance-admin", "fin_admin", UPSERT, {"input": {"key": "finance.hr/new", "upstream": [ORDERS]}}
        ),
        lambda d: d["upsertAsset"],
        {"key": "finance.hr/new", "namespace": "finance.hr"},
        (
            "query($key: String!) { asset(key: $key) { upstream { key } } }",
            {"key": "finance.hr/new"},
            {"asset": {"upstream": [{"key": ORDERS}]}},
        ),
    ),
    AllowedCase(
        WriteCase("upsert-everything-admin", "all_admin", UPSERT, {"input": {"key": NEW_MARKETING}}),
        lambda d: d["upsertAsset"],
        {"key": NEW_MARKETING, "namespace": "marketing.web"},
    ),
    AllowedCase(
        WriteCase("delete-in-grant", "fin_write", DELETE, {"key": RAW_ORDERS}),
        lambda d: d["deleteAsset"],
        {"key": RAW_ORDERS},
        (ASSET, {"key": RAW_ORDERS}, {"asset": None}),
    ),
    AllowedCase(
        WriteCase("aliases-in-grant", "fin_write", ALIASES, {"key": ORDERS, "aliases": ["finance.sales/orders_v1"]}),
        lambda d: d["addAssetAliases"],
        {"key": ORDERS},
        (ASSET, {"key": "finance.sales/orders_v1"}, {"asset": {"key": ORDERS}}),
    ),
    AllowedCase(
        WriteCase(
            "record-in-grant", "fin_write", RECORD, execution(("finance.etl", "rebuild"), [RAW_ORDERS], [ORDERS])
        ),
        lambda d: d["recordExecution"],
        {"runId": "run-rebuild"},
        (
            '{ execution(runId: "run-rebuild") { job { namespace } inputs { asset { key } } } }',
            {},
            {"execution": {"job": {"namespace": "finance.etl"}, "inputs": [{"asset": {"key": RAW_ORDERS}}]}},
        ),
    ),
    AllowedCase(
        WriteCase("acknowledge-in-grant", "fin_write", ACKNOWLEDGE, {"id": alert_of(ORDERS_DAILY)}),
        lambda d: d["acknowledgeAlert"]["acknowledgedBy"],
        "someone",
    ),
    AllowedCase(
        WriteCase("run-monitor-everything-admin", "all_admin", RUN_MONITOR, {}),
        lambda d: d["runMonitor"],
        {"alertsOpened": 0, "error": None},
    ),
    AllowedCase(
        WriteCase(
            "set-policy-everything-admin",
            "all_admin",
            SET_POLICY,
            {"input": {"name": "orders-daily", "assetKey": ORDERS, "maxAge": "26h"}},
        ),
        lambda d: d["setFreshnessPolicy"],
        {"name": "orders-daily"},
    ),
    AllowedCase(
        WriteCase("run-shipper-finance-admin", "fin_admin", RUN_SHIPPER, {"name": "finance"}),
        lambda d: d["runShipper"]["error"],
        None,
        (SHIPPERS, {}, {"shippers": [{"name": "finance"}]}),
    ),
    AllowedCase(
        WriteCase("run-shipper-everything-admin", "all_admin", RUN_SHIPPER, {"name": "everything"}),
        lambda d: d["runShipper"]["error"],
        None,
        (SHIPPERS, {}, {"shippers": [{"name": "everything"}, {"name": "finance"}]}),
    ),
]


@pytest.mark.parametrize("case", ALLOWED_WRITES, ids=lambda case: case.write.id)
async def test_allowed_writes(isolated_world: World, case: AllowedCase) -> None:
    world, write = isolated_world, case.write
    before = await snapshot(world.db)
    body = await ask(world.client, world.token(write.token), write.query, fill(write.variables, world))
    assert "errors" not in body, body["errors"]
    assert case.pick(body["data"]) == case.expected
    assert await snapshot(world.db) != before, "the write changed nothing"
    if case.check is not None:
        query, variables, expected = case.check
        assert await ask(world.client, world.token(write.token), query, variables) == {"data": expected}


# --- authentication: who gets in ---------------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/graphql"),
    ("GET", "/graphql?query=%7Bnamespaces%7Bname%7D%7D"),
    ("POST", "/api/v1/lineage"),
    ("GET", "/metrics"),
]
CREDENTIALS: list[tuple[str, Callable[[World], dict[str, str]]]] = [
    ("no-token", lambda world: {}),
    ("unknown-token", lambda world: bearer("agw_" + "x" * 43)),
    ("revoked-token", lambda world: bearer(world.secrets["revoked"])),
    ("expired-token", lambda world: bearer(world.secrets["expired"])),
    ("basic-auth", lambda world: {"Authorization": "Basic dXNlcjpwYXNz"}),
    ("empty-bearer", lambda world: {"Authorization": "Bearer "}),
]


@pytest.mark.parametrize(("name", "credentials"), CREDENTIALS, ids=[name for name, _ in CREDENTIALS])
@pytest.mark.parametrize(
    ("method", "path"), PROTECTED, ids=[f"{method} {path.split('?')[0]}" for method, path in PROTECTED]
)
async def test_missing_or_bad_tokens_get_401(
    isolated_world: World, method: str, path: str, name: str, credentials: Callable[[World], dict[str, str]]
) -> None:
    world = isolated_world
    before = await snapshot(world.db)
    body: Data = ol_event("r-401", ("finance.etl", "j"), outputs=[dataset(ORDERS)]) if "lineage" in path else {}
    if path == "/graphql":
        body = {"query": 'mutation { upsertAsset(input: { key: "finance.sales/by_nobody" }) { key } }'}
    response = await world.client.request(
        method, path, json=body if method == "POST" else None, headers=credentials(world)
    )
    assert response.status_code == 401, (name, response.text)
    assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers
    if path.startswith("/graphql"):
        assert codes(response.json()) == ["UNAUTHENTICATED"]
    else:
        assert response.json()["error"]
    assert await snapshot(world.db) == before


async def test_probes_stay_open_and_tokens_work_with_either_scheme(world: World) -> None:
    for path in ("/healthz", "/readyz"):
        response = await world.client.get(path)
        assert response.status_code == 200, (path, response.text)
    secret = world.secrets["fin_read"]
    for scheme in ("Bearer", "bearer", "Apikey"):
        response = await world.client.post(
            "/graphql", json={"query": "{ namespaces { name } }"}, headers={"Authorization": f"{scheme} {secret}"}
        )
        assert response.status_code == 200, (scheme, response.text)
        assert sorted(n["name"] for n in response.json()["data"]["namespaces"]) == ["finance.hr", "finance.sales"]
    metrics = await world.client.get("/metrics", headers=bearer(world.secrets["all_read"]))
    assert metrics.status_code == 200, metrics.text


async def test_graphiql_page_needs_no_token(world: World) -> None:
    # The page holds no data: a browser gets it without a token (its queries then carry one).
    page = await world.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert "graphiql" in page.text.lower()


async def test_revocation_and_expiry_apply_to_the_next_request(isolated_world: World) -> None:
    world, secret = isolated_world, isolated_world.secrets["fin_write"]
    assert (await ask(world.client, secret, "{ namespaces { name } }"))["data"]["namespaces"]
    async with world.db.transaction() as session:
        await tokens.revoke_token(session, "fin_write", datetime.now(UTC))
    refused = await world.client.post("/graphql", json={"query": "{ namespaces { name } }"}, headers=bearer(secret))
    assert refused.status_code == 401, refused.text
    secret = world.secrets["fin_read"]
    async with world.db.transaction() as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.name == "fin_read")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    lineage = await world.client.post("/api/v1/lineage", json=finance_event(), headers=bearer(secret))
    assert lineage.status_code == 401, lineage.text


# --- ingestion: POST /api/v1/lineage ------------------------------------------------------------------------------


def finance_event(run_id: str = "r-ingest-finance", **changes: Any) -> Data:
    event = ol_event(run_id, ("finance.etl", "ingested"), inputs=[dataset(RAW_ORDERS)], outputs=[dataset(ORDERS)])
    event.update(changes)
    return event


def marketing_event(run_id: str = "r-ingest-marketing") -> Data:
    return ol_event(run_id, ("marketing.etl", "ingested"), inputs=[dataset(CLICKS)], outputs=[dataset(ATTRIBUTION)])


def apples(number: int) -> Data:
    (document,) = load_documents(f"marquez/api-test-resources/apples/{number}_*.json")
    return document


@dataclass(frozen=True)
class IngestCase:
    id: str
    token: str
    body: Callable[[], Any]
    status: int
    # Fragments the error (single event or whole batch) must contain.
    message: tuple[str, ...] = ()


SYMLINKED = dataset(
    "finance.sales/orders_file",
    symlinks={"identifiers": [{"namespace": "marketing.web", "name": "orders_table", "type": "TABLE"}]},
)
COLUMN_FROM_MARKETING = dataset(
    ORDERS, columnLineage=column_lineage({"campaign": [("marketing.web/brand_new", "campaign_id")]})
)

REFUSED_INGESTION = [
    IngestCase("read-scope", "fin_read", finance_event, 403, ("write scope",)),
    IngestCase("read-everything", "all_read", finance_event, 403, ("write scope",)),
    IngestCase("job-outside", "fin_write", marketing_event, 403, ("marketing.etl",)),
    IngestCase(
        "output-outside",
        "fin_write",
        lambda: ol_event("r-out", ("finance.etl", "j"), inputs=[dataset(ORDERS)], outputs=[dataset(CLICKS)]),
        403,
        ("marketing.web",),
    ),
    IngestCase(
        "input-outside",
        "fin_admin",
        lambda: ol_event("r-in", ("finance.etl", "j"), inputs=[dataset(CLICKS)], outputs=[dataset(ORDERS)]),
        403,
        ("marketing.web",),
    ),
    IngestCase(
        "symlink-outside",
        "fin_write",
        lambda: ol_event("r-sym", ("finance.etl", "j"), outputs=[SYMLINKED]),
        403,
        ("marketing.web",),
    ),
    IngestCase(
        "parent-outside",
        "fin_write",
        lambda: finance_event(
            run={
                "runId": "r-child",
                "facets": {
                    "parent": {
                        "_producer": "p",
                        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json",
                        "run": {"runId": "r-parent"},
                        "job": {"namespace": "marketing.etl", "name": "dag"},
                    }
                },
            }
        ),
        403,
        ("marketing.etl",),
    ),
    # The dataset is named in finance.sales, but that name is an alias of the marketing asset.
    IngestCase(
        "output-alias-of-marketing-asset",
        "fin_write",
        lambda: ol_event("r-alias", ("finance.etl", "j"), inputs=[dataset(ORDERS)], outputs=[dataset(CLICKS_ALIAS)]),
        403,
        ("marketing.web",),
    ),
    # A column-lineage source in marketing.web that does not exist yet would be created there.
    IngestCase(
        "column-lineage-source-outside",
        "fin_write",
        lambda: ol_event(
            "r-columns", ("finance.etl", "j"), inputs=[dataset(RAW_ORDERS)], outputs=[COLUMN_FROM_MARKETING]
        ),
        403,
        ("marketing.web",),
    ),
    IngestCase("corpus-outside", "kitchen_write", lambda: apples(3), 403, ("cupboard",)),
    IngestCase(
        "corpus-dataset-event",
        "kitchen_write",
        lambda: load_documents("marquez/api-test-resources/open_lineage/event_dataset_event.json")[0],
        403,
        ("may not write namespace 'my-dataset-namespace'",),
    ),
    IngestCase(
        "corpus-job-event",
        "fin_admin",
        lambda: load_documents("marquez/api-test-resources/open_lineage/event_job_event.json")[0],
        403,
        ("may not write namespace 'my-",),
    ),
    IngestCase(
        "batch-all-outside",
        "fin_write",
        lambda: [marketing_event("r-m1"), marketing_event("r-m2")],
        403,
        ("no event in the batch may be written",),
    ),
]


async def post_lineage(world: World, token: str | None, body: Any) -> httpx.Response:
    return await world.client.post("/api/v1/lineage", json=body, headers=bearer(world.token(token)))


@pytest.mark.parametrize("case", REFUSED_INGESTION, ids=lambda case: case.id)
async def test_refused_ingestion_writes_nothing(isolated_world: World, case: IngestCase) -> None:
    world = isolated_world
    before = await snapshot(world.db)
    response = await post_lineage(world, case.token, case.body())
    assert response.status_code == case.status, response.text
    error = response.json()["error"]
    for fragment in case.message:
        assert fragment in error, error
    if isinstance(case.body(), list):
        rejected = response.json()["rejected"]
        assert [item["index"] for item in rejected] == list(range(len(case.body())))
        assert all("marketing.etl" in item["error"] for item in rejected), rejected
    after = await snapshot(world.db)
    assert after == before, difference(before, after)


EXECUTION_JOB = "query($runId: String!) { execution(runId: $runId) { job { namespace name } } }"


async def test_ingestion_within_grant_is_stored(isolated_world: World) -> None:
    world = isolated_world
    response = await post_lineage(world, "fin_write", finance_event())
    assert response.status_code == 201, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    data = await ask(world.client, world.token("fin_read"), EXECUTION_JOB, {"runId": "r-ingest-finance"})
    assert data == {"data": {"execution": {"job": {"namespace": "finance.etl", "name": "ingested"}}}}


async def test_ingestion_by_an_everything_writer_reaches_every_namespace(isolated_world: World) -> None:
    world = isolated_world
    response = await post_lineage(world, "all_admin", marketing_event())
    assert response.status_code == 201, response.text
    data = await ask(world.client, world.token("all_read"), EXECUTION_JOB, {"runId": "r-ingest-marketing"})
    assert data == {"data": {"execution": {"job": {"namespace": "marketing.etl", "name": "ingested"}}}}


async def test_mixed_batch_rejects_the_events_outside_the_grant(isolated_world: World) -> None:
    world = isolated_world
    batch = [finance_event("r-b0"), marketing_event("r-b1"), finance_event("r-b2")]
    response = await post_lineage(world, "fin_write", batch)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["duplicates"]) == (2, 0)
    assert report["rejected"] == [{"index": 1, "error": "this token may not write namespace 'marketing.etl'"}]
    runs = await ask(world.client, world.token("all_read"), "{ executions(first: 100) { edges { node { runId } } } }")
    ids = {node["runId"] for node in edges(runs["data"]["executions"])}
    assert {"r-b0", "r-b2"} <= ids
    assert "r-b1" not in ids
    jobs = await ask(
        world.client,
        world.token("all_read"),
        '{ job(namespace: "marketing.etl", name: "ingested") { name } }',
    )
    assert jobs == {"data": {"job": None}}


async def test_corpus_batch_with_exact_grants(isolated_world: World) -> None:
    """The Marquez `apples` events under a token granted `grandmas.kitchen` and `laurents-orchard` exactly:
    those that touch `cupboard` (or `backyard`) are rejected, the others stored."""
    world = isolated_world
    batch = [apples(1), apples(2), apples(3), apples(5), apples(7)]
    response = await post_lineage(world, "kitchen_write", batch)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["duplicates"]) == (2, 0), report
    assert report["rejected"] == [
        {"index": 2, "error": "this token may not write namespace 'cupboard'"},
        {"index": 3, "error": "this token may not write namespace 'cupboard'"},
        {"index": 4, "error": "this token may not write namespace 'backyard'"},
    ]
    namespaces = await ask(world.client, world.token("all_read"), "{ namespaces { name } }")
    names = {item["name"] for item in namespaces["data"]["namespaces"]}
    assert {"grandmas.kitchen", "laurents-orchard"} <= names
    assert not names & {"cupboard", "backyard"}
