"""raw OpenLineage events; when producers last described an asset

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gateway.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("described_at", gateway.types.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "lineage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=True),
        sa.Column("event_time", gateway.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("job_namespace", sa.String(length=512), nullable=True),
        sa.Column("job_name", sa.String(length=512), nullable=True),
        sa.Column("producer", sa.Text(), nullable=True),
        sa.Column("received_at", gateway.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_events")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_lineage_events_content_hash")),
    )
    op.create_index(op.f("ix_lineage_events_event_time_id"), "lineage_events", ["event_time", "id"], unique=False)
    op.create_index(op.f("ix_lineage_events_run_id"), "lineage_events", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_lineage_events_run_id"), table_name="lineage_events")
    op.drop_index(op.f("ix_lineage_events_event_time_id"), table_name="lineage_events")
    op.drop_table("lineage_events")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("described_at")
