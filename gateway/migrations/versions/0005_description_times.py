"""per-attribute description times for assets and jobs

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ASSET_ATTRIBUTES = ("type", "description", "owners", "tags", "fields")
JOB_ATTRIBUTES = ("type", "description")


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        for attribute in ASSET_ATTRIBUTES:
            batch.add_column(sa.Column(f"{attribute}_described_at", gateway.types.UTCDateTime(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        for attribute in JOB_ATTRIBUTES:
            batch.add_column(sa.Column(f"{attribute}_described_at", gateway.types.UTCDateTime(), nullable=True))
    # Attributes described before this migration count as described when the asset last was.
    for attribute in ASSET_ATTRIBUTES:
        op.execute(f"UPDATE assets SET {attribute}_described_at = described_at")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for attribute in JOB_ATTRIBUTES:
            batch.drop_column(f"{attribute}_described_at")
    with op.batch_alter_table("assets") as batch:
        for attribute in ASSET_ATTRIBUTES:
            batch.drop_column(f"{attribute}_described_at")
