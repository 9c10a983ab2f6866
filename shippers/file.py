"""The `file` shipper: NDJSON of changes, one record per line, fsynced before the batch counts as shipped.

Format `asset-gateway.changes/1`, one JSON object per line:
  {"format": "asset-gateway.changes/1", "type": "asset"|"job"|"run"|"edge", "id": <natural id>,
   "version": <integer: the change-feed id of the newest change the state includes>,
   "changed_at": <ISO time of that change, or null>, "data": {...the record...}}
A record is the current state of its entity, so a consumer keeps, per (type, id), the greatest version;
replays and duplicates change nothing for such a consumer. Versions come from the change feed, not from the
entity's own times: those do not grow with every change (a run's event time goes back when a placeholder parent
gets its own events, an edge retires without being seen again, a job has no time at all). A full export of an
entity never changed since the feed began carries version 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field

from shippers.base import AssetShipper, ShipperConfig, register_shipper
from shippers.records import AssetRecord, ChangeBatch, EdgeRecord, JobRecord, RunRecord, Version, version_key

FORMAT = "asset-gateway.changes/1"


class FileShipperConfig(ShipperConfig):
    path: Path = Field(description="The NDJSON file to append to (created with its folder).")


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(record: Any) -> dict[str, Any]:
    """A record as dataclasses.asdict gives it, without deep-copying every value (orjson only reads them): the same
    JSON, in a fraction of the time. Records hold records, lists of records, and plain JSON values."""
    names = _FIELDS.get(type(record))
    if names is None:
        names = _FIELDS[type(record)] = tuple(field.name for field in dataclasses.fields(record))
    plain = {}
    for name in names:
        value = getattr(record, name)
        if isinstance(value, list):
            if value and dataclasses.is_dataclass(value[0]):
                value = [_plain(item) for item in value]
        elif value is not None and dataclasses.is_dataclass(value):
            value = _plain(value)
        plain[name] = value
    return plain


def _line(kind: str, identity: Any, version: Version | None, record: Any) -> bytes:
    body = {
        "format": FORMAT,
        "type": kind,
        "id": identity,
        "version": version.change_id if version else 0,
        "changed_at": version.changed_at.isoformat() if version and version.changed_at else None,
        "data": _plain(record),
    }
    return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_SORT_KEYS) + b"\n"


def encode(batch: ChangeBatch) -> bytes:
    lines: list[bytes] = []
    asset: AssetRecord
    for asset in batch.assets:
        lines.append(_line("asset", asset.key, batch.versions.get(version_key("asset", asset)), asset))
    job: JobRecord
    for job in batch.jobs:
        lines.append(_line("job", [job.namespace, job.name], batch.versions.get(version_key("job", job)), job))
    run: RunRecord
    for run in batch.runs:
        lines.append(_line("run", run.run_id, batch.versions.get(version_key("run", run)), run))
    edge: EdgeRecord
    for edge in batch.edges:
        identity = [edge.upstream, edge.downstream, [edge.job.namespace, edge.job.name] if edge.job else None]
        lines.append(_line("edge", identity, batch.versions.get(version_key("edge", edge)), edge))
    return b"".join(lines)


@register_shipper
class FileShipper(AssetShipper):
    kind = "file"
    config_class = FileShipperConfig
    config: FileShipperConfig

    async def ship(self, batch: ChangeBatch) -> None:
        data = encode(batch)
        if data:
            await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        path = self.config.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
