"""Leader election for scheduled sweeps: two real `asset-gateway serve` processes on one Postgres database.

Only the process holding the advisory lock sweeps, about once per interval; when it dies (SIGKILL: no
shutdown, no unlock), the other process takes the lock and carries on within a couple of intervals.
Postgres only (SQLite serves one process); under CI=true a missing Postgres fails, as everywhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.orm import MonitorRun
from tests.helpers import free_port

CLI = Path(sys.executable).parent / "asset-gateway"
INTERVAL = 1.0  # seconds: the smallest monitor_interval_seconds the settings allow
WINDOW = 5  # intervals observed with both processes up
TAKEOVER_MARGIN = 1.0  # seconds, for the follower to notice the lock is free
READY_WITHIN_SECONDS = 20
STOP_WITHIN_SECONDS = 15
LEADS = "this process now leads scheduled work"
HAVE_PROC = Path("/proc/self/fd").is_dir()
MONITORS = "{ monitors { name scheduled intervalSeconds } }"
LOCK_HOLDERS = """
SELECT a.client_port, a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass
class Gateway:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    base: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client_ports(self) -> set[int]:
        """Local TCP ports of the process's sockets (its database connections among them), from /proc."""
        inodes = set()
        fds = Path(f"/proc/{self.process.pid}/fd")
        if self.process.returncode is not None or not fds.is_dir():
            return set()
        for fd in fds.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
        ports = set()
        for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
            if table.exists():
                for line in table.read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports


def gateway_env(**variables: str) -> dict[str, str]:
    """This environment without GATEWAY_* settings or proxies, plus `variables`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and not name.lower().endswith("_proxy")
    }
    env.update(variables)
    return env


def open_log(log: Path) -> BinaryIO:
    return log.open("wb")


async def stop(gateway: Gateway) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    process = gateway.process
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_WITHIN_SECONDS)
    except TimeoutError:
        process.kill()
        await asyncio.wait_for(process.wait(), 10)


@asynccontextmanager
async def serving(name: str, env: dict[str, str], log: Path) -> AsyncIterator[Gateway]:
    """Starts `asset-gateway serve` on a free port; stops it however the test ends."""
    port = free_port()
    with open_log(log) as output:
        process = await asyncio.create_subprocess_exec(
            str(CLI),
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    gateway = Gateway(name, process, log, f"http://127.0.0.1:{port}")
    try:
        yield gateway
    finally:
        await stop(gateway)


async def wait_ready(gateway: Gateway, client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while True:
        assert gateway.process.returncode is None, f"{gateway.name} exited early:\n{gateway.output()}"
        try:
            if (await client.get(f"{gateway.base}/healthz", timeout=1)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no answer from {gateway.name}:\n{gateway.output()}"
        await asyncio.sleep(0.1)


async def sweep_times(engine: AsyncEngine) -> list[datetime]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(MonitorRun.started_at).order_by(MonitorRun.started_at))
        return list(rows.scalars().all())


async def lock_holders(engine: AsyncEngine) -> list[tuple[int, str]]:
    """(client port, state) of each session holding an advisory lock in the database."""
    async with engine.connect() as connection:
        return [(port, state) for port, state in (await connection.execute(text(LOCK_HOLDERS))).all()]


async def leader_of(engine: AsyncEngine, gateways: list[Gateway]) -> Gateway:
    """The process whose database connection holds the advisory lock (and whose log says it leads)."""
    [(port, state)] = await lock_holders(engine)
    # Between heartbeats the lock's session must be idle, not 'idle in transaction': a transaction left
    # open for the life of the process holds back VACUUM and meets idle_in_transaction_session_timeout.
    assert state in ("idle", "active"), state
    living = [gateway for gateway in gateways if gateway.process.returncode is None]
    if HAVE_PROC:
        [leader] = [gateway for gateway in living if port in gateway.client_ports()]
    else:  # no /proc to map the port to a process: go by the logs
        [leader] = [gateway for gateway in living if LEADS in gateway.output()]
    assert leader.process.returncode is None
    assert LEADS in leader.output(), leader.output()
    return leader


async def test_one_leader_sweeps_and_the_other_takes_over_when_it_dies(clean_postgres: str, tmp_path: Path) -> None:
    env = gateway_env(
        GATEWAY_DATABASE_URL=clean_postgres,
        GATEWAY_DATA_DIR=str(tmp_path / "unused"),
        GATEWAY_SCHEDULER_ENABLED="true",
        GATEWAY_MONITOR_INTERVAL_SECONDS=str(int(INTERVAL)),
    )
    engine = create_async_engine(clean_postgres)
    try:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=10, trust_env=False))
            # Both start at once: they race for the lock from their very first tick.
            first = await stack.enter_async_context(serving("first", env, tmp_path / "first.log"))
            second = await stack.enter_async_context(serving("second", env, tmp_path / "second.log"))
            gateways = [first, second]
            for gateway in gateways:
                await wait_ready(gateway, client)
                response = await client.post(f"{gateway.base}/graphql", json={"query": MONITORS})
                assert response.json() == {
                    "data": {"monitors": [{"name": "freshness", "scheduled": True, "intervalSeconds": INTERVAL}]}
                }

            deadline = time.monotonic() + 10
            while not await sweep_times(engine):
                assert time.monotonic() < deadline, f"nobody swept:\n{first.output()}\n{second.output()}"
                await asyncio.sleep(0.1)

            # A window of WINDOW intervals with both processes up: one sweep per interval, not two.
            window_start = datetime.now(UTC)
            await asyncio.sleep(WINDOW * INTERVAL)
            window_end = datetime.now(UTC)
            times = await sweep_times(engine)
            in_window = [moment for moment in times if window_start <= moment < window_end]
            assert WINDOW - 2 <= len(in_window) <= WINDOW + 2, (in_window, first.output(), second.output())
            gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
            assert min(gaps) > INTERVAL / 2, f"two sweeps in one interval: {times}"
            assert len(in_window) < 2 * WINDOW - 2  # well below what two schedulers sweeping each would do

            leader = await leader_of(engine, gateways)
            [follower] = [gateway for gateway in gateways if gateway is not leader]
            assert LEADS not in follower.output(), follower.output()

            # The leader dies without a chance to unlock: its connection closes, the lock is free.
            leader.process.kill()
            killed_at = datetime.now(UTC)
            killed = time.monotonic()
            assert await asyncio.wait_for(leader.process.wait(), 10) == -signal.SIGKILL
            deadline = killed + 10
            while not [moment for moment in await sweep_times(engine) if moment > killed_at]:
                assert time.monotonic() < deadline, f"no sweep after the leader died:\n{follower.output()}"
                await asyncio.sleep(0.05)
            took = time.monotonic() - killed
            assert took <= 2 * INTERVAL + TAKEOVER_MARGIN, f"the follower took {took:.2f} s to sweep"
            assert await leader_of(engine, gateways) is follower

            # And it keeps sweeping, once per interval.
            await asyncio.sleep(2 * INTERVAL + 0.5)
            after = [moment for moment in await sweep_times(engine) if moment > killed_at]
            assert 2 <= len(after) <= 4, after
            gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(after)]
            assert min(gaps) > INTERVAL / 2, after
            assert follower.process.returncode is None, follower.output()
    finally:
        await engine.dispose()
