"""Reading MLflow tracking stores and servers with MLflow's own client (``mlflow-skinny``).

Any tracking URI the client takes works: ``http(s)://`` servers, ``sqlite:///mlflow.db``,
other database URIs, ``databricks``. Each experiment becomes a project (of the same name,
unless one project is named for all) and each run a run, mapped as the MLflow endpoint maps
them (``tympan.integrations.mlflow_tracking``): params are config entries, every metric
comes with its full history (``get_metric_history``: every step, value and timestamp, not
the latest value only), tags become the name, note, parent, environment and run tags, and
every artifact file is copied under its path. The source of a run is its MLflow run id,
which MLflow makes unique, so the same run imported through another URI is still the same.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tympan.errors import InvalidInputError
from tympan.integrations import require
from tympan.integrations.importers.writing import File, Imported, SourceRun, write_run
from tympan.integrations.mlflow_tracking import (
    NOTE,
    PARENT,
    RUN_NAME,
    environment_of,
    tag_label,
)
from tympan.track.transport import Transport

STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed",
          "RUNNING": "running", "SCHEDULED": "running"}


def source_of(run_id: str) -> str:
    return f"mlflow:run/{run_id}"


def import_runs(transport: Transport, tracking_uri: str, experiment: str | None = None,
                project: str | None = None) -> list[Imported]:
    """Import every run of ``experiment`` (default: of every experiment) from
    ``tracking_uri`` into projects named after their experiments, or into ``project``."""
    tracking: Any = require("mlflow.tracking", "mlflow", "tympan import mlflow")
    client = tracking.MlflowClient(tracking_uri=tracking_uri)
    out = []
    for found in _experiments(client, experiment, tracking_uri):
        runs = sorted(_runs(client, found.experiment_id), key=lambda r: r.info.start_time or 0)
        known = {run.info.run_id for run in runs}
        for run in runs:
            source_run = read_run(client, run, project or found.name, tracking_uri)
            parent = run.data.tags.get(PARENT)
            out.append(write_run(transport, source_run,
                                 parent=source_of(parent) if parent in known else None))
    return out


def _experiments(client: Any, name: str | None, uri: str) -> list[Any]:
    if name is not None:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise InvalidInputError(f"no MLflow experiment named {name!r} at {uri}")
        return [found]
    experiments, token = [], None
    while True:
        page = client.search_experiments(page_token=token)
        experiments += list(page)
        token = page.token
        if not token:
            return experiments


def _runs(client: Any, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def read_run(client: Any, run: Any, project: str, uri: str) -> SourceRun:
    """One MLflow run: its record, every point of every metric, and its artifact files."""
    info, data = run.info, run.data
    tags = dict(data.tags)
    system = {k: v for k, v in tags.items() if k.startswith("mlflow.")}
    labels = []
    for key, value in sorted(tags.items()):
        if key.startswith("mlflow."):
            continue
        try:
            labels.append(tag_label(key, value))
        except InvalidInputError:  # too long for a run tag: kept with the environment
            system[key] = value
    name = system.pop(RUN_NAME, None) or info.run_name or info.run_id
    note = system.pop(NOTE, "") or f"imported from MLflow run {info.run_id} at {uri}"
    system.pop(PARENT, None)
    status = STATUS.get(info.status, "failed")
    started = (info.start_time or 0) / 1000
    source = SourceRun(
        source=source_of(info.run_id), project=project, name=name[:200], created_at=started,
        status=status, ended_at=None if info.end_time is None else info.end_time / 1000,
        error=f"MLflow status {info.status}" if info.status == "KILLED" else None,
        config=dict(data.params), tags=labels, note=note,
        environment=environment_of(system) if system else None)
    for key in sorted(data.metrics):
        history = client.get_metric_history(info.run_id, key)
        points = source.points(key)
        for metric in sorted(history, key=lambda m: (m.timestamp, m.step)):
            points.add(int(metric.step), float(metric.value), metric.timestamp / 1000)
    source.files = list(_files(client, info.run_id, started))
    return source


def _files(client: Any, run_id: str, created: float) -> Iterator[File]:
    with tempfile.TemporaryDirectory(prefix="tympan-mlflow-") as tmp:
        pending = [None]
        while pending:
            folder = pending.pop()
            for entry in client.list_artifacts(run_id, folder):
                if entry.is_dir:
                    pending.append(entry.path)
                    continue
                local = Path(client.download_artifacts(run_id, entry.path, tmp))
                media_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
                yield File(entry.path, local.read_bytes(), media_type, created)
                os.unlink(local)
