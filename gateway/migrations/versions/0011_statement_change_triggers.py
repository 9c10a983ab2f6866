"""change feed: one trigger call per statement on Postgres, not one per row

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEED = {"assets": "asset", "runs": "run", "jobs": "job", "lineage_edges": "edge"}

# A batch of a thousand events writes some seven thousand feed rows: row triggers ran a PL/pgSQL call, an INSERT
# and a pg_notify for each (a quarter of the batch's time in the database). Statement triggers see the rows a
# statement wrote as transition tables and record them in one INSERT ... SELECT; an update records only the rows
# it really changed, as the row trigger's WHEN did: the new images that are not among the old ones (EXCEPT hashes
# both sides; a join on id was planned as a nested loop, the transition tables having no statistics, and took
# half a second for a thousand rows). SQLite has no statement triggers: its row triggers stay.
RECORD_STATEMENT = """
CREATE FUNCTION gateway_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tx bigint := pg_current_xact_id()::text::bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes (txid, entity, entity_id, changed_at)
        SELECT tx, TG_ARGV[0], inserted.id, clock_timestamp() FROM inserted_rows AS inserted ORDER BY inserted.id;
    ELSE
        INSERT INTO changes (txid, entity, entity_id, changed_at)
        SELECT tx, TG_ARGV[0], changed.id, clock_timestamp()
        FROM (SELECT * FROM updated_rows EXCEPT SELECT * FROM previous_rows) AS changed
        ORDER BY changed.id;
    END IF;
    IF FOUND THEN
        PERFORM pg_notify('gateway_live', 'change:' || tx);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(RECORD_STATEMENT)
    for table, entity in FEED.items():
        op.execute(f"DROP TRIGGER {table}_inserted ON {table}")
        op.execute(f"DROP TRIGGER {table}_updated ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} REFERENCING NEW TABLE AS inserted_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION gateway_record_changes('{entity}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_updated AFTER UPDATE ON {table} "
            "REFERENCING OLD TABLE AS previous_rows NEW TABLE AS updated_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION gateway_record_changes('{entity}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, entity in FEED.items():
        op.execute(f"DROP TRIGGER {table}_inserted ON {table}")
        op.execute(f"DROP TRIGGER {table}_updated ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION gateway_record_change('{entity}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_updated AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION gateway_record_change('{entity}')"
        )
    op.execute("DROP FUNCTION gateway_record_changes()")
