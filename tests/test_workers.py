"""`asset-gateway serve --workers N`: several real processes on one address and one Postgres."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port
from tests.ingest.support import APPLES, load_documents
from tests.test_server_process import CATALOG, CLI, assert_stopped_gracefully, gateway_env, post, run_cli, serving

REQUESTS = 400


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def serving_workers(pid: int) -> list[int]:
    """The worker processes of a `serve --workers` parent (uvicorn spawns fresh interpreters)."""
    return [child for child in children(pid) if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def metrics_directory(worker: int) -> Path:
    environment = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    value = next(item for item in environment if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return Path(value.split(b"=", 1)[1].decode())


def graphql_requests_counted(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    pattern = re.compile(r"^gateway_http_requests_total\{([^}]*)\} (\S+)$", re.MULTILINE)
    return sum(
        float(value)
        for labels, value in pattern.findall(text)
        if 'route="/graphql"' in labels and 'method="POST"' in labels and 'status="200"' in labels
    )


def accepted_from(worker: int, client_ports: set[int]) -> int:
    """How many of the connections from `client_ports` the process `worker` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{worker}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    held = 0
    for line in Path(f"/proc/{worker}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        held += fields[9] in inodes and remote_port in client_ports
    return held


def assert_a_burst_of_connections_is_shared(base: str, workers: list[int]) -> None:
    """Connections opened in one burst, as a load test or a client pool opens them, land on every worker.

    With one listening socket shared by the workers, the first woken accepts all those pending at once."""
    port = int(base.rsplit(":", 1)[1])
    burst = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
    try:
        client_ports = {connection.getsockname()[1] for connection in burst}
        deadline = time.monotonic() + 10
        while sum(held := [accepted_from(worker, client_ports) for worker in workers]) < len(burst):
            assert time.monotonic() < deadline, f"the workers did not accept the burst: {held}"
            time.sleep(0.05)
        # Spread by hash, each of two workers gets at least 6 of 32 but once in ten thousand runs.
        assert min(held) >= 6, f"a burst of connections went to one worker: {held}"
        for connection in burst:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
            assert connection.recv(64).startswith(b"HTTP/1.1 200"), "a connection of the burst was not served"
    finally:
        for connection in burst:
            connection.close()


def assert_refused_as_in_use(env: dict[str, str], port: int) -> None:
    """`serve --workers 2` on `port` exits with a message, and no traceback, before starting any worker."""
    result = subprocess.run(
        [str(CLI), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def assert_supervises_without_the_gateway(pid: int) -> None:
    """`serve` became the lean supervisor (gateway/supervisor.py): same process, none of the gateway's libraries."""
    assert b"gateway.supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes()
    mapped = Path(f"/proc/{pid}/maps").read_text()
    # Their compiled parts, mapped into any process that imported them (as the checks before the exec did).
    for package in ("sqlalchemy", "asyncpg", "pydantic_core"):
        assert f"/{package}/" not in mapped, f"the supervisor loaded {package}"


def test_two_workers_share_the_address_the_work_and_the_figures(tmp_path: Path, clean_postgres: str) -> None:
    env = gateway_env(GATEWAY_DATABASE_URL=clean_postgres, GATEWAY_DATA_DIR=str(tmp_path / "unused"))
    run_cli(env, "migrate")
    run_cli(env, "demo")
    log = tmp_path / "server.log"
    with serving(env, log, serve_args=("--workers", "2")) as (base, process):
        deadline = time.monotonic() + 20
        while len(workers := serving_workers(process.pid)) < 2:
            assert time.monotonic() < deadline, f"two workers did not start:\n{log.read_text()}"
            time.sleep(0.1)
        assert len(workers) == 2
        assert_supervises_without_the_gateway(process.pid)
        directory = metrics_directory(workers[0])
        assert directory.is_dir()
        # Each worker is ready once it answers; wait until neither is still starting.
        for _ in range(20):
            assert post(base, CATALOG)["assets"]["totalCount"] == 12
        before = {worker: cpu_ticks(worker) for worker in workers}
        counted_before = graphql_requests_counted(base)

        assert_a_burst_of_connections_is_shared(base, workers)
        # A second gateway on the same address is refused, not added to this one's workers.
        port = base.rsplit(":", 1)[1]
        assert_refused_as_in_use(env, int(port))
        clients = 16
        opened = threading.Barrier(clients)

        def queries(_: int) -> set[int]:
            with httpx.Client(base_url=base, timeout=30) as client:
                opened.wait(timeout=30)
                answers = set()
                for _ in range(REQUESTS // clients):
                    response = client.post("/graphql", json={"query": CATALOG})
                    assert response.status_code == 200, response.text
                    answers.add(int(response.json()["data"]["assets"]["totalCount"]))
                return answers

        with ThreadPoolExecutor(max_workers=clients) as pool:
            assert set().union(*pool.map(queries, range(clients))) == {12}
        used = {worker: cpu_ticks(worker) - before[worker] for worker in workers}
        assert all(ticks > 0.1 * sum(used.values()) for ticks in used.values()), f"one worker did the work: {used}"
        # /metrics sums the workers' figures, whichever of them answers the scrape.
        assert graphql_requests_counted(base) - counted_before == REQUESTS

        # A write through one worker is read through any.
        response = httpx.post(f"{base}/api/v1/lineage", json=load_documents(APPLES)[0], timeout=30)
        assert response.status_code == 201, response.text
        for _ in range(10):
            assert post(base, CATALOG)["assets"]["totalCount"] > 12

        # A worker that dies is replaced; the other answers meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        # Connections the kernel handed the dying worker's socket are reset with it; once it is gone (a zombie
        # until the supervisor reaps it), every new connection goes to the other.
        deadline = time.monotonic() + 10
        while is_alive(workers[0]):
            assert time.monotonic() < deadline, "the killed worker did not die"
            time.sleep(0.02)
        for _ in range(20):
            assert post(base, CATALOG)["assets"]["totalCount"] > 12
        deadline = time.monotonic() + 30
        while len(replaced := serving_workers(process.pid)) < 2 or workers[0] in replaced:
            assert time.monotonic() < deadline, f"the killed worker was not replaced:\n{log.read_text()}"
            time.sleep(0.2)
        workers = replaced
        for _ in range(20):
            assert post(base, CATALOG)["assets"]["totalCount"] > 12
    assert_stopped_gracefully(process, log)
    assert not any(Path(f"/proc/{worker}").exists() for worker in workers), "a worker outlived the server"
    assert not directory.exists(), "the workers' shared directory was left behind"
    assert "Traceback" not in log.read_text()


def test_workers_need_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = gateway_env(GATEWAY_DATA_DIR=str(data_dir))
    result = subprocess.run(
        [str(CLI), "serve", "--port", str(free_port()), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--workers 2 needs Postgres: SQLite serves one process" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "gateway.db").exists(), "nothing is written before the refusal"


@pytest.mark.parametrize("workers", ["0", "65", "two"])
def test_workers_out_of_range_are_refused(tmp_path: Path, workers: str) -> None:
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [str(CLI), "serve", "--workers", workers], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "Invalid value for '--workers'" in result.stderr


def test_workers_on_an_address_in_use_are_refused(tmp_path: Path, clean_postgres: str) -> None:
    env = gateway_env(GATEWAY_DATABASE_URL=clean_postgres, GATEWAY_DATA_DIR=str(tmp_path / "unused"))
    run_cli(env, "migrate")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_refused_as_in_use(env, port)
