"""Whether a pooled Postgres connection is still alive when it is handed out, without a round trip per checkout.

SQLAlchemy's `pool_pre_ping` asks the server at every checkout: one round trip each time. An asset's detail page
checks out a connection per DataLoader (8 for one page), so the pings were a sixth of its CPU and a tenth of its
time. Like HikariCP's alive-bypass window, a connection that came back to the pool moments ago is not pinged:

- a connection the server closed (restart, failover, terminated backend) is known closed to the driver as soon as
  the event loop has read the end of its stream: it is replaced without asking;
- a connection idle for longer than the window is pinged as before, for what only a round trip can find (a
  connection a proxy or firewall dropped without a word).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

RETURNED_AT = "gateway_returned_at"


class AliveCheck:
    """Pool listeners: note when each connection comes back; at checkout, replace it if it is closed, and ping it
    first if it has been idle longer than `ping_after_idle_seconds` (0: at every checkout)."""

    def __init__(self, engine: AsyncEngine, ping_after_idle_seconds: float) -> None:
        self.engine = engine
        self.dialect = engine.sync_engine.dialect
        self.ping_after_idle_seconds = ping_after_idle_seconds

    def install(self) -> None:
        event.listen(self.engine.sync_engine, "checkin", self.checkin)
        event.listen(self.engine.sync_engine, "checkout", self.checkout)

    def checkin(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[RETURNED_AT] = time.monotonic()

    def checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        driver_connection = getattr(dbapi_connection, "driver_connection", None)
        if driver_connection is not None and driver_connection.is_closed():
            raise DisconnectionError("the server closed this connection")
        returned_at = record.info.get(RETURNED_AT)
        # A connection never checked in was opened for this checkout: nothing to ask.
        if returned_at is None or time.monotonic() - returned_at < self.ping_after_idle_seconds:
            return
        try:
            self.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(f"the connection did not answer a ping: {error}") from error
