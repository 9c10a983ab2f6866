"""The `file` shipper: NDJSON of changes, one record per line, fsynced before the batch counts as shipped.

Format `asset-gateway.changes/1`, one JSON object per line:
  {"format": "asset-gateway.changes/1", "type": "asset"|"job"|"run"|"edge", "id": <natural id>,
   "version": <ISO time of the state shipped>, "data": {...the record...}}
A record is the current state of its entity, so a consumer keeps, per (type, id), the greatest version;
replays and duplicates change nothing for such a consumer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field

from shippers.base import AssetShipper, ShipperConfig, register_shipper
from shippers.records import AssetRecord, ChangeBatch, EdgeRecord, JobRecord, RunRecord

FORMAT = "asset-gateway.changes/1"


class FileShipperConfig(ShipperConfig):
    path: Path = Field(description="The NDJSON file to append to (created with its folder).")


def _line(kind: str, identity: Any, version: datetime | None, record: Any) -> bytes:
    body = {
        "format": FORMAT,
        "type": kind,
        "id": identity,
        "version": version.isoformat() if version else None,
        "data": dataclasses.asdict(record),
    }
    return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_SORT_KEYS) + b"\n"


def encode(batch: ChangeBatch) -> bytes:
    lines: list[bytes] = []
    asset: AssetRecord
    for asset in batch.assets:
        lines.append(_line("asset", asset.key, asset.updated_at, asset))
    job: JobRecord
    for job in batch.jobs:
        lines.append(_line("job", [job.namespace, job.name], None, job))
    run: RunRecord
    for run in batch.runs:
        lines.append(_line("run", run.run_id, run.event_time, run))
    edge: EdgeRecord
    for edge in batch.edges:
        identity = [edge.upstream, edge.downstream, [edge.job.namespace, edge.job.name] if edge.job else None]
        lines.append(_line("edge", identity, edge.last_seen_at, edge))
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
