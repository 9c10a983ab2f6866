"""asset-gateway: serve | migrate | ingest | reindex | schema | demo."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gateway.cli_support import settings_from as _settings
from gateway.cli_support import with_database as _with_database
from gateway.database import Database
from gateway.migrate import migrate
from gateway.token_cli import token

LOG_LEVELS = ("debug", "info", "warning", "error")


@click.group()
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="YAML settings file.")
@click.option("--database-url", help="sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db")
@click.pass_context
def main(ctx: click.Context, config: Path | None, database_url: str | None) -> None:
    """asset-gateway: assets, executions and lineage from what pipelines actually do."""
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, database_url=database_url)


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 4000).")
@click.option("--log-level", default=None, type=click.Choice(LOG_LEVELS))
@click.option("--insecure", is_flag=True, default=None, help="Allow serving a non-loopback address without tokens.")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Processes serving the address (Postgres; default 1)."
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    log_level: str | None,
    insecure: bool | None,
    workers: int | None,
) -> None:
    """Serve GraphQL at /graphql (migrating the embedded SQLite database first)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.authenticator import Authenticator, InsecureStartup
    from gateway.logs import configure_logging
    from gateway.memory import settle_garbage_collector
    from gateway.workers import WorkersNeedPostgres, check_workers, supervise

    settings = _settings(ctx, host=host, port=port, log_level=log_level, insecure=insecure, workers=workers)
    if settings.log_level.lower() not in LOG_LEVELS:
        raise click.UsageError(f"invalid settings: log_level must be one of {', '.join(LOG_LEVELS)}")
    try:
        check_workers(settings)
    except WorkersNeedPostgres as error:
        raise click.UsageError(str(error)) from error
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except OSError as error:
        raise click.ClickException(f"cannot use the database {Database.describe(settings)}: {error}") from error
    except ValueError as error:
        raise click.UsageError(f"invalid monitor settings: {error}") from error

    async def check_auth(db: Database) -> None:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        await Authenticator(db, settings).start()

    # Refuse an open public gateway before binding, with a message rather than a lifespan traceback.
    try:
        _with_database(settings, check_auth)
    except InsecureStartup as error:
        raise click.UsageError(str(error)) from error
    server: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        # Our handler formats uvicorn's records too (text or JSON), and gateway.access logs each request once,
        # with its request id: uvicorn's own logging config and access log would duplicate it in another form.
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        # A websocket client that stopped reading keeps its connection from closing: stop anyway after this.
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }
    if settings.workers > 1:
        # The app built above only checked the settings: each worker builds its own (gateway/workers.py), and
        # this process becomes their supervisor, leaving behind what it loaded for the checks.
        supervise(settings, server)
    settle_garbage_collector()
    uvicorn.run(app, **server)


