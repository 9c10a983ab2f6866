"""What the operations tests share: OpenLineage events, reading /metrics, and taking a database away."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from gateway.database import Database
from gateway.settings import Settings

PRODUCER = "https://github.com/example/asset-gateway-tests/ops"
NAMESPACE = "postgres://warehouse:5432"


def run_event(run_id: str | None = None, job: str = "ops_job", event_type: str = "COMPLETE") -> dict[str, Any]:
    """A valid OpenLineage RunEvent writing one table."""
    return {
        "eventType": event_type,
        "eventTime": "2026-01-05T03:00:00+00:00",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id or str(uuid.uuid4())},
        "job": {"namespace": "ops", "name": job},
        "inputs": [{"namespace": NAMESPACE, "name": "raw.orders"}],
        "outputs": [{"namespace": NAMESPACE, "name": f"mart.{job}"}],
    }


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


class TcpProxy:
    """A TCP relay in front of Postgres: stopping it is a database outage as the gateway sees one (new
    connections refused, open ones cut), starting it again on the same port is the database coming back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.connections):
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._relay(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self.connections.discard(writer)
            return
        self.connections.add(upstream_writer)
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            for each in (writer, upstream_writer):
                each.transport.abort()
                self.connections.discard(each)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


class Outage:
    """Takes a gateway's database away and brings it back, on either dialect."""

    def __init__(self, settings: Settings, proxy: TcpProxy | None) -> None:
        self.settings = settings
        self.proxy = proxy

    @classmethod
    async def around(cls, settings: Settings) -> Outage:
        """For Postgres, settings that reach the database through a proxy we can stop."""
        if settings.is_sqlite:
            return cls(settings, None)
        url = make_url(settings.resolved_database_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        return cls(settings.model_copy(update={"database_url": proxied}), proxy)

    @property
    def sqlite_path(self) -> Path:
        database = make_url(self.settings.resolved_database_url).database
        assert database
        return Path(database)

    async def begin(self, db: Database) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
            return
        # Open connections would keep using the file: close them, then put a directory where the file was,
        # which SQLite cannot open (SQLITE_CANTOPEN), as with a volume that went away.
        await db.dispose()
        away = self.sqlite_path.parent / "away"
        away.mkdir(exist_ok=True)
        for path in self._sqlite_files():
            shutil.move(path, away / path.name)
        self.sqlite_path.mkdir()

    async def end(self) -> None:
        if self.proxy is not None:
            await self.proxy.start()
            return
        self.sqlite_path.rmdir()
        away = self.sqlite_path.parent / "away"
        for path in away.iterdir():
            shutil.move(path, self.sqlite_path.parent / path.name)

    async def close(self) -> None:
        if self.proxy is not None and self.proxy.server is not None:
            await self.proxy.stop()

    def _sqlite_files(self) -> list[Path]:
        base = self.sqlite_path
        return [path for path in (base, Path(f"{base}-wal"), Path(f"{base}-shm")) if path.exists()]
