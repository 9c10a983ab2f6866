"""What every CLI command shares: settings from the command line, and a database that fails with a message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gateway.database import Database
from gateway.settings import Settings, load_settings

T = TypeVar("T")


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        settings = load_settings(ctx.obj.get("config"), database_url=ctx.obj.get("database_url"), **overrides)
        # A URL with the right scheme may still not parse (a port that is no number, say).
        make_url(settings.resolved_database_url)
    except TypeError as error:
        # pydantic-settings' way of saying that the YAML file holds no mapping of names to values.
        raise click.UsageError(f"invalid settings: the config file must be a YAML mapping ({error})") from error
    # ValidationError is a ValueError.
    except (ValueError, OSError, ArgumentError, yaml.YAMLError) as error:
        raise click.UsageError(f"invalid settings: {error}") from error
    return settings


def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Runs `work` on a fresh Database; an unreachable or unusable database is an error message, not a traceback."""

    async def run() -> T:
        db = Database(settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (OSError, SQLAlchemyError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise click.ClickException(f"cannot use the database {Database.describe(settings)}: {detail}") from error
