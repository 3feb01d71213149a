"""A trial names its run when it starts, before the run exists: trials.run_id loses its
foreign key to runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

The runner pre-assigns each trial's run id (``TYMPAN_RUN_ID``) and now records it before
starting the trial, so a runner killed after the trial's run finished finds that run on
resume instead of running the trial again. The id names a run that does not exist yet while
the trial starts (and never will if the trial fails before ``tympan.init()``), which a
foreign key refuses. Nothing ever deletes runs, so the key's ``ON DELETE SET NULL`` did no
work.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _trials(run_key: bool) -> sa.Table:
    """The trials table as revision 0002 made it, with or without the key on run_id."""
    run_id = (sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="SET NULL"))
              if run_key else sa.Column("run_id", sa.String(32)))
    meta = sa.MetaData()
    sa.Table("runs", meta, sa.Column("id", sa.String(32), primary_key=True))
    sa.Table("studies", meta, sa.Column("id", sa.String(32), primary_key=True))
    return sa.Table(
        "trials", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("arm", sa.String(400), nullable=False),
        sa.Column("levels", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("overrides", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        run_id,
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("log_sha256", sa.String(64)),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.UniqueConstraint("study_id", "key", name="uq_trials_study_key"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":  # SQLite cannot drop a constraint: copy the table
        with op.batch_alter_table("trials", recreate="always", copy_from=_trials(False)):
            pass
        return
    for key in sa.inspect(bind).get_foreign_keys("trials"):
        if key["referred_table"] == "runs":
            op.drop_constraint(key["name"], "trials", type_="foreignkey")


def downgrade() -> None:
    # Ids of runs that never came to exist cannot be kept under the key.
    op.execute("UPDATE trials SET run_id = NULL WHERE run_id IS NOT NULL AND run_id NOT IN "
               "(SELECT id FROM runs)")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("trials", recreate="always", copy_from=_trials(False)) as b:
            b.create_foreign_key("fk_trials_run_id_runs", "runs", ["run_id"], ["id"],
                                 ondelete="SET NULL")
        return
    op.create_foreign_key("trials_run_id_fkey", "trials", "runs", ["run_id"], ["id"],
                          ondelete="SET NULL")
