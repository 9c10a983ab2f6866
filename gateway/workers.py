"""`asset-gateway serve --workers N`: N gateway processes on one address, each a whole gateway.

A worker is what a replica behind a load balancer would be: its own connection pools, ingest group writer and
subscription broker, answering whatever connection the kernel hands it. Scheduled work runs once, on whichever
worker holds the Postgres advisory lock; subscriptions hear every worker's writes through LISTEN/NOTIFY. SQLite
serves one process, so workers need Postgres.

`serve` resolves the settings once and leaves them in a private directory for the workers, beside the files in
which they count their Prometheus figures for /metrics to sum, then becomes their supervisor (gateway/supervisor.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from starlette.applications import Starlette

from gateway.settings import WORKER_SETTINGS_VARIABLE, Settings, worker_settings
from gateway.supervisor import become_supervisor, write_plan

# prometheus-client reads it when first imported, which in a worker is after the parent set it.
PROMETHEUS_MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class WorkersNeedPostgres(ValueError):
    pass


def check_workers(settings: Settings) -> None:
    if settings.workers > 1 and settings.is_sqlite:
        raise WorkersNeedPostgres(
            f"--workers {settings.workers} needs Postgres: SQLite serves one process "
            "(set database_url to a postgresql+asyncpg:// URL, or serve with one worker)"
        )


def supervise(settings: Settings, server: dict[str, Any]) -> NoReturn:
    """Leave the workers their settings and metrics directory, then become their supervisor: this process is
    replaced, and the supervisor removes the directory once the workers are gone."""
    directory = Path(tempfile.mkdtemp(prefix="asset-gateway-workers-"))  # readable by this user only
    try:
        metrics = directory / "metrics"
        metrics.mkdir()
        shared = settings.model_copy(update={"worker_metrics_dir": metrics})
        path = directory / "settings.json"
        # The settings may hold notifier and shipper credentials: the file is private, like its directory.
        path.touch(mode=0o600)
        path.write_text(shared.model_dump_json())
        write_plan(directory, settings.workers, settings.log_level, settings.log_format, server)
        environment = {**os.environ, WORKER_SETTINGS_VARIABLE: str(path), PROMETHEUS_MULTIPROC_VARIABLE: str(metrics)}
        become_supervisor(directory, environment)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def worker_app() -> Starlette:
    """The application of one worker process (uvicorn calls it as a factory)."""
    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.memory import settle_garbage_collector

    settings = worker_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    settle_garbage_collector()
    return app
