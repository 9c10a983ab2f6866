"""The must-show: two `asset-gateway serve` processes on one Postgres. A client subscribed on one of them, with
gql's graphql-transport-ws transport, sees within a second what is written through the other: an OpenLineage
event (the asset it wrote, its execution) and an alert the freshness monitor opens. Then the subscribed-to
process stops promptly on SIGTERM with the subscriptions still open."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError
from gql.transport.websockets import WebsocketsTransport

from tests.helpers import free_port
from tests.live.support import FLOOD, UPSERT, big_asset, stalled_socket
from tests.test_server_process import gateway_env

CLI = Path(sys.executable).parent / "asset-gateway"
NAMESPACE = "postgres://replica-db:5432"
PRODUCER = "https://github.com/example/asset-gateway-tests"
LATENCY = 1.0  # seconds from posting on one process to the update on the other
SHUTDOWN_TIMEOUT = 2
FLOOD_WRITES = 30
ASSET_CHANGED = """subscription($prefix: String!) {
  assetChanged(filter: {keyPrefix: $prefix}) { key lastStatus lastExecution { runId } } }"""
EXECUTION_UPDATED = """subscription {
  executionUpdated(filter: {jobNamespace: "replica.jobs"}) { runId state outputs { asset { key } } } }"""
ALERT_RAISED = (
    """subscription { alertRaised(filter: {namespacePrefix: "postgres://replica-db"}) { kind asset { key } } }"""
)
POLICY = "mutation($input: FreshnessPolicyInput!) { setFreshnessPolicy(input: $input) { name } }"
RUN_MONITOR = "mutation { runMonitor { alertsOpened error } }"


@dataclass
class Gateway:
    base: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


@asynccontextmanager
async def gateway(env: dict[str, str], log: Path) -> AsyncIterator[Gateway]:
    port = free_port()
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            str(CLI),
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=output,
            stderr=output,
            stdin=asyncio.subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 20
            while True:
                assert process.returncode is None, f"the server exited early:\n{_read(log)}"
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no answer from {base}:\n{_read(log)}"
                await asyncio.sleep(0.1)
        yield Gateway(base, process, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


def run_event(key_name: str, state: str = "COMPLETE", event_time: datetime | None = None) -> dict[str, Any]:
    moment = event_time or datetime.now(UTC)
    return {
        "eventType": state,
        "eventTime": moment.isoformat().replace("+00:00", "Z"),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "replica.jobs", "name": f"build_{key_name}"},
        "outputs": [{"namespace": NAMESPACE, "name": key_name}],
    }


class Follower:
    """Collects one subscription's results in a queue, from a task."""

    def __init__(self, session: Any, query: str, variables: dict[str, Any] | None = None) -> None:
        self.results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._follow(session, GraphQLRequest(query, variable_values=variables)))

    async def _follow(self, session: Any, request: GraphQLRequest) -> None:
        async for result in session.subscribe(request):
            await self.results.put(result)

    async def next(self, within: float) -> dict[str, Any]:
        return await asyncio.wait_for(self.results.get(), within)

    def drain(self) -> None:
        while not self.results.empty():
            self.results.get_nowait()


async def warm_up(follower: Follower, write: Callable[[int], Awaitable[None]]) -> None:
    """Writes until the subscription answers: from then on it is surely registered on the server."""
    for attempt in range(50):
        await write(attempt)
        try:
            await follower.next(0.3)
            return
        except TimeoutError:
            continue
    raise AssertionError("the subscription never answered")


async def test_two_replicas_fan_out_through_postgres(tmp_path: Path, clean_postgres: str) -> None:
    env = gateway_env(
        GATEWAY_DATABASE_URL=clean_postgres,
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_SCHEDULER_ENABLED="false",
        GATEWAY_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT),
    )
    async with AsyncExitStack() as stack:
        subscribed_to, written_to = await asyncio.gather(
            stack.enter_async_context(gateway(env, tmp_path / "a.log")),
            stack.enter_async_context(gateway(env, tmp_path / "b.log")),
        )
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=written_to.base, timeout=30))

        async def post_event(event: dict[str, Any]) -> None:
            response = await http.post("/api/v1/lineage", json=event)
            assert response.status_code == 201, response.text

        async def graphql(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            body = (await http.post("/graphql", json={"query": query, "variables": variables or {}})).json()
            assert "errors" not in body, body
            return dict(body["data"])

        transport = WebsocketsTransport(
            url=subscribed_to.ws_url, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL]
        )
        session = await stack.enter_async_context(Client(transport=transport))
        assets = Follower(session, ASSET_CHANGED, {"prefix": f"{NAMESPACE}/"})
        executions = Follower(session, EXECUTION_UPDATED)
        alerts = Follower(session, ALERT_RAISED)

        async def write_asset(n: int) -> None:
            await post_event(run_event(f"warm_up_{n}"))

        async def fail_and_sweep(n: int) -> None:
            await post_event(run_event(f"failing_{n}", "FAIL"))
            await graphql(RUN_MONITOR)

        await warm_up(assets, write_asset)
        await warm_up(executions, write_asset)
        await warm_up(alerts, fail_and_sweep)
        for follower in (assets, executions, alerts):
            follower.drain()

        # An OpenLineage event posted to one process...
        event = run_event("mart.orders_daily")
        started = time.monotonic()
        await post_event(event)
        # ...reaches the subscriber on the other within a second: the asset it wrote, and its execution.
        changed = (await assets.next(LATENCY - (time.monotonic() - started)))["assetChanged"]
        assert changed["key"] == f"{NAMESPACE}/mart.orders_daily"
        assert changed["lastExecution"] == {"runId": event["run"]["runId"]}
        updated = (await executions.next(LATENCY - (time.monotonic() - started)))["executionUpdated"]
        assert updated == {
            "runId": event["run"]["runId"],
            "state": "COMPLETE",
            "outputs": [{"asset": {"key": f"{NAMESPACE}/mart.orders_daily"}}],
        }

        # A freshness policy, a stale asset, and a sweep run on the other process: the alert arrives here.
        await post_event(run_event("mart.stale_daily", event_time=datetime.now(UTC) - timedelta(days=2)))
        stale_key = f"{NAMESPACE}/mart.stale_daily"
        await graphql(POLICY, {"input": {"name": "stale-daily", "assetKey": stale_key, "maxAge": "24h"}})
        started = time.monotonic()
        assert (await graphql(RUN_MONITOR))["runMonitor"] == {"alertsOpened": 1, "error": None}
        raised = (await alerts.next(LATENCY - (time.monotonic() - started)))["alertRaised"]
        assert raised == {"kind": "STALE", "asset": {"key": stale_key}}

        # A client that stopped reading, with megabytes of updates waiting for it: nothing can close its connection
        # gracefully, yet the process must stop on SIGTERM, after the shutdown timeout at worst.
        stalled = await stack.enter_async_context(stalled_socket(subscribed_to.base))
        await stalled.subscribe(FLOOD)
        await warm_up(assets, write_asset)
        for n in range(FLOOD_WRITES):
            await graphql(UPSERT, big_asset(f"s3://flood/{n}.bin"))

        # SIGTERM with these subscriptions open: the process stops promptly, and the client sees it go.
        started = time.monotonic()
        subscribed_to.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(subscribed_to.process.wait(), 10)
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT + 3
        assert subscribed_to.process.returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in subscribed_to.output()
        done, _ = await asyncio.wait([assets.task, executions.task, alerts.task], timeout=10)
        assert len(done) == 3
        # The client learns that the connection is gone (the server closed it with 1012, "service restart").
        assert all(isinstance(task.exception(), TransportError) for task in done)
