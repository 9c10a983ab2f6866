"""runs by job, state and state time: edge retirement reads one index entry, not the job's history

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Each recorded run asks, for the edges into its outputs, for the first later COMPLETE run of their job:
    # with (job_id, event_time) alone that read every run of the job, so ingestion slowed as a job's history grew.
    op.create_index(op.f("ix_runs_job_id_state_state_time"), "runs", ["job_id", "state", "state_time"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_job_id_state_state_time"), table_name="runs")
