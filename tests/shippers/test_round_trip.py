"""Round trip: gateway A (SQLite) ships its catalog through the openlineage shipper's `http` transport into
gateway B, a real `asset-gateway serve` on Postgres; B then holds what A holds.

Compared, by natural key: every asset (key, namespace, name, type, description, owners, tags, schema fields,
aliases, deletion), every job (type, description), every run (run id, job, state, parent, inputs, outputs,
started/ended/state/event times, whether it is only a placeholder parent) and every edge (live ones with their
origin and job, retired ones with their retirement time).

What is not the same, by design:
- run ids that are not UUIDs. The spec wants UUIDs and the gateway accepts any string, so the shipper sends
  uuid5(RUN_ID_NAMESPACE, run id) (a UUID keeps its canonical form): A's run `run_id` is B's
  `ol_run_id("run_id")`, and so is every parent link to it. A's catalog is compared with its run ids mapped.
- facets are not compared: the shipper fills `_producer`/`_schemaURL` that producers left out and gives naive
  facet times their UTC zone, so that every event it sends is valid; B stores the facets as sent.
- the times of a run known only as a parent (a placeholder: no event of its own). The gateway derives them from
  the child events that named the parent, and the stored runs do not tell which of a child's events those were:
  the shipper names the parent in every event of a child (the spec asks for the parent facet on each), so B's
  placeholder spans all its children's events while A's spans those that named it. In the corpus, the dbt
  invocation's parent facet is on the models' COMPLETE events only, and the Spark-on-Dataproc scenario names its
  application in one of the split files. The placeholder itself (its run id, job, state OTHER, children) is the
  same, and so are the times of every run that sent events.
- insertion times (created_at, updated_at) are B's own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.database import Database
from gateway.settings import Settings
from tests.ingest.support import gateway_environment, run_gateway_command, running_gateway
from tests.shippers import (
    catalog,
    corpus_batches,
    differences,
    ingest,
    make_runner,
    ol_run_id,
    without_placeholder_times,
)


async def test_catalog_arrives_whole_in_a_postgres_gateway(
    tmp_path: Path, sqlite_template: Path, clean_postgres: str
) -> None:
    (tmp_path / "a").mkdir()
    shutil.copy(sqlite_template, tmp_path / "a" / "gateway.db")
    a = Database(Settings(data_dir=tmp_path / "a", auto_migrate=False))
    b = Database(Settings(data_dir=tmp_path / "b", database_url=clean_postgres, auto_migrate=False))
    try:
        await ingest(a, corpus_batches())
        expected = without_placeholder_times(await catalog(a, ol_run_id))
        _not_vacuous(expected, await catalog(a))

        environment = gateway_environment(tmp_path / "b", database_url=clean_postgres)
        code, output = await run_gateway_command("migrate", environment=environment)
        assert code == 0, output
        with running_gateway(tmp_path / "b", database_url=clean_postgres, scheduler_enabled="false") as url:
            transport = {"type": "http", "url": url, "endpoint": "api/v1/lineage", "timeout": 30}
            runner = make_runner(a, "to-b", "openlineage", {"transport": transport}, batch_size=150)
            try:
                report = await runner.run()
                assert report.error is None, report
                assert report.batches > 1, "the feed should take several batches"
                actual = without_placeholder_times(await catalog(b))
                assert actual == expected, differences(expected, actual)

                # A full re-export sends the same state again: B does not change.
                again = await runner.run(full=True)
                assert again.error is None, again
                # A full export counts entities: every asset, job, run and edge, retired edges too.
                assert again.shipped == sum(len(part) for part in expected.values())
            finally:
                await runner.aclose()
            after_full = without_placeholder_times(await catalog(b))
            assert after_full == expected, differences(expected, after_full)
    finally:
        await a.dispose()
        await b.dispose()


def _not_vacuous(mapped: dict[str, dict[object, object]], original: dict[str, dict[object, object]]) -> None:
    """The slice has what the comparison is about: aliases, declared and retired lineage, parents (one of them
    known only as a parent), failed runs, run ids that are not UUIDs (renamed by the mapping)."""
    assets, runs = mapped["assets"], mapped["runs"]
    assert len(assets) > 50
    assert len(runs) > 50
    assert len(mapped["jobs"]) > 50
    assert any(asset["aliases"] for asset in assets.values())
    assert any(asset["owners"] for asset in assets.values())
    assert any(asset["tags"] for asset in assets.values())
    assert any(asset["description"] for asset in assets.values())
    assert any(a["fields"] for a in assets.values())
    assert sum(origin == "declared" for origin in mapped["live_edges"].values()) >= 2
    assert mapped["retired_edges"]
    assert any(run["placeholder"] for run in runs.values())
    assert {run["state"] for run in runs.values()} >= {"COMPLETE", "FAIL"}
    renamed = set(original["runs"]) - set(runs)
    assert {"run_id", "run_id.report"} <= renamed
    assert runs[ol_run_id("run_id.report")]["parent"] == ol_run_id("run_id")
