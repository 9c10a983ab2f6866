"""The gateway's tables. Migrations in `gateway/migrations` create exactly these on both dialects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.types import Identifier, Json, SortableString, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY_LENGTH = 512
RUN_STATES = ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER")
TERMINAL_STATES = ("COMPLETE", "FAIL", "ABORT")
ROLES = ("input", "output")
EDGE_ORIGINS = ("run", "declared")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("namespace", "name"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    namespace: Mapped[str] = mapped_column(SortableString(KEY_LENGTH))
    name: Mapped[str] = mapped_column(SortableString(KEY_LENGTH))
    type: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", Json, default=dict)
    type_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    description_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"state IN {RUN_STATES!r}", name="state"),
        Index(None, "job_id", "event_time"),
        # When an edge retires: the first COMPLETE run of its job after a time, found without reading the others.
        Index(None, "job_id", "state", "state_time"),
        Index(None, "parent_id"),
        Index(None, "event_time"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(255), unique=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    # The time of the event whose state won; ties in state rank go to the later one.
    state_time: Mapped[datetime] = mapped_column(UTCDateTime)
    facets: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # Event time at which each facet was last set: the newest event wins each facet, in any arrival order. Read by
    # ingestion's own statements only: rows loaded for answers leave it undecoded (deferred).
    facet_times: Mapped[dict[str, str]] = mapped_column(Json, default=dict, deferred=True, deferred_raiseload=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    # Known only as some run's parent: its times do not count once its own events arrive.
    placeholder: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        Index(None, "namespace", "key"),
        Index(None, "type", "key"),
        Index(None, "updated_at", "id"),
        Index(None, "last_materialized_at", "id"),
        Index(None, "name", "id"),
        Index("ix_assets_tags", "tags", postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"}),
        Index("ix_assets_owners", "owners", postgresql_using="gin", postgresql_ops={"owners": "jsonb_path_ops"}),
        Index(
            "ix_assets_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        # The freshness sweep's deleted assets (migration 0005).
        Index(
            "ix_assets_deleted",
            "id",
            sqlite_where=text("deleted_at IS NOT NULL"),
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    key: Mapped[str] = mapped_column(SortableString(KEY_LENGTH), unique=True)
    namespace: Mapped[str] = mapped_column(SortableString(KEY_LENGTH))
    name: Mapped[str] = mapped_column(SortableString(KEY_LENGTH))
    type: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    owners: Mapped[list[str]] = mapped_column(Json, default=list)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", Json, default=dict)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_materialized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    last_status: Mapped[str | None] = mapped_column(String(16))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Event time of the newest description that gave an attribute (a declaration counts as one made when it was
    # made); none for an asset that events have only named.
    described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Per attribute, the time of the description that set it: the newest wins each one, in any arrival order.
    type_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    description_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owners_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tags_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fields_described_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AssetAlias(Base):
    __tablename__ = "asset_aliases"
    __table_args__ = (Index(None, "asset_id"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    alias: Mapped[str] = mapped_column(SortableString(KEY_LENGTH), unique=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunAsset(Base):
    """Which execution touched which asset, in which role: the per-asset audit log."""

    __tablename__ = "run_assets"
    __table_args__ = (
        UniqueConstraint("run_id", "asset_id", "role"),
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        Index(None, "asset_id", "event_time", "id"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    facets: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # The merge's bookkeeping, read by ingestion's own statements only: rows loaded for answers leave it undecoded.
    facet_times: Mapped[dict[str, str]] = mapped_column(Json, default=dict, deferred=True, deferred_raiseload=True)


class LineageEdge(Base):
    """Asset -> asset, through a job (or declared without one). Retired edges stay for `asOf`."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        CheckConstraint(f"origin IN {EDGE_ORIGINS!r}", name="origin"),
        Index(
            "uq_lineage_edges_with_job",
            "upstream_id",
            "downstream_id",
            "job_id",
            unique=True,
            sqlite_where=text("job_id IS NOT NULL"),
            postgresql_where=text("job_id IS NOT NULL"),
        ),
        Index(
            "uq_lineage_edges_without_job",
            "upstream_id",
            "downstream_id",
            unique=True,
            sqlite_where=text("job_id IS NULL"),
            postgresql_where=text("job_id IS NULL"),
        ),
        Index(None, "upstream_id", "downstream_id"),
        Index(None, "downstream_id", "upstream_id"),
        Index(None, "job_id"),
        # The freshness sweep's AT_RISK steps: index-only over the live edges (migration 0005).
        Index(
            "ix_lineage_edges_live",
            "upstream_id",
            "downstream_id",
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    upstream_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    downstream_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))


