"""`asset-gateway token create | list | revoke` end to end on SQLite and Postgres, and `serve` on a public address:
refused without a token unless --insecure, token-protected with one."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.auth import hash_token
from gateway.cli import main
from gateway.orm import ApiToken
from tests.helpers import free_port

CLI = Path(sys.executable).parent / "asset-gateway"
SECRET = re.compile(r"agw_[A-Za-z0-9_-]{43}")
READY_WITHIN_SECONDS = 20
NAMESPACES = "{ namespaces { name } }"


@pytest.fixture(autouse=True)
def no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings under test come from each test alone, not from the environment it runs in."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def database_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database: a SQLite file the CLI migrates itself, or the session's migrated Postgres, emptied."""
    if dialect == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}"
    url: str = request.getfixturevalue("clean_postgres")
    return url


def invoke(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database-url", database_url, *args], catch_exceptions=True)


def succeeded(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def failed_cleanly(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def create(database_url: str, name: str, scope: str, *namespaces: str) -> str:
    """`token create`; returns the secret it printed."""
    grants = [argument for namespace in namespaces for argument in ("--namespace", namespace)]
    result = succeeded(invoke(database_url, "token", "create", "--name", name, "--scope", scope, *grants))
    secret = result.stdout.strip()
    assert SECRET.fullmatch(secret), result.stdout
    return secret


def token_rows(database_url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(select(ApiToken.__table__).order_by(ApiToken.name))
                return [dict(row._mapping) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


# --- create, list, revoke ----------------------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_stores_only_its_hash(database_url: str, tmp_path: Path) -> None:
    result = succeeded(
        invoke(
            database_url,
            "token",
            "create",
            "--name",
            "ci-reader",
            "--scope",
            "read",
            "--namespace",
            "finance.*",
            "--namespace",
            "s3://b",
        )
    )
    secret = result.stdout.strip()
    assert SECRET.fullmatch(secret), result.stdout
    assert result.stdout == secret + "\n"
    assert "created token 'ci-reader' (read on finance.*, s3://b)" in result.stderr
    assert "only once" in result.stderr

    table = succeeded(invoke(database_url, "token", "list"))
    assert secret not in table.output
    (line,) = [line for line in table.output.splitlines() if line.startswith("ci-reader")]
    assert secret[:10] in line
    assert re.search(r"\bread\b", line), line
    assert "finance.*,s3://b" in line, line
    assert "active" in line, line

    listed = succeeded(invoke(database_url, "token", "list", "--json"))
    assert secret not in listed.output
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "ci-reader"
    assert entry["scope"] == "read"
    assert entry["namespaces"] == ["finance.*", "s3://b"]
    assert entry["prefix"] == secret[:10]
    assert (entry["revoked_at"], entry["expires_at"], entry["last_used_at"]) == (None, None, None)
    assert not any("hash" in name for name in entry)

    (row,) = token_rows(database_url)
    assert row["token_hash"] == hash_token(secret)
    assert (row["scope"], row["namespaces"], row["display_prefix"]) == ("read", ["finance.*", "s3://b"], secret[:10])
    assert not any(secret in str(value) for value in row.values())
    if database_url.startswith("sqlite"):
        for path in tmp_path.glob("tokens.db*"):
            assert secret.encode() not in path.read_bytes(), path

    # A second `token create` is a new secret; the first is shown nowhere again.
    other = create(database_url, "ci-writer", "write", "*")
    assert other != secret
    everything = succeeded(invoke(database_url, "token", "list", "--all"))
    assert secret not in everything.output
    assert other not in everything.output


def test_duplicate_names_and_unknown_revocations_are_clear_errors(database_url: str) -> None:
    create(database_url, "team-a", "write", "finance.*")
    failed_cleanly(
        invoke(database_url, "token", "create", "--name", "team-a", "--scope", "admin", "--namespace", "*"),
        1,
        "a token named 'team-a' exists already",
    )
    (row,) = token_rows(database_url)
    assert (row["scope"], row["namespaces"]) == ("write", ["finance.*"])
    failed_cleanly(invoke(database_url, "token", "revoke", "team-b"), 1, "no active token named 'team-b'")
    succeeded(invoke(database_url, "token", "revoke", "team-a"))
    failed_cleanly(invoke(database_url, "token", "revoke", "team-a"), 1, "no active token named 'team-a'")
    assert "team-a" not in succeeded(invoke(database_url, "token", "list")).output
    revoked = json.loads(succeeded(invoke(database_url, "token", "list", "--all", "--json")).stdout)
    assert [(entry["name"], entry["revoked_at"] is not None) for entry in revoked] == [("team-a", True)]


INVALID_CREATIONS = [
    (["--scope", "superuser", "--namespace", "*"], "Invalid value for '--scope'"),
    (["--scope", "read", "--namespace", "finance *"], "namespace grant"),
    (["--scope", "read", "--namespace", ""], "namespace grant"),
    (["--scope", "read"], "Missing option '--namespace'"),
    (["--namespace", "*"], "Missing option '--scope'"),
]


@pytest.mark.parametrize(
    ("arguments", "message"), INVALID_CREATIONS, ids=["scope", "space", "empty", "no-grant", "no-scope"]
)
def test_invalid_scope_or_namespace_is_a_usage_error(database_url: str, arguments: list[str], message: str) -> None:
    failed_cleanly(invoke(database_url, "token", "create", "--name", "bad", *arguments), 2, message)
    if database_url.startswith("postgresql"):
        assert token_rows(database_url) == []
    else:
        assert succeeded(invoke(database_url, "token", "list", "--json")).stdout.strip() == "[]"


# --- serve on a public address -----------------------------------------------------------------------------------


def gateway_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and not name.lower().endswith("_proxy")
    }
    env.update(
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_DATA_DIR=str(data_dir),
        # Revocations apply to the very next request.
        GATEWAY_AUTH_CACHE_SECONDS="0",
        GATEWAY_SCHEDULER_ENABLED="false",
    )
    return env


@contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[httpx.Client]:
    """`asset-gateway serve --host 0.0.0.0 --port <free> ARGS`; a client for it once /healthz answers."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(CLI), "serve", "--host", "0.0.0.0", "--port", str(port), "--log-level", "warning", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
            deadline = time.monotonic() + READY_WITHIN_SECONDS
            while True:
                assert process.poll() is None, f"the server exited early:\n{log.read_text()}"
                try:
                    if client.get("/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no answer from /healthz:\n{log.read_text()}"
                time.sleep(0.05)
            yield client
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()


def graphql(client: httpx.Client, secret: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return client.post("/graphql", json={"query": NAMESPACES}, headers=headers)


def test_serve_on_a_public_address_without_tokens_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        succeeded(invoke(database_url, "migrate"))
    result = subprocess.run(
        [str(CLI), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=gateway_env(database_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "refusing to serve 0.0.0.0 without authentication" in output
    assert "asset-gateway token create" in output
    assert "--insecure" in output
    assert "Traceback" not in output


def test_serve_insecure_on_a_public_address_is_open(database_url: str, tmp_path: Path) -> None:
    with serving(gateway_env(database_url, tmp_path), tmp_path / "serve.log", "--insecure") as client:
        answer = graphql(client, None)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"data": {"namespaces": []}}
    assert "authentication is OFF" in (tmp_path / "serve.log").read_text()


def test_serve_with_a_token_requires_it_and_honours_revocation(database_url: str, tmp_path: Path) -> None:
    secret = create(database_url, "ops", "read", "*")
    with serving(gateway_env(database_url, tmp_path), tmp_path / "serve.log") as client:
        assert client.get("/healthz").status_code == 200
        refused = graphql(client, None)
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert graphql(client, "agw_" + "0" * 43).status_code == 401
        answer = graphql(client, secret)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"data": {"namespaces": []}}

        succeeded(invoke(database_url, "token", "revoke", "ops"))
        revoked = graphql(client, secret)
        assert revoked.status_code == 401, revoked.text
        assert "unknown, revoked or expired" in revoked.text
        # Revoking every token does not open the gateway again.
        assert graphql(client, None).status_code == 401
    (entry,) = json.loads(succeeded(invoke(database_url, "token", "list", "--all", "--json")).stdout)
    assert entry["last_used_at"] is not None
    assert entry["revoked_at"] is not None
