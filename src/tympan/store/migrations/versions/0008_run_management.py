"""Run management and the runs table at 100,000 runs: runs.archived_at, the run_events audit
table, and the indexes the runs table's reads need.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Archived runs are hidden from listings unless asked for; every rename, tag or note edit,
archive and delete is a row of run_events (who, what, when), kept after a run is deleted.
The indexes serve the runs table's newest-first page (runs by started_at, within a project
or across all), a run's children (parent_id), and the metric keys of a scope and one key's
summaries (run_summaries by key), each of which scanned every row at 100,000 runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_runs_project_started", "runs", ["project_id", "started_at"]),
    ("ix_runs_started", "runs", ["started_at"]),
    ("ix_runs_parent", "runs", ["parent_id"]),
    ("ix_run_summaries_key", "run_summaries", ["key", "run_id"]),
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("archived_at", sa.Float))
    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_run_events_run", "run_events", ["run_id", "at"])
    op.create_index("ix_run_events_project", "run_events", ["project_id", "at"])
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index("ix_run_events_project", table_name="run_events")
    op.drop_index("ix_run_events_run", table_name="run_events")
    op.drop_table("run_events")
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy of runs would drop the table, and
    # with foreign keys on that cascades to every run's summaries and chunks.
    op.drop_column("runs", "archived_at")
