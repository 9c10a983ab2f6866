"""Helpers the ingestion tests share: the OpenLineage corpus, database snapshots, a real gateway process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from gateway.database import Database
from gateway.errors import InvalidInput
from gateway.ingest import normalise
from gateway.orm import Asset, AssetAlias, Base, ColumnLineage, Job, LineageEdge, LineageEvent, Run, RunAsset
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".." / "shared" / "corpus" / "openlineage"
IN_CI = os.environ.get("CI", "").lower() == "true"

APPLES = "marquez/api-test-resources/apples/*.json"
# A dbt run of the jaffle shop on Postgres: five models, START and COMPLETE each, run ids templated.
DBT_RUN = "openlineage-dbt/postgres/result.json"

DERIVED_TABLES = ("assets", "asset_aliases", "jobs", "runs", "run_assets", "lineage_edges", "column_lineage")
INSERTION_TIMES = frozenset({"created_at", "updated_at", "received_at"})


# --- the corpus --------------------------------------------------------------------------------------------


def corpus() -> Path:
    """The corpus directory; fails under CI=true when it is missing, skips otherwise."""
    if not CORPUS.is_dir():
        message = f"OpenLineage corpus not found at {CORPUS.resolve()}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CORPUS


def corpus_files(pattern: str) -> list[Path]:
    files = sorted(corpus().glob(pattern))
    assert files, f"no corpus file matches {pattern!r} under {CORPUS.resolve()}"
    return files


def load_documents(*patterns: str) -> list[dict[str, Any]]:
    """Every event in the files the patterns match, in file order (a file may hold one event or a list)."""
    documents: list[dict[str, Any]] = []
    for pattern in patterns:
        for path in corpus_files(pattern):
            loaded = json.loads(path.read_text(encoding="utf-8"))
            documents.extend(loaded if isinstance(loaded, list) else [loaded])
    return documents


def documents_by_file(*patterns: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(path relative to the corpus, its events) for every file the patterns match, in order."""
    found = []
    for pattern in patterns:
        for path in corpus_files(pattern):
            loaded = json.loads(path.read_text(encoding="utf-8"))
            found.append((str(path.relative_to(corpus())), loaded if isinstance(loaded, list) else [loaded]))
    return found


def _run_uuid(namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"openlineage-job:{namespace}/{name}"))


_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def _fill(value: Any, *, run_id: str, parent_id: str | None, event_time: str, key: str) -> Any:
    if isinstance(value, dict):
        filled = {}
        for name, item in value.items():
            if name == "parent" and isinstance(item, dict):
                filled[name] = _fill(item, run_id=parent_id or run_id, parent_id=None, event_time=event_time, key=name)
            else:
                filled[name] = _fill(item, run_id=run_id, parent_id=parent_id, event_time=event_time, key=name)
        return filled
    if isinstance(value, list):
        return [_fill(item, run_id=run_id, parent_id=parent_id, event_time=event_time, key=key) for item in value]
    if not isinstance(value, str) or not ("{{" in value or "${json-unit" in value):
        return value
    if key == "runId" or "is_uuid" in value:
        return run_id
    if key == "eventTime" or "is_datetime" in value:
        return event_time
    if "env_var(" in value:
        return value.split("env_var(", 1)[1].split(")", 1)[0].strip("'\" ")
    return "filled-placeholder"


