"""Blind preference tests: one row per listener's judgement of a pair of study clips.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("arm", sa.String(400), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("arm_sample", sa.Integer,
                  sa.ForeignKey("audio_samples.id", ondelete="CASCADE"), nullable=False),
        sa.Column("baseline_sample", sa.Integer,
                  sa.ForeignKey("audio_samples.id", ondelete="CASCADE"), nullable=False),
        sa.Column("listener", sa.String(200), nullable=False),
        sa.Column("shown_first", sa.String(8), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("token_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("study_id", "listener", "arm_sample", "baseline_sample",
                            name="uq_preferences_judgement"),
    )
    op.create_index("ix_preferences_study_arm", "preferences", ["study_id", "arm"])


def downgrade() -> None:
    op.drop_index("ix_preferences_study_arm", table_name="preferences")
    op.drop_table("preferences")
