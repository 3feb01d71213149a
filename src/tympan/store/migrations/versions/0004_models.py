"""The model registry: models, versions, aliases, the append-only alias history, reports.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``alias_events`` is append-only: a trigger refuses UPDATE and DELETE on both backends, so the
answer to "which version was champion on that day" cannot be rewritten afterwards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_REFUSE = "alias_events is append-only: alias history cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("protected", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("artifact", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("code_sha256", sa.String(64), sa.ForeignKey("blobs.sha256")),
        sa.Column("recipe", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("parameters", sa.BigInteger),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("study_id", sa.String(32)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_number"),
    )
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id"),
                  nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("authority", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_alias_events_alias", "alias_events", ["model_id", "alias", "at"])
    op.create_table(
        "model_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id"),
                  nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("version_id", "kind", "name", name="uq_model_reports_name"),
    )
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER alias_events_no_{event.lower()} BEFORE {event} ON "
                       f"alias_events BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END")
    else:
        op.execute("CREATE FUNCTION alias_events_append_only() RETURNS trigger AS $$ BEGIN "
                   f"RAISE EXCEPTION '{_REFUSE}'; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER alias_events_append_only BEFORE UPDATE OR DELETE ON "
                   "alias_events FOR EACH ROW EXECUTE FUNCTION alias_events_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER alias_events_append_only ON alias_events")
        op.execute("DROP FUNCTION alias_events_append_only()")
    op.drop_table("model_reports")
    op.drop_index("ix_alias_events_alias", "alias_events")
    op.drop_table("alias_events")  # SQLite drops the table's triggers with it
    op.drop_table("model_aliases")
    op.drop_index("ix_model_versions_run", "model_versions")
    op.drop_table("model_versions")
    op.drop_table("models")
