"""change feed written by triggers; shipper cursors and parked batches

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> the entity name its rows appear under in the feed
FEED = {"assets": "asset", "runs": "run", "jobs": "job", "lineage_edges": "edge"}
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

POSTGRES_FUNCTION = """
CREATE FUNCTION gateway_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changes (txid, entity, entity_id, changed_at)
    VALUES (pg_current_xact_id()::text::bigint, TG_ARGV[0], NEW.id, clock_timestamp());
    RETURN NULL;
END
$$
"""


def _create_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for table, entity in FEED.items():
            op.execute(
                f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION gateway_record_change('{entity}')"
            )
            op.execute(
                f"CREATE TRIGGER {table}_updated AFTER UPDATE ON {table} FOR EACH ROW "
                f"WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION gateway_record_change('{entity}')"
            )
        return
    # SQLite serialises writers, so the row id alone orders the feed; txid stays 0. An update that changes
    # nothing records nothing, as on Postgres (a migration adding columns to these tables recreates them).
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
    inspector = sa.inspect(op.get_bind())
    for table, entity in FEED.items():
        record = f"INSERT INTO changes (txid, entity, entity_id, changed_at) VALUES (0, '{entity}', NEW.id, {now});"
        changed = " OR ".join(f'NEW."{c["name"]}" IS NOT OLD."{c["name"]}"' for c in inspector.get_columns(table))
        op.execute(f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} FOR EACH ROW BEGIN {record} END")
        op.execute(
            f"CREATE TRIGGER {table}_updated AFTER UPDATE ON {table} FOR EACH ROW WHEN {changed} BEGIN {record} END"
        )


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(length=8), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", gateway.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("entity IN ('asset', 'run', 'job', 'edge')", name=op.f("ck_changes_entity")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    op.create_index(op.f("ix_changes_txid_id"), "changes", ["txid", "id"], unique=False)
    op.create_table(
        "shipper_state",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("cursor_txid", sa.BigInteger(), nullable=False),
        sa.Column("cursor_id", sa.BigInteger(), nullable=False),
        sa.Column("shipped", sa.BigInteger(), nullable=False),
        sa.Column("last_run_at", gateway.types.UTCDateTime(), nullable=True),
        sa.Column("last_success_at", gateway.types.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shipper_state")),
    )
    op.create_table(
        "parked_batches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("shipper", sa.String(length=100), nullable=False),
        sa.Column("from_txid", sa.BigInteger(), nullable=False),
        sa.Column("from_id", sa.BigInteger(), nullable=False),
        sa.Column("to_txid", sa.BigInteger(), nullable=False),
        sa.Column("to_id", sa.BigInteger(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("parked_at", gateway.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parked_batches")),
    )
    op.create_index(
        op.f("ix_parked_batches_shipper_parked_at"), "parked_batches", ["shipper", "parked_at"], unique=False
    )
    _create_triggers()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in FEED:
        for event in ("inserted", "updated"):
            if dialect == "postgresql":
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event} ON {table}")
            else:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS gateway_record_change()")
    op.drop_index(op.f("ix_parked_batches_shipper_parked_at"), table_name="parked_batches")
    op.drop_table("parked_batches")
    op.drop_table("shipper_state")
    op.drop_index(op.f("ix_changes_txid_id"), table_name="changes")
    op.drop_table("changes")
