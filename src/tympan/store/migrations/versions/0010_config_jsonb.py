"""PostgreSQL keeps each run's config also as JSONB (``runs.config_jsonb``), which the database
computes from ``config`` on every insert and update: filters, sorts and groups on config keys
read it instead of parsing the JSON text of every run on every request.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Measured at 10,000 runs (a group-by of 3 config keys, EXPLAIN ANALYZE): 680 ms parsing the
``json`` column per request, 251 ms reading a JSONB copy, 377 ms joining a table of
(run_id, key, value) rows instead. A generated column cannot drift from ``config``: no write
path has to remember it. SQLite gets nothing: its ``json_extract`` reads the text without
building a document (70 ms for 3 keys of 100,000 runs), and the same key table measured
slower there than the JSON it would replace (docs/benchmarks.md, issue 17).
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE runs ADD COLUMN config_jsonb JSONB "
                   "GENERATED ALWAYS AS (config::jsonb) STORED")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("runs", "config_jsonb")
