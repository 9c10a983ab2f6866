"""LISTEN for the change feed's notifications (migration 0010) on a dedicated asyncpg connection.

The connection lives outside the pool for as long as the process serves. When it is lost (the server restarts,
the network drops, someone terminates the backend) the listener connects again with backoff and reports each
(re)connection, after which the broker reads the feed for whatever it missed meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("gateway.live")
CHANNEL = "gateway_live"
APPLICATION_NAME = "asset-gateway live"
HEARTBEAT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 10.0
BACKOFF = (0.2, 30.0)
# Connect arguments of SQLAlchemy's asyncpg dialect that asyncpg.connect does not take.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


def connect_arguments(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg.connect's arguments for the database the engine uses (host, credentials, ssl...)."""
    _, arguments = engine.dialect.create_connect_args(engine.url)
    options = {name: value for name, value in arguments.items() if name not in _DIALECT_ONLY}
    settings = dict(options.pop("server_settings", None) or {})
    settings.setdefault("application_name", APPLICATION_NAME)
    return options | {"server_settings": settings, "timeout": CONNECT_TIMEOUT_SECONDS}


def _set(event: asyncio.Event, _connection: Any) -> None:
    event.set()


class PostgresListener:
    def __init__(
        self, engine: AsyncEngine, on_payload: Callable[[str], None], on_connected: Callable[[], None]
    ) -> None:
        self.arguments = connect_arguments(engine)
        self.on_payload = on_payload
        self.on_connected = on_connected
        self.connected = asyncio.Event()
        self.connections = 0

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_payload(payload)

    async def run(self) -> None:
        """Listen until cancelled, connecting again whenever the connection is lost."""
        delay = BACKOFF[0]
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(**self.arguments)
                lost = asyncio.Event()
                connection.add_termination_listener(functools.partial(_set, lost))
                await connection.add_listener(CHANNEL, self._notified)
                self.connections += 1
                if self.connections > 1:
                    logger.info("live updates: listening for changes again")
                self.connected.set()
                delay = BACKOFF[0]
                self.on_connected()
                await self._watch(connection, lost)
                logger.warning("live updates: lost the connection that listens for changes; connecting again")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "live updates: cannot listen for changes (%s: %s); trying again in %.1f s",
                    type(error).__name__,
                    error,
                    delay,
                )
            finally:
                self.connected.clear()
                if connection is not None:
                    connection.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    @staticmethod
    async def _watch(connection: Any, lost: asyncio.Event) -> None:
        """Returns once the connection is gone; a silent network loss shows when the heartbeat fails."""
        while True:
            try:
                await asyncio.wait_for(lost.wait(), HEARTBEAT_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(connection.execute("SELECT 1"), HEARTBEAT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return
