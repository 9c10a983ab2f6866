"""Build the configured shippers' runners from the settings."""

from __future__ import annotations

from gateway.database import Database
from gateway.settings import Settings
from shippers.base import create_shipper, parse_shippers
from shippers.runner import ShipperRunner


def runners_from_settings(db: Database, settings: Settings) -> dict[str, ShipperRunner]:
    """Raises ValueError naming the shipper whose settings are wrong."""
    return {spec.name: ShipperRunner(db, spec, create_shipper(spec)) for spec in parse_shippers(settings.shippers)}
