"""No N+1: the SQL statements a list costs do not grow with its length (DataLoaders batch every level)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.database import Database
from gateway.store.assets import AssetSpec, upsert_asset
from gateway.store.executions import DatasetTouch, ExecutionRecord, ParentRef, record_execution
from tests.helpers import count_statements, graphql_data


async def statements(client: httpx.AsyncClient, app: Starlette, query: str, variables: dict[str, Any]) -> int:
    with count_statements(app.state.db) as counter:
        await graphql_data(client, query, variables)
    return counter.count


async def _assets_with_runs(db: Database, now: datetime, count: int) -> None:
    """`count` tables, each written by a run of its own job (under a DAG run) that read a source."""
    async with db.transaction() as session:
        for index in range(count):
            key = f"dw://wh/table_{index:03d}"
            await upsert_asset(
                session,
                AssetSpec(
                    key,
                    owners=(f"team:{index % 5}",),
                    tags=("mart", f"tier:{index % 3}"),
                    aliases=(f"urn:{index}",),
                    fields=({"name": f"column_{index}", "type": "int"},),
                ),
                now,
            )
            moment = now - timedelta(minutes=index)
            await record_execution(
                session,
                ExecutionRecord(
                    "airflow://prod",
                    f"job_{index:03d}",
                    f"run-{index:03d}",
                    "COMPLETE" if index % 4 else "FAIL",
                    moment,
                    started_at=moment - timedelta(minutes=1),
                    inputs=(DatasetTouch(f"pg://db/source_{index:03d}", {"rows": index}),),
                    outputs=(DatasetTouch(key, {"stats": {"rowCount": index}}),),
                    parent=ParentRef(f"dag-{index:03d}", "airflow://prod", "nightly"),
                ),
                now,
            )


ASSETS = """query($first: Int!) {
  assets(first: $first, filter: {keyPrefix: "dw://wh/table_"}) {
    totalCount
    edges { node {
      key owners tags lastMaterializedAt lastStatus aliases schema { name type }
      lastExecution { runId state job { name } }
      producers { name } consumers { name }
      upstream { key } downstream { key }
    } }
  }
}"""


EXECUTIONS = """query($first: Int!) {
  executions(first: $first) {
    edges { node {
      runId state startedAt endedAt durationSeconds
      job { namespace name latestExecution { runId } }
      parent { runId job { name } }
      children { runId state }
      inputs { role facets asset { key owners lastExecution { runId } } }
      outputs { role facets asset { key tags lastStatus } }
    } }
  }
}"""


async def test_listing_assets_and_executions_costs_the_same_for_10_and_100(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    # One build for both lists: 100 tables, 100 task runs and 100 DAG runs.
    await _assets_with_runs(db, now, 100)

    assets = await graphql_data(client, ASSETS, {"first": 100})
    nodes = [edge["node"] for edge in assets["assets"]["edges"]]
    assert len(nodes) == 100
    assert all(node["lastExecution"]["job"]["name"] == f"job_{node['key'][-3:]}" for node in nodes)
    assert all(node["upstream"] == [{"key": f"pg://db/source_{node['key'][-3:]}"}] for node in nodes)
    assert all(node["schema"] == [{"name": f"column_{int(node['key'][-3:])}", "type": "int"}] for node in nodes)
    ten = await statements(client, app, ASSETS, {"first": 10})
    hundred = await statements(client, app, ASSETS, {"first": 100})
    assert ten == hundred
    assert hundred <= 12

    executions = await graphql_data(client, EXECUTIONS, {"first": 100})
    nodes = [edge["node"] for edge in executions["executions"]["edges"]]
    assert len(nodes) == 100
    tasks = [node for node in nodes if node["runId"].startswith("run-")]
    dags = [node for node in nodes if node["runId"].startswith("dag-")]
    # Each page mixes task runs (inputs, outputs, a parent) and DAG runs (children).
    assert len(tasks) == len(dags) == 50
    assert all(len(node["inputs"]) == 1 and len(node["outputs"]) == 1 for node in tasks)
    assert all(node["parent"]["runId"] == "dag-" + node["runId"][4:] for node in tasks)
    assert all([child["runId"] for child in node["children"]] == ["run-" + node["runId"][4:]] for node in dags)
    ten = await statements(client, app, EXECUTIONS, {"first": 10})
    hundred = await statements(client, app, EXECUTIONS, {"first": 100})
    assert ten == hundred
    assert hundred <= 12


async def _fan(db: Database, now: datetime, prefix: str, width: int) -> None:
    """root -> mid_i -> leaf_i for i < width: 1 + 2 * width assets on two levels, every one written by a run."""
    async with db.transaction() as session:
        await record_execution(
            session,
            ExecutionRecord(
                "airflow://prod",
                f"{prefix}.seed",
                f"{prefix}-seed",
                "COMPLETE",
                now,
                outputs=(DatasetTouch(f"{prefix}://x/root"),),
            ),
            now,
        )
        for index in range(width):
            mid, leaf = f"{prefix}://x/mid_{index:03d}", f"{prefix}://x/leaf_{index:03d}"
            for asset in (mid, leaf):
                await upsert_asset(session, AssetSpec(asset, owners=(f"team:{index % 7}",)), now)
            for step, (source, target) in enumerate(((f"{prefix}://x/root", mid), (mid, leaf))):
                await record_execution(
                    session,
                    ExecutionRecord(
                        "airflow://prod",
                        f"{prefix}.step{step}_{index:03d}",
                        f"{prefix}-{step}-{index:03d}",
                        "COMPLETE",
                        now,
                        inputs=(DatasetTouch(source),),
                        outputs=(DatasetTouch(target),),
                    ),
                    now,
                )


LINEAGE = """query($key: String!) {
  lineage(key: $key, direction: DOWNSTREAM, depth: 2, includeJobs: true) {
    nodes { depth asset { key owners lastStatus lastExecution { runId state job { name } } } }
    edges { upstreamKey downstreamKey upstream { key } downstream { owners } jobs { name } }
    jobs { namespace name }
    truncated
  }
}"""


async def test_lineage_costs_the_same_for_21_and_101_nodes(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    await _fan(db, now, "small", 10)
    await _fan(db, now, "large", 50)
    large = (await graphql_data(client, LINEAGE, {"key": "large://x/root"}))["lineage"]
    assert len(large["nodes"]) == 101
    assert len(large["edges"]) == 100
    assert len(large["jobs"]) == 100
    assert all(node["asset"]["lastExecution"] is not None for node in large["nodes"])
    assert large["truncated"] is False

    small_count = await statements(client, app, LINEAGE, {"key": "small://x/root"})
    large_count = await statements(client, app, LINEAGE, {"key": "large://x/root"})
    assert small_count == large_count
    # The root, one statement per level, then one batch per loader.
    assert large_count <= 10


AUDIT_LOG = """query($key: String!, $after: String) {
  asset(key: $key) {
    executions(first: 20, role: OUTPUT, after: $after) {
      edges { cursor node { eventTime execution { runId state job { name } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""


async def test_an_audit_log_page_reads_its_runs_and_jobs_in_its_own_statement(
    client: httpx.AsyncClient, app: Starlette, db: Database, now: datetime
) -> None:
    async with db.transaction() as session:
        for index in range(30):
            moment = now - timedelta(minutes=index)
            await record_execution(
                session,
                ExecutionRecord(
                    "airflow://prod",
                    f"job_{index % 3}",
                    f"run-{index:03d}",
                    "COMPLETE" if index % 4 else "FAIL",
                    moment,
                    inputs=(DatasetTouch(f"pg://db/source_{index:03d}"),),
                    outputs=(DatasetTouch("dw://wh/audited"),),
                ),
                now,
            )
    # The first request also asks whether any token exists (then cached): not part of the page.
    await graphql_data(client, AUDIT_LOG, {"key": "dw://wh/audited", "after": None})
    seen: list[tuple[str, str, str]] = []
    after = None
    while True:
        with count_statements(app.state.db) as counter:
            data = await graphql_data(client, AUDIT_LOG, {"key": "dw://wh/audited", "after": after})
        # The asset by key, then the page with its runs and their jobs: no statement per entry, none per level.
        assert counter.count == 2, counter.statements
        page = data["asset"]["executions"]
        for edge in page["edges"]:
            execution = edge["node"]["execution"]
            seen.append((execution["runId"], execution["state"], execution["job"]["name"]))
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [
        (f"run-{index:03d}", "COMPLETE" if index % 4 else "FAIL", f"job_{index % 3}") for index in range(30)
    ]
