"""asset-gateway: serve | migrate | schema | demo."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from gateway.database import Database
from gateway.migrate import migrate
from gateway.settings import Settings, load_settings


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return load_settings(ctx.obj.get("config"), database_url=ctx.obj.get("database_url"), **overrides)
    except (ValidationError, FileNotFoundError) as error:
        raise click.UsageError(f"invalid settings: {error}") from error


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
@click.option("--log-level", default=None, type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, log_level: str | None) -> None:
    """Serve GraphQL at /graphql (migrating the embedded SQLite database first)."""
    import uvicorn

    from gateway.app import create_app

    settings = _settings(ctx, host=host, port=port, log_level=log_level)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
    )


@main.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Bring the database schema up to date."""
    settings = _settings(ctx)

    async def run() -> None:
        db = Database(settings)
        try:
            await migrate(db.engine)
        finally:
            await db.dispose()

    asyncio.run(run())
    click.echo(f"migrated {Database.describe(settings)}")


@main.command()
def schema() -> None:
    """Print the GraphQL SDL (a federation v2 subgraph)."""
    from schema import build_schema

    click.echo(build_schema().as_str())


@main.command()
@click.option("--days", default=3, show_default=True, help="How many nightly runs to record.")
@click.pass_context
def demo(ctx: click.Context, days: int) -> None:
    """Load a small realistic graph: sources, staging, marts, dashboards, runs (one failed)."""
    from gateway.demo import ASSETS, load_demo

    settings = _settings(ctx)

    async def run() -> int:
        db = Database(settings)
        try:
            if settings.should_auto_migrate:
                await migrate(db.engine)
            async with db.transaction() as session:
                return await load_demo(session, datetime.now(UTC), days)
        finally:
            await db.dispose()

    runs = asyncio.run(run())
    click.echo(f"loaded {len(ASSETS)} assets and {runs} executions into {Database.describe(settings)}")


if __name__ == "__main__":
    sys.exit(main())
