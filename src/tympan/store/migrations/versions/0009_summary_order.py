"""Sorting and filtering 100,000 runs by a metric summary: run_summaries indexed by (key, last,
run_id), (key, min, run_id) and (key, max, run_id).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

A sort by ``valid/wer.min`` walks one key's summaries in order from the index and stops at the
page's last run, and a filter such as ``valid/wer.min < 0.3`` reads the matching run ids from a
range of it, instead of looking up every run's summary (0.5 to 3 s at 100,000 runs).
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INDEXES = tuple((f"ix_run_summaries_{field}", ["key", field, "run_id"])
                 for field in ("last", "min", "max"))


def upgrade() -> None:
    for name, columns in _INDEXES:
        op.create_index(name, "run_summaries", columns)


def downgrade() -> None:
    for name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name="run_summaries")
