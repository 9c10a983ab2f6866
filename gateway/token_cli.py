"""asset-gateway token create | list | revoke: bearer tokens with a scope and namespace grants."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from gateway.auth import Scope, hash_token, new_token, validate_pattern
from gateway.cli_support import settings_from, with_database
from gateway.database import Database
from gateway.errors import GatewayError
from gateway.migrate import migrate
from gateway.store import tokens


@click.group()
def token() -> None:
    """Bearer tokens: a scope (read < write < admin) and the namespaces they reach."""


@token.command("create")
@click.option("--name", required=True, help="A unique name, e.g. the client or team.")
@click.option("--scope", required=True, type=click.Choice([scope.value for scope in Scope]))
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    required=True,
    help="A namespace grant; `*` matches anything ('finance.*', 'postgres://prod:5432', '*'). Repeatable.",
)
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expire after N days.")
@click.pass_context
def create(ctx: click.Context, name: str, scope: str, namespaces: tuple[str, ...], expires_in_days: int | None) -> None:
    """Create a token and print it once (only its hash is stored)."""
    settings = settings_from(ctx.find_root())
    if not name.strip() or len(name) > 100:
        raise click.UsageError("--name must be 1 to 100 characters")
    try:
        grants = [validate_pattern(pattern) for pattern in namespaces]
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    secret = new_token()
    now = datetime.now(UTC)

    async def run(db: Database) -> None:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        async with db.transaction() as session:
            await tokens.create_token(
                session,
                name=name,
                token_hash=hash_token(secret),
                display_prefix=secret[:10],
                scope=scope,
                namespaces=grants,
                now=now,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            )

    try:
        with_database(settings, run)
    except GatewayError as error:
        raise click.ClickException(error.message) from error
    click.echo(secret)
    click.echo(f"created token {name!r} ({scope} on {', '.join(grants)}); it is shown only once", err=True)


@token.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def list_(ctx: click.Context, include_revoked: bool, as_json: bool) -> None:
    """List tokens (never the secrets)."""
    settings = settings_from(ctx.find_root())

    async def run(db: Database) -> list[dict[str, object]]:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        async with db.session() as session:
            rows = await tokens.list_tokens(session, include_revoked)
        return [
            {
                "name": row.name,
                "prefix": row.display_prefix,
                "scope": row.scope,
                "namespaces": row.namespaces,
                "created_at": row.created_at.isoformat(),
                "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
                "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
            }
            for row in rows
        ]

    rows = with_database(settings, run)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no tokens: authentication is off on loopback addresses")
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        used = row["last_used_at"] or "never"
        grants = ",".join(row["namespaces"])  # type: ignore[arg-type]
        click.echo(f"{row['name']:<24} {row['prefix']}…  {row['scope']:<6} {grants:<30} {state:<8} last used {used}")


@token.command("revoke")
@click.argument("name")
@click.pass_context
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke the token NAME (it stops working within the auth cache time, 5 s by default)."""
    settings = settings_from(ctx.find_root())

    async def run(db: Database) -> None:
        if settings.should_auto_migrate:
            await migrate(db.engine)
        async with db.transaction() as session:
            await tokens.revoke_token(session, name, datetime.now(UTC))

    try:
        with_database(settings, run)
    except GatewayError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"revoked {name}")
