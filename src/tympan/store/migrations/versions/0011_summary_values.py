"""One run's summary of a key read from an index alone: run_summaries' (key, run_id) index
becomes (key, run_id, last, min, max).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

A group-by seeks every run's summary of its metric. Through the primary key that is two seeks
(the key's entry, then the row); with the values in the index it is one: the counts of a
3-key group-by of 100,000 runs on SQLite take 243 instead of 296 ms of CPU
(docs/benchmarks.md, issue 17). The index replaces the narrower one, so a write keeps as many
indexes as before.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_run_summaries_values", "run_summaries",
                    ["key", "run_id", "last", "min", "max"])
    op.drop_index("ix_run_summaries_key", table_name="run_summaries")


def downgrade() -> None:
    op.create_index("ix_run_summaries_key", "run_summaries", ["key", "run_id"])
    op.drop_index("ix_run_summaries_values", table_name="run_summaries")