@main.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Bring the database schema up to date."""
    settings = _settings(ctx)

    async def run(db: Database) -> None:
        await migrate(db.engine)

    _with_database(settings, run)
    click.echo(f"migrated {Database.describe(settings)}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000), help="Events per transaction."
)
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], batch_size: int) -> None:
    """Ingest OpenLineage events from .json / .ndjson files and folders (the endpoint's code path)."""
    from gateway.ingest.files import SourceDocument, event_files, read_documents
    from gateway.ingest.service import IngestReport, ingest_documents

    settings = _settings(ctx)
    files = event_files(paths)
    documents: list[SourceDocument] = []
    for path in files:
        try:
            documents.extend(read_documents(path))
        except (ValueError, OSError) as error:
            raise click.ClickException(str(error)) from None
    reasons: list[str] = []

    async def run(db: Database) -> IngestReport:
        total = IngestReport()
        if settings.should_auto_migrate:
            await migrate(db.engine)
        with click.progressbar(length=len(documents), label="ingesting", file=sys.stderr) as bar:
            for start in range(0, len(documents), batch_size):
                chunk = documents[start : start + batch_size]
                report = await ingest_documents(db, [item.document for item in chunk], datetime.now(UTC))
                total.accepted += report.accepted
                total.duplicates += report.duplicates
                total.rejected.extend(report.rejected)
                reasons.extend(f"{chunk[r.index].source}: {r.error}" for r in report.rejected)
                bar.update(len(chunk))
        return total

    report = _with_database(settings, run)
    click.echo(
        f"{len(files)} files, {len(documents)} events: {report.accepted} accepted, "
        f"{report.duplicates} duplicates, {len(report.rejected)} rejected"
    )
    for reason in reasons:
        click.echo(f"  rejected {reason}")
    if reasons:
        sys.exit(1)


@main.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild assets, jobs, runs and lineage from the stored event log, in one transaction."""
    from gateway.ingest.replay import replay_all

    settings = _settings(ctx)

    async def run(db: Database) -> int:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        return await replay_all(db, datetime.now(UTC))

    replayed = _with_database(settings, run)
    click.echo(f"replayed {replayed} events into {Database.describe(settings)}")


@main.command()
@click.pass_context
def schema(ctx: click.Context) -> None:
    """Print the GraphQL SDL (a federation v2 subgraph)."""
    from schema import build_schema

    click.echo(build_schema(_settings(ctx)).as_str())


@main.command()
@click.option("--days", default=3, show_default=True, help="How many nightly runs to record.")
@click.pass_context
def demo(ctx: click.Context, days: int) -> None:
    """Load a small realistic graph: sources, staging, marts, dashboards, runs (one failed)."""
    from gateway.demo import ASSETS, load_demo

    settings = _settings(ctx)

    async def run(db: Database) -> int:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        async with db.transaction() as session:
            return await load_demo(session, datetime.now(UTC), days)

    runs = _with_database(settings, run)
    click.echo(f"loaded {len(ASSETS)} assets and {runs} executions into {Database.describe(settings)}")


@main.command()
@click.argument("name")
@click.option("--full", is_flag=True, help="Re-export everything, then continue from the feed's head.")
@click.pass_context
def ship(ctx: click.Context, name: str, full: bool) -> None:
    """Run the shipper NAME (from the settings' `shippers:`) now, to the end of the change feed."""
    from gateway.store import changes as feed
    from shippers.runner import ShipReport
    from shippers.service import runners_from_settings

    settings = _settings(ctx)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    async def run(db: Database) -> ShipReport:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        try:
            runners = runners_from_settings(db, settings)
        except ValueError as error:
            raise click.UsageError(f"invalid shipper settings: {error}") from error
        if name not in runners:
            raise click.UsageError(f"no shipper named {name!r}; configured: {', '.join(sorted(runners)) or 'none'}")
        runner = runners[name]
        async with db.session() as session:
            lag = 0 if full else await feed.shipper_lag(session, name)
        try:
            with click.progressbar(length=lag, label=f"shipping {name}", file=sys.stderr) as bar:
                return await runner.run(full=full, progress=bar.update)
        finally:
            for each in runners.values():
                await each.aclose()

    report = _with_database(settings, run)
    what = "entities" if report.full else "changes"
    click.echo(f"{name}: shipped {report.shipped} {what} in {report.batches} batches, {report.parked} parked")
    if report.error:
        raise click.ClickException(f"{name} stopped: {report.error}")


@main.group()
def monitor() -> None:
    """Freshness monitors."""


@monitor.command("run")
@click.pass_context
def monitor_run(ctx: click.Context) -> None:
    """Run one freshness sweep now (policies and notifiers from the settings) and report it."""
    from monitors.freshness import monitor_from_settings

    settings = _settings(ctx.find_root())
    try:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

        async def run(db: Database) -> str:
            if settings.should_auto_migrate:
                await migrate(db.engine)
            freshness = monitor_from_settings(db, settings)
            try:
                record = await freshness.run()
            finally:
                await freshness.aclose()
            if record.error:
                raise click.ClickException(f"the sweep failed: {record.error}")
            return (
                f"checked {record.assets_checked} assets: {record.alerts_opened} alerts opened, "
                f"{record.alerts_resolved} resolved"
            )

        click.echo(_with_database(settings, run))
    except ValueError as error:
        raise click.UsageError(f"invalid monitor settings: {error}") from error


main.add_command(token)

if __name__ == "__main__":
    sys.exit(main())
