"""A minimal HTTP/1.1 receiver on loopback for notification tests: records every request; a path may be
told to answer 500 a number of times first."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: records every request; a path may answer 500 a number of times first."""

    requests: list[Request] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self) -> list[str]:
        return [request.json()["event"] for request in self.requests]

    def to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    def accepted(self, path: str) -> list[Request]:
        return [request for request in self.to(path) if request.status == 200]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                method, path, _ = (await reader.readline()).decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
            failing = self.failures.get(path, 0)
            self.failures[path] = max(failing - 1, 0)
            code, reason = (500, "Internal Server Error") if failing else (200, "OK")
            self.requests.append(Request(method, path, headers, body, code))
            payload = b"nope" if failing else b"ok"
            writer.write(
                f"HTTP/1.1 {code} {reason}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()