def fill_templates(documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace matcher placeholders deterministically: every event of a job gets the run id derived from the
    job's name (so START and COMPLETE of one run share it), a parent facet the id derived from the parent job,
    a templated eventTime a distinct time in file order, any other placeholder a fixed string."""
    filled = []
    for position, document in enumerate(documents):
        job = document.get("job", {})
        run_id = _run_uuid(job.get("namespace", ""), job.get("name", ""))
        parent_job = document.get("run", {}).get("facets", {}).get("parent", {}).get("job", {})
        parent_id = _run_uuid(parent_job.get("namespace", ""), parent_job.get("name", "")) if parent_job else None
        event_time = (_BASE_TIME + timedelta(seconds=position)).isoformat()
        filled.append(_fill(document, run_id=run_id, parent_id=parent_id, event_time=event_time, key=""))
    return filled


def event_time(document: dict[str, Any]) -> datetime:
    moment = datetime.fromisoformat(document["eventTime"].replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def by_event_time(documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(documents, key=event_time)


# --- database state ----------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON would carry it, so that both dialects compare alike."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _order(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


Snapshot = dict[str, list[dict[str, Any]]]


async def snapshot(db: Database) -> Snapshot:
    """Every row of every derived table, surrogate ids replaced by natural keys, insertion times left out.

    Two snapshots are equal when the tables hold the same rows, whatever ids and insertion times they got.
    """
    async with db.session() as session:
        natural: dict[str, dict[int, Any]] = {
            "assets": dict((await session.execute(select(Asset.id, Asset.key))).all()),
            "jobs": {
                job_id: f"{namespace}/{name}"
                for job_id, namespace, name in await session.execute(select(Job.id, Job.namespace, Job.name))
            },
            "runs": dict((await session.execute(select(Run.id, Run.run_id))).all()),
        }
        state: Snapshot = {}
        for name in DERIVED_TABLES:
            table = Base.metadata.tables[name]
            rows = []
            for row in (await session.execute(select(table))).mappings():
                plain: dict[str, Any] = {}
                for column in table.columns:
                    if column.primary_key or column.name in INSERTION_TIMES:
                        continue
                    value = row[column.name]
                    references = [foreign.column.table.name for foreign in column.foreign_keys]
                    if references and value is not None:
                        value = natural[references[0]][value]
                    plain[column.name] = _plain(value)
                rows.append(plain)
            state[name] = sorted(rows, key=_order)
    return state


def describe_difference(expected: Snapshot, actual: Snapshot) -> str:
    """The rows that differ, table by table, for an assertion message."""
    lines = []
    for name in DERIVED_TABLES:
        want = [_order(row) for row in expected.get(name, [])]
        got = [_order(row) for row in actual.get(name, [])]
        missing = [row for row in want if row not in got]
        extra = [row for row in got if row not in want]
        if missing or extra:
            lines.append(f"{name}: {len(want)} rows expected, {len(got)} found")
            lines.extend(f"  - {row}" for row in missing)
            lines.extend(f"  + {row}" for row in extra)
    return "\n".join(lines) or "no difference"


def assert_same_state(expected: Snapshot, actual: Snapshot, context: str = "") -> None:
    assert actual == expected, f"{context}\n{describe_difference(expected, actual)}"


STORE_REFUSES = "refused_by_the_store"


def refuse_in_the_store(monkeypatch: pytest.MonkeyPatch, message: str = "the store refuses this one") -> None:
    """Make the store refuse events of the job named STORE_REFUSES once they passed validation (a fault to inject:
    nothing valid makes the store refuse)."""
    execution = normalise._execution

    # Events of a batch are applied one by one or together: both make each run's record here.
    def refusing(event: Any, described: Any) -> Any:
        if event.job.name == STORE_REFUSES:
            raise InvalidInput(message)
        return execution(event, described)

    monkeypatch.setattr(normalise, "_execution", refusing)


async def count_rows(db: Database, model: Any) -> int:
    async with db.session() as session:
        return len((await session.execute(select(model.__table__))).all())


async def raw_event_count(db: Database) -> int:
    return await count_rows(db, LineageEvent)


async def clear_database(db: Database) -> None:
    """Delete every row (derived tables and the raw event log); ids keep counting, which the snapshot ignores."""
    async with db.transaction() as session:
        for model in (ColumnLineage, LineageEdge, RunAsset, AssetAlias, Asset, Run, Job, LineageEvent):
            await session.execute(delete(model))


# --- a real gateway process --------------------------------------------------------------------------------


def gateway_executable() -> Path:
    return Path(sys.executable).parent / "asset-gateway"


async def run_gateway_command(*arguments: str, environment: dict[str, str], within: float = 90.0) -> tuple[int, str]:
    """Run `asset-gateway <arguments>`; (exit code, output and errors)."""
    process = await asyncio.create_subprocess_exec(
        str(gateway_executable()),
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"asset-gateway {' '.join(arguments)} did not finish within {within}s", pytrace=False)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def gateway_environment(data_dir: Path, **variables: str) -> dict[str, str]:
    """The test's environment without any GATEWAY_* setting of its own, plus the given ones."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    environment["GATEWAY_DATA_DIR"] = str(data_dir)
    environment.update({f"GATEWAY_{name.upper()}": value for name, value in variables.items()})
    return environment


@contextmanager
def running_gateway(data_dir: Path, ready_within: float = 30.0, **variables: str) -> Iterator[str]:
    """`asset-gateway serve` on a free loopback port; yields its base URL, stops it with SIGTERM."""
    with running_gateways([data_dir], ready_within, **variables) as (url,):
        yield url


@contextmanager
def running_gateways(data_dirs: Sequence[Path], ready_within: float = 30.0, **variables: str) -> Iterator[list[str]]:
    """One `asset-gateway serve` per data directory, started together; yields their base URLs."""
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for data_dir in data_dirs:
            port = free_port()
            data_dir.mkdir(parents=True, exist_ok=True)
            log_path = data_dir / "gateway-serve.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [
                        str(gateway_executable()),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    env=gateway_environment(data_dir, **variables),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            started.append((process, f"http://127.0.0.1:{port}", log_path))
        for process, url, log_path in started:
            _wait_until_ready(process, url, log_path, ready_within)
        yield [url for _, url, _ in started]
    finally:
        for process, _, _ in started:
            stop(process)
    for process, _, log_path in started:
        # A server that died on its own (rather than on our SIGTERM) is a failure too.
        assert process.returncode in (0, -signal.SIGTERM), _tail(log_path)


def _tail(log_path: Path) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return f"server log:\n{text[-4000:]}"


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"asset-gateway serve exited with {process.returncode}\n{_tail(log_path)}", pytrace=False)
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=2.0)
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        time.sleep(0.05)  # bounded readiness poll
    stop(process)
    pytest.fail(f"asset-gateway serve not ready within {within}s ({last})\n{_tail(log_path)}", pytrace=False)


def stop(process: subprocess.Popen[bytes], within: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        pytest.fail(f"asset-gateway serve did not stop within {within}s of SIGTERM", pytrace=False)
