"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from strawberry.types import Info as StrawberryInfo

from gateway.auth import ANONYMOUS, Principal
from gateway.database import Database
from gateway.live import LiveChanges
from gateway.settings import Settings
from schema.loaders import Loaders
from schema.websocket import WebSocketSession


@dataclass
class Context:
    db: Database
    settings: Settings
    loaders: Loaders
    principal: Principal = ANONYMOUS
    request: Any = None
    response: Any = None
    monitors: dict[str, Any] = field(default_factory=dict)
    shippers: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Websockets: the connection_init payload (set by Strawberry), the connection, and the live-updates broker.
    connection_params: dict[str, Any] | None = None
    websocket: WebSocketSession | None = None
    live: LiveChanges | None = None

    @classmethod
    def create(
        cls,
        db: Database,
        settings: Settings,
        request: Any = None,
        response: Any = None,
        monitors: dict[str, Any] | None = None,
        shippers: dict[str, Any] | None = None,
        principal: Principal = ANONYMOUS,
    ) -> Context:
        return cls(
            db=db,
            settings=settings,
            loaders=Loaders(db, principal),
            principal=principal,
            request=request,
            response=response,
            monitors=monitors or {},
            shippers=shippers or {},
        )

    def now(self) -> datetime:
        return datetime.now(UTC)


Info = StrawberryInfo[Context, None]
