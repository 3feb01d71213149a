"""The store's tables (SQLAlchemy Core). Migrations in ``migrations/`` create and evolve them.

Times are float seconds since the epoch: portable across SQLite and PostgreSQL, and what
``time.time()`` gives the writer with no conversion on the hot path.

Metric points are stored as chunks: one row per (run, key) per flush holding the steps,
values and wall times of that flush as little-endian int64/float64 arrays. Measured against a
row per point, chunks ingest and read one to two orders of magnitude faster (see
docs/benchmarks.md); ``finish()`` merges small chunks so long runs read in few rows.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("data", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("heartbeat_at", Float),
    Column("config", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("note", Text, nullable=False),
    Column("parent_id", String(32), ForeignKey("runs.id")),
    Column("study_id", String(64)),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("seed", Integer),
    Column("env_id", Integer, ForeignKey("environments.id")),
    Column("error", Text),
    Column("archived_at", Float),  # archived runs are hidden unless asked for (0008)
    Index("ix_runs_project", "project_id", "created_at"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_study", "study_id"),
    # the runs table's default order, within a project and across all (0008)
    Index("ix_runs_project_started", "project_id", "started_at"),
    Index("ix_runs_started", "started_at"),
    Index("ix_runs_parent", "parent_id"),
)

metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("step_lo", BigInteger, nullable=False),
    Column("step_hi", BigInteger, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("vals", LargeBinary, nullable=False),
    Column("times", LargeBinary, nullable=False),
)

run_summaries = Table(
    "run_summaries",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("last", Float),
    Column("last_step", BigInteger),
    Column("min", Float),
    Column("min_step", BigInteger),
    Column("max", Float),
    Column("max_step", BigInteger),
    Column("count", Integer, nullable=False),
    Column("nan_count", Integer, nullable=False),
    Column("inf_count", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("run_created", Float),  # the run's created_at: scan order (0012)
    # the metric keys in scope, and one key's summary of each run in scope, read from the
    # index alone in the order runs are scanned (0008; the values since 0011; run_created
    # since 0012: store/run_groups.py reads it)
    Index("ix_run_summaries_created", "key", "run_created", "run_id", "last", "min", "max"),
    # a sort walks one key's summaries in order; a filter reads a range of them (0009)
    Index("ix_run_summaries_last", "key", "last", "run_id"),
    Index("ix_run_summaries_min", "key", "min", "run_id"),
    Index("ix_run_summaries_max", "key", "max", "run_id"),
)

# Who changed which run, when (revision 0008): renames, tags, notes, archiving and deletes,
# from the API (the token) or the CLI (the local user). run_id has no foreign key: a deleted
# run's events stay.
RUN_EVENT_ACTIONS = ("rename", "tags", "note", "archive", "unarchive", "delete")

run_events = Table(
    "run_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("detail", JSON, nullable=False),  # what it was before and after
    Column("at", Float, nullable=False),
    Index("ix_run_events_run", "run_id", "at"),
    Index("ix_run_events_project", "project_id", "at"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("run_id", "path", name="uq_artifacts_run_path"),
)

audio_samples = Table(
    "audio_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(200), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), nullable=False),
    Column("sample_rate", Integer, nullable=False),
    Column("frames", BigInteger, nullable=False),
    Column("duration", Float, nullable=False),
    Column("channels", Integer, nullable=False),
    Column("caption", Text),
    Column("peak", Float, nullable=False),
    # FLAC holds [-1, 1]; louder audio is stored scaled by 1/gain and gain kept to undo it.
    Column("gain", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_audio_samples_run", "run_id", "key", "step"),
)

# Images and tables a run logged (revision 0005): a PNG or JSON artifact under a key and a
# step. ``info`` holds what a viewer needs before fetching the file: an image's width,
# height and mode (and the value range a float array was scaled from), a table's columns
# and number of rows.
MEDIA_KINDS = ("image", "table")

media = Table(
    "media",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", String(200), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), nullable=False),
    Column("caption", Text),
    Column("info", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_media_run", "run_id", "kind", "key", "step"),
)

# Ablation studies (revision 0002). A study is a validated study file; a trial is one
# (arm, seed) of it, pointing at the run that executed it; a finding is one comparison the
# analysis made, kept so evidence can be pooled across studies.
STUDY_TRIAL_STATUSES = ("pending", "running", "finished", "failed", "timed_out", "crashed")

studies = Table(
    "studies",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("runner_host", String(255)),
    Column("runner_pid", Integer),
    Column("runner_beat", Float),
    UniqueConstraint("project_id", "name", name="uq_studies_project_name"),
)

trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(32), ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("arm", String(400), nullable=False),
    Column("levels", JSON, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("overrides", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    # The run the trial makes: recorded when the trial starts, before that run exists (0007).
    Column("run_id", String(32)),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("log_sha256", String(64)),
    Column("started_at", Float),
    Column("ended_at", Float),
    UniqueConstraint("study_id", "key", name="uq_trials_study_key"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(32), ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("component", String(400), nullable=False),
    Column("level", String(400), nullable=False),
    Column("baseline", String(400), nullable=False),
    Column("metric", String(200), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("effect", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("p_value", Float, nullable=False),
    Column("p_adjusted", Float, nullable=False),
    Column("prob_improvement", Float, nullable=False),
    Column("n", Integer, nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("context", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_findings_component", "component", "metric"),
    UniqueConstraint("study_id", "kind", "component", "level", "metric",
                     name="uq_findings_comparison"),
)

# API tokens of the team server (revision 0003). Only a hash of each token's secret is kept;
# ``project`` (a project name, NULL for all projects) bounds what the token can see.
TOKEN_SCOPES = ("read", "write", "admin")

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scope", String(8), nullable=False),
    Column("project", String(200)),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

# The model registry (revision 0004). A model is a name (unique in the store) in one project;
# a version is a registered checkpoint of a run: its weights and the recipe code that rebuilds
# it as content-addressed blobs, with its config, input signature and lineage. An alias names
# one version; every change of an alias is a row of alias_events, which is append-only (a
# trigger refuses UPDATE and DELETE). model_reports holds what later steps measure on a
# version (export parity, latency, gate results), one row per (kind, name).
ALIAS_ACTIONS = ("set", "move", "delete", "protect", "unprotect")
ALIAS_AUTHORITIES = ("write", "admin", "gate")

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("description", Text, nullable=False),
    Column("protected", JSON, nullable=False),  # alias names only an admin or a gate moves
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("artifact", String(1024), nullable=False),  # the weights' path in the run
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("code_sha256", String(64), ForeignKey("blobs.sha256")),  # zip of the recipe
    Column("recipe", JSON, nullable=False),
    Column("config", JSON, nullable=False),
    Column("signature", JSON, nullable=False),
    Column("lineage", JSON, nullable=False),
    Column("parameters", BigInteger),
    Column("parent_id", Integer, ForeignKey("model_versions.id")),
    Column("study_id", String(32)),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_number"),
    Index("ix_model_versions_run", "run_id"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", Float, nullable=False),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(200), nullable=False),
    Column("authority", String(8), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", JSON),
    Column("at", Float, nullable=False),
    Index("ix_alias_events_alias", "model_id", "alias", "at"),
)

model_reports = Table(
    "model_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("data", JSON, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id")),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("version_id", "kind", "name", name="uq_model_reports_name"),
)

# Blind preference tests (revision 0006). One row per judgement: a listener heard a study
# arm's clip and the baseline's clip of the same text (same seed, key and step), in the order
# ``shown_first`` says, and preferred ``choice`` ("arm" or "baseline"). One judgement per
# listener and pair; judging a pair again replaces it (``created_at`` says when).
PREFERENCE_SIDES = ("arm", "baseline")

preferences = Table(
    "preferences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(32), ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("arm", String(400), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("key", String(200), nullable=False),
    Column("arm_sample", Integer, ForeignKey("audio_samples.id", ondelete="CASCADE"),
           nullable=False),
    Column("baseline_sample", Integer, ForeignKey("audio_samples.id", ondelete="CASCADE"),
           nullable=False),
    Column("listener", String(200), nullable=False),
    Column("shown_first", String(8), nullable=False),
    Column("choice", String(8), nullable=False),
    Column("token_id", String(32)),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("study_id", "listener", "arm_sample", "baseline_sample",
                     name="uq_preferences_judgement"),
    Index("ix_preferences_study_arm", "study_id", "arm"),
)
