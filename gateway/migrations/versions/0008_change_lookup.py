"""index the change feed by entity, for full exports

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_changes_entity_entity_id_id"), "changes", ["entity", "entity_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_changes_entity_entity_id_id"), table_name="changes")
