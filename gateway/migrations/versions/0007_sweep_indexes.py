"""partial indexes for the freshness sweep: live lineage edges, deleted assets

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # AT_RISK follows live edges downstream one hop per statement: an index-only scan with this index.
    op.create_index(
        "ix_lineage_edges_live",
        "lineage_edges",
        ["upstream_id", "downstream_id"],
        unique=False,
        sqlite_where=sa.text("retired_at IS NULL"),
        postgresql_where=sa.text("retired_at IS NULL"),
    )
    # The health rows and open alerts of deleted assets, found without reading every asset.
    op.create_index(
        "ix_assets_deleted",
        "assets",
        ["id"],
        unique=False,
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_assets_deleted", table_name="assets")
    op.drop_index("ix_lineage_edges_live", table_name="lineage_edges")
