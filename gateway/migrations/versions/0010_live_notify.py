"""live updates: notify listeners of committed changes and new alerts

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# On Postgres the change-feed trigger also signals the channel `gateway_live` with `change:<txid>` (Postgres
# delivers one notification per distinct payload of a transaction, once it has committed), and a new alert
# signals `alert:<id>`: every gateway replica LISTENs and fans them out to its subscriptions. SQLite serves one
# process, which wakes its own subscriptions after each commit: there is nothing to do there.

RECORD_AND_NOTIFY = """
CREATE OR REPLACE FUNCTION gateway_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tx bigint := pg_current_xact_id()::text::bigint;
BEGIN
    INSERT INTO changes (txid, entity, entity_id, changed_at)
    VALUES (tx, TG_ARGV[0], NEW.id, clock_timestamp());
    PERFORM pg_notify('gateway_live', 'change:' || tx);
    RETURN NULL;
END
$$
"""

RECORD_ONLY = """
CREATE OR REPLACE FUNCTION gateway_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changes (txid, entity, entity_id, changed_at)
    VALUES (pg_current_xact_id()::text::bigint, TG_ARGV[0], NEW.id, clock_timestamp());
    RETURN NULL;
END
$$
"""

NOTIFY_ALERT = """
CREATE FUNCTION gateway_notify_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_live', 'alert:' || NEW.id);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(RECORD_AND_NOTIFY)
    op.execute(NOTIFY_ALERT)
    op.execute(
        "CREATE TRIGGER alerts_raised AFTER INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION gateway_notify_alert()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS alerts_raised ON alerts")
    op.execute("DROP FUNCTION IF EXISTS gateway_notify_alert()")
    op.execute(RECORD_ONLY)
