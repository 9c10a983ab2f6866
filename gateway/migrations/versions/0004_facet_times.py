"""per-facet event times; parent placeholders

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("facet_times", _JSON, nullable=False, server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("placeholder", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("run_assets") as batch:
        batch.add_column(sa.Column("facet_times", _JSON, nullable=False, server_default=sa.text("'{}'")))
    # The defaults served existing rows; new rows always carry their own values.
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("facet_times", server_default=None)
    with op.batch_alter_table("run_assets") as batch:
        batch.alter_column("facet_times", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("run_assets") as batch:
        batch.drop_column("facet_times")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("placeholder")
        batch.drop_column("facet_times")
