"""`asset-gateway serve --workers N`: N gateway processes on one address, each a whole gateway.

A worker is what a replica behind a load balancer would be: its own connection pools, ingest group writer and
subscription broker, answering whatever connection the kernel hands it. Scheduled work runs once, on whichever
worker holds the Postgres advisory lock; subscriptions hear every worker's writes through LISTEN/NOTIFY. SQLite
serves one process, so workers need Postgres.

uvicorn's supervisor starts the workers (fresh interpreters) and restarts one that dies; each listens on a socket
of its own (see `SpreadingSupervisor`). The parent resolves the settings once and leaves them in a private directory
for the workers, beside the files in which they count their Prometheus figures for /metrics to sum.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from gateway.settings import WORKER_SETTINGS_VARIABLE, Settings, worker_settings

# prometheus-client reads it when first imported, which in a worker is after the parent set it.
PROMETHEUS_MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
APP_FACTORY = "gateway.workers:worker_app"


logger = logging.getLogger(__name__)
# Linux spreads the connections of one address over the listening sockets bound to it with SO_REUSEPORT; elsewhere
# the option exists with other meanings, so the workers share one socket there.
SPREADS_CONNECTIONS = sys.platform == "linux"


class WorkersNeedPostgres(ValueError):
    pass


def check_workers(settings: Settings) -> None:
    if settings.workers > 1 and settings.is_sqlite:
        raise WorkersNeedPostgres(
            f"--workers {settings.workers} needs Postgres: SQLite serves one process "
            "(set database_url to a postgresql+asyncpg:// URL, or serve with one worker)"
        )


@contextmanager
def shared_with_workers(settings: Settings) -> Iterator[Settings]:
    """While the workers run: their settings file and metrics directory, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="asset-gateway-workers-"))  # readable by this user only
    metrics = directory / "metrics"
    metrics.mkdir()
    shared = settings.model_copy(update={"worker_metrics_dir": metrics})
    path = directory / "settings.json"
    # The settings may hold notifier and shipper credentials: the file is private, like its directory.
    path.touch(mode=0o600)
    path.write_text(shared.model_dump_json())
    previous = {name: os.environ.get(name) for name in (WORKER_SETTINGS_VARIABLE, PROMETHEUS_MULTIPROC_VARIABLE)}
    os.environ[WORKER_SETTINGS_VARIABLE] = str(path)
    os.environ[PROMETHEUS_MULTIPROC_VARIABLE] = str(metrics)
    try:
        yield shared
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)


def _listener(host: str, port: int, reuse_port: bool = SPREADS_CONNECTIONS) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class SpreadingSupervisor(Multiprocess):
    """uvicorn's supervisor (health checks, restarts, signals), each worker listening on a socket of its own.

    Workers sharing one listening socket share its connections badly: a worker woken by a burst of new connections
    accepts every one pending (asyncio accepts up to the backlog at each wake-up), and a client that opens its
    keep-alive connections at once finds them all on one worker while the others idle. Sockets bound to one address
    with SO_REUSEPORT each get a share from the kernel instead, by connection hash, as nginx' `reuseport` does.

    The parent binds the address first (refusing one in use, by another gateway too, before any worker starts, and
    fixing port 0), then binds a socket for each worker it starts, closing its own copy once the worker holds it: a
    worker that dies takes its socket out of the address's group with it.
    """

    def __init__(self, config: Config) -> None:
        port = config.port
        if SPREADS_CONNECTIONS:
            # Sockets of one user with SO_REUSEPORT share a port: without this check a second gateway started on
            # the same address would join this one's workers instead of being refused.
            with _listener(config.host, port, reuse_port=False) as probe:
                port = probe.getsockname()[1]
        self._anchor = _listener(config.host, port)
        self._address: tuple[str, int] = (config.host, self._anchor.getsockname()[1])
        self._handed: list[socket.socket] = []
        super().__init__(config, sockets=[])

    @property
    def sockets(self) -> list[socket.socket]:
        """A new socket for the worker about to start (uvicorn reads this once per worker it starts)."""
        if not SPREADS_CONNECTIONS:
            return [self._anchor]
        sock = _listener(*self._address)
        self._handed.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, _: list[socket.socket]) -> None:
        pass  # uvicorn's constructor sets them; each worker has its own instead

    def _close_handed(self) -> None:
        # A spawned worker inherited its descriptor when it started: the parent's copy only keeps it listening.
        for sock in self._handed:
            sock.close()
        self._handed.clear()

    def init_processes(self) -> None:
        host, port = self._address
        logger.info("serving http://%s:%d with %d workers", host, port, self.processes_num)
        super().init_processes()
        self._close_handed()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._close_handed()

    def restart_all(self) -> None:
        super().restart_all()
        self._close_handed()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._close_handed()
            self._anchor.close()


def worker_app() -> Starlette:
    """The application of one worker process (uvicorn calls it as a factory)."""
    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.memory import settle_garbage_collector

    settings = worker_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    settle_garbage_collector()
    return app
