"""The one settings object. Nothing else in the gateway reads the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_FILE_VARIABLE = "GATEWAY_CONFIG"
# Where `serve --workers` leaves the settings it resolved, for its worker processes (gateway/workers.py).
WORKER_SETTINGS_VARIABLE = "ASSET_GATEWAY_WORKER_SETTINGS"


def _default_data_dir() -> Path:
    return Path.home() / ".asset-gateway"


class Settings(BaseSettings):
    """Every setting can come from `GATEWAY_<NAME>`, from the YAML config file, or from the CLI."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", yaml_file=None)

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    auto_migrate: bool | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_echo: bool = False
    # A pooled connection idle longer than this is pinged before use (0: every time); one back from use within
    # it is only checked for being closed (gateway/connection_check.py).
    database_ping_after_idle_seconds: float = Field(default=1.0, ge=0, le=3600)
    # Postgres cancels a serving statement that runs longer (0: no limit); migrations and CLI work are not bounded.
    statement_timeout_seconds: float = Field(default=30.0, ge=0, le=86_400)

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    # `serve` processes on the one address (Postgres only): each a whole gateway, as replicas would be.
    workers: int = Field(default=1, ge=1, le=64)
    # Set by `serve --workers` for its workers: where prometheus-client keeps the figures they share.
    worker_metrics_dir: Path | None = None
    log_level: str = "info"
    # "json": one JSON object per line, for log shippers (the container image sets it).
    log_format: Literal["text", "json"] = "text"

    graphiql: bool = True
    # Auth: tokens live in the database (`asset-gateway token create`); see gateway/authenticator.py.
    insecure: bool = False
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    scheduler_enabled: bool = True
    monitor_interval_seconds: float = Field(default=60.0, ge=1)
    notification_max_attempts: int = Field(default=5, ge=1, le=100)
    freshness_policies: list[dict[str, Any]] = Field(default_factory=list)
    notifiers: list[dict[str, Any]] = Field(default_factory=list)
    shippers: list[dict[str, Any]] = Field(default_factory=list)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=10_000, ge=1)
    # How long a group of concurrent POSTs waits for as many requests as the previous group answered (0: never).
    ingest_group_wait_seconds: float = Field(default=0.01, ge=0, le=1)
    max_page_size: int = Field(default=500, ge=1, le=500)
    default_page_size: int = Field(default=50, ge=1, le=500)
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=4000, ge=100)
    # An upper bound on the objects an operation resolves (schema/cost.py); 100 assets with their upstream and
    # downstream lineage cost about 410,000, 500 assets with 500 executions each more than 500,000.
    max_query_cost: int = Field(default=500_000, ge=1)
    # How often one field may be selected in one selection set (schema/repeats.py).
    max_field_repeats: int = Field(default=50, ge=1)
    max_graphql_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Operations in one batched request (a JSON array of them); 0 refuses batches.
    max_batch_operations: int = Field(default=0, ge=0, le=100)
    graphql_get_queries: bool = True
    introspection: bool = True
    field_suggestions: bool = True
    # Browser origins allowed to call the API (CORS); none by default. `GATEWAY_CORS_ORIGINS=https://a,https://b`.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    lineage_default_depth: int = Field(default=3, ge=1, le=20)
    lineage_max_depth: int = Field(default=20, ge=1, le=20)
    lineage_max_nodes: int = Field(default=2000, ge=1, le=100_000)
    # Subscriptions (gateway/live): updates waiting per subscription before its consumer counts as too slow and
    # is disconnected; how long it then has to receive the notice; how often the change feed is polled for
    # what no notification announced (other processes' writes on SQLite, a lost LISTEN connection on Postgres).
    live_queue_size: int = Field(default=256, ge=1, le=100_000)
    live_drop_grace_seconds: float = Field(default=5.0, gt=0, le=300)
    live_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    # `serve` on SIGTERM: requests and websockets still open after this long are cut off.
    shutdown_timeout_seconds: int = Field(default=15, ge=1, le=3600)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: Any) -> Any:
        # From the environment: a comma-separated list, or a JSON array.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'gateway.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        """The embedded default migrates itself; a shared Postgres is migrated on purpose."""
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats the YAML file.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls), file_secret_settings)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from overrides, `GATEWAY_*` variables and the YAML file (`--config` or `GATEWAY_CONFIG`)."""
    path = config_file or os.environ.get(CONFIG_FILE_VARIABLE)
    values = {key: value for key, value in overrides.items() if value is not None}
    if not path:
        return Settings(**values)
    if not Path(path).is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with_file = type(
        "Settings",
        (Settings,),
        {"model_config": SettingsConfigDict(**{**Settings.model_config, "yaml_file": path})},
    )
    settings: Settings = with_file(**values)
    return settings


def worker_settings() -> Settings:
    """In a worker process of `serve --workers`: the settings its parent resolved (its config file, environment
    and command line), read once there so that every worker runs with the same."""
    return Settings.model_validate_json(Path(os.environ[WORKER_SETTINGS_VARIABLE]).read_text())
