"""The parent process of `serve --workers N`: an interpreter that loads uvicorn's supervisor and nothing of the
gateway's application.

`serve` checks the settings and the database with the whole gateway loaded, about 100 MB that a parent running
uvicorn's supervisor would hold for as long as the workers run, using none of it. So once the checks pass, `serve`
leaves the resolved settings in a private directory (gateway/workers.py) and replaces itself, by exec (the same
process id, signals, standard output and error), with `python -m gateway.supervisor DIRECTORY`: this module, the
logging setup and uvicorn, about a quarter of that. The directory goes when the workers are gone.

uvicorn's supervisor starts the workers (fresh interpreters) and restarts one that dies; each listens on a socket
of its own (see `SpreadingSupervisor`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from gateway.logs import configure_logging

# What each worker runs (uvicorn imports it in the worker, which loads the whole gateway there).
APP_FACTORY = "gateway.workers:worker_app"
# In the directory `serve` hands over: how to supervise (workers, logging, uvicorn's server options).
PLAN_FILE = "supervisor.json"

# Named, not __name__: run with -m, this module is __main__.
logger = logging.getLogger("gateway.supervisor")
# Linux spreads the connections of one address over the listening sockets bound to it with SO_REUSEPORT; elsewhere
# the option exists with other meanings, so the workers share one socket there.
SPREADS_CONNECTIONS = sys.platform == "linux"


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


def write_plan(directory: Path, workers: int, log_level: str, log_format: str, server: dict[str, Any]) -> None:
    plan = {"workers": workers, "log_level": log_level, "log_format": log_format, "server": server}
    (directory / PLAN_FILE).write_text(json.dumps(plan))


def become_supervisor(directory: Path, environment: dict[str, str]) -> NoReturn:
    """Replace this process with the supervisor of the plan in `directory`."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, [sys.executable, "-m", __name__, str(directory)], environment)


def run_workers(directory: Path) -> int:
    """Run the workers of the plan in `directory` until told to stop; the directory is removed afterwards."""
    try:
        plan = json.loads((directory / PLAN_FILE).read_text())
        configure_logging(plan["log_level"], plan["log_format"])
        server = plan["server"]
        config = Config(APP_FACTORY, factory=True, workers=plan["workers"], **server)
        try:
            supervisor = SpreadingSupervisor(config)
        except OSError as error:
            # As click reports a usage it refuses; the checks before the exec were click's.
            print(f"Error: cannot listen on {server['host']}:{server['port']}: {error}", file=sys.stderr)
            return 1
        supervisor.run()
        return 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_workers(Path(sys.argv[1])))
