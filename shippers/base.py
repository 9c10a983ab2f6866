"""The AssetShipper contract: a `kind`, a typed config, `ship(batch)`, `aclose()`; a registry by kind.

Third parties register their own shippers through the entry-point group `asset_gateway.shippers`
(`kind = "package.module:ShipperClass"`), as openlineage-python does for transports.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitors.config import Selector, check_cron
from monitors.durations import parse_duration
from shippers.records import ChangeBatch

logger = logging.getLogger("gateway.shippers")
ENTRY_POINT_GROUP = "asset_gateway.shippers"


class ShipperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssetShipper(ABC):
    """Sends batches of changes to one target. `ship` raises when the target did not accept the batch;
    shipping the same batch again must leave the target as shipping it once."""

    kind: ClassVar[str]
    config_class: ClassVar[type[ShipperConfig]] = ShipperConfig

    def __init__(self, name: str, config: ShipperConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def ship(self, batch: ChangeBatch) -> None: ...

    async def aclose(self) -> None:
        return None


_REGISTRY: dict[str, type[AssetShipper]] = {}


def register_shipper(shipper: type[AssetShipper]) -> type[AssetShipper]:
    _REGISTRY[shipper.kind] = shipper
    return shipper


def shipper_kinds() -> dict[str, type[AssetShipper]]:
    """Built-in kinds plus those installed packages declare under the entry-point group."""
    import shippers.file
    import shippers.openlineage  # noqa: F401 - importing registers the built-ins

    try:  # the `datahub` kind needs the [datahub] extra (acryl-datahub)
        import_module("shippers.datahub")
    except ImportError as error:
        if not (error.name or "").startswith("datahub"):
            raise
        logger.debug("shipper kind `datahub` unavailable: %s", error)

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _REGISTRY:
            try:
                loaded = entry.load()
            except Exception:
                logger.exception("cannot load shipper plugin %s", entry.value)
                continue
            if isinstance(loaded, type) and issubclass(loaded, AssetShipper):
                _REGISTRY.setdefault(entry.name, loaded)
    return dict(_REGISTRY)


class ShipperSpec(BaseModel):
    """One entry of `shippers:` in the settings file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    interval: str | float | None = None
    cron: str | None = None
    filters: Selector = Field(default_factory=Selector)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_attempts: int = Field(default=4, ge=1, le=20)
    park_after_runs: int = Field(default=5, ge=1, le=1000)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _schedule(self) -> ShipperSpec:
        if self.interval is not None and self.cron is not None:
            raise ValueError(f"shipper {self.name!r}: give interval or cron, not both")
        if self.interval is not None:
            parse_duration(self.interval)
        return self

    @property
    def interval_seconds(self) -> float | None:
        if self.cron is not None:
            return None
        return parse_duration(self.interval) if self.interval is not None else 300.0


def create_shipper(spec: ShipperSpec) -> AssetShipper:
    kinds = shipper_kinds()
    if spec.kind not in kinds:
        raise ValueError(f"shipper {spec.name!r}: unknown kind {spec.kind!r}; known: {', '.join(sorted(kinds))}")
    shipper_class = kinds[spec.kind]
    try:
        config = shipper_class.config_class.model_validate(spec.config)
    except ValidationError as error:
        raise ValueError(f"shipper {spec.name!r} ({spec.kind}): {error}") from None
    try:
        return shipper_class(spec.name, config)
    except Exception as error:
        # A shipper builds its client from the config (an openlineage-python transport, say), and such clients
        # refuse a bad config with any kind of exception (RuntimeError for a missing url, ImportError for an
        # unknown transport type...): each is a settings error naming the shipper.
        raise ValueError(f"shipper {spec.name!r} ({spec.kind}): {type(error).__name__}: {error}") from error


def parse_shippers(raw: list[dict[str, Any]]) -> list[ShipperSpec]:
    specs = [ShipperSpec.model_validate(item) for item in raw]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"shipper names must be unique: {', '.join(duplicates)}")
    return specs