class ColumnLineage(Base):
    __tablename__ = "column_lineage"
    __table_args__ = (
        UniqueConstraint("downstream_id", "downstream_field", "upstream_id", "upstream_field"),
        Index(None, "upstream_id"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    downstream_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    downstream_field: Mapped[str] = mapped_column(String(KEY_LENGTH))
    upstream_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    upstream_field: Mapped[str] = mapped_column(String(KEY_LENGTH))
    transformation_type: Mapped[str | None] = mapped_column(String(64))
    transformation_subtype: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LineageEvent(Base):
    """Every accepted raw OpenLineage event, stored before it is applied (replay, audit)."""

    __tablename__ = "lineage_events"
    __table_args__ = (Index(None, "event_time", "id"), Index(None, "run_id"))

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str | None] = mapped_column(String(16))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[str | None] = mapped_column(String(255))
    job_namespace: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    job_name: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    producer: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)


SEVERITIES = ("warn", "error")
POLICY_KINDS = ("max_age", "cron", "auto")
HEALTH_STATUSES = ("FRESH", "STALE", "AT_RISK", "FAILED", "UNKNOWN")
ALERT_KINDS = ("stale", "failed")


class FreshnessPolicy(Base):
    """How fresh an asset must be: attached to one asset, or to every asset a selector matches."""

    __tablename__ = "freshness_policies"
    __table_args__ = (
        CheckConstraint(f"kind IN {POLICY_KINDS!r}", name="kind"),
        CheckConstraint(f"severity IN {SEVERITIES!r}", name="severity"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), unique=True)
    selector: Mapped[dict[str, Any] | None] = mapped_column(Json)
    kind: Mapped[str] = mapped_column(String(16))
    max_age_seconds: Mapped[int | None] = mapped_column()
    cron: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    tolerance: Mapped[float | None] = mapped_column()
    min_history: Mapped[int | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AssetHealth(Base):
    """The latest sweep's verdict on an asset; rewritten only when the verdict changes."""

    __tablename__ = "asset_health"
    __table_args__ = (
        CheckConstraint(f"status IN {HEALTH_STATUSES!r}", name="status"),
        Index(None, "status", "asset_id"),
    )

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("freshness_policies.id", ondelete="SET NULL"))
    expected_interval_seconds: Mapped[float | None] = mapped_column()
    cause_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(f"kind IN {ALERT_KINDS!r}", name="kind"),
        CheckConstraint(f"severity IN {SEVERITIES!r}", name="severity"),
        # One open alert per asset and kind: a repeated sweep can never open a second one.
        Index(
            "uq_alerts_open",
            "asset_id",
            "kind",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index(None, "opened_at", "id"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(8))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("freshness_policies.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class AlertDelivery(Base):
    """One notification of one alert event to one notifier: an outbox row, delivered once."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "notifier", "event"),
        Index(None, "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    notifier: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class MonitorRun(Base):
    __tablename__ = "monitor_runs"
    __table_args__ = (Index(None, "monitor", "started_at"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    monitor: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assets_checked: Mapped[int] = mapped_column(default=0)
    alerts_opened: Mapped[int] = mapped_column(default=0)
    alerts_resolved: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)


CHANGE_ENTITIES = ("asset", "run", "job", "edge")


class Change(Base):
    """The change feed: written by triggers in the transaction that changed the row (migration 0006).

    `txid` is the writing transaction's id on Postgres (0 on SQLite, whose writers are serialised):
    readers take only rows of transactions older than every running one, so a cursor of (txid, id)
    never passes a change that commits late.
    """

    __tablename__ = "changes"
    __table_args__ = (
        CheckConstraint(f"entity IN {CHANGE_ENTITIES!r}", name="entity"),
        Index(None, "txid", "id"),
        # A full export asks for each row's newest change.
        Index(None, "entity", "entity_id", "id"),
    )

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger)
    entity: Mapped[str] = mapped_column(String(8))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShipperState(Base):
    """Each shipper's durable cursor into the change feed, and what it has done."""

    __tablename__ = "shipper_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    cursor_txid: Mapped[int] = mapped_column(BigInteger, default=0)
    cursor_id: Mapped[int] = mapped_column(BigInteger, default=0)
    shipped: Mapped[int] = mapped_column(BigInteger, default=0)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(default=0)


class ParkedBatch(Base):
    """A batch the target kept refusing: set aside (dead letter) so that the feed moves on."""

    __tablename__ = "parked_batches"
    __table_args__ = (Index(None, "shipper", "parked_at"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    shipper: Mapped[str] = mapped_column(String(100))
    from_txid: Mapped[int] = mapped_column(BigInteger)
    from_id: Mapped[int] = mapped_column(BigInteger)
    to_txid: Mapped[int] = mapped_column(BigInteger)
    to_id: Mapped[int] = mapped_column(BigInteger)
    changes: Mapped[int] = mapped_column()
    attempts: Mapped[int] = mapped_column()
    error: Mapped[str] = mapped_column(Text)
    parked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token, stored as its SHA-256 only; `namespaces` are the grant patterns."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("scope IN ('read', 'write', 'admin')", name="scope"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(8))
    namespaces: Mapped[list[str]] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
