"""MLflow's tracking model on a tympan store: what ``/api/2.0/mlflow/...`` serves.

Code that logs with the stock ``mlflow`` client (``MLFLOW_TRACKING_URI=http://tympan-server``)
lands in ordinary tympan runs, and ``tympan import mlflow`` maps an MLflow store the same way:

    MLflow                      tympan
    experiment (id, name)       project (its id; experiment "0", MLflow's Default, is the
                                project "Default")
    run (id, name, status)      run (its id; RUNNING/FINISHED/FAILED, KILLED -> failed)
    param (key -> str)          config entry (the string MLflow sends: params are strings)
    metric (key, value,         metric point (step, value, wall time); keys tympan cannot
      timestamp ms, step)       hold (spaces, ...) have those characters replaced by ``_``
    tag "mlflow.runName"        the run's name; "mlflow.note.content" its note;
                                "mlflow.parentRunId" its parent
    other "mlflow.*" tags       the run's environment (``mlflow.tags``; the git commit and
                                source name also as tympan's git.commit and command)
    other tags                  run tags, ``key=value`` (``key`` alone when the value is empty)
    artifact                    artifact (same path)

Writes go through :class:`~tympan.track.local.LocalTransport` (the code every run writes
with); metric points of one run are appended under a lock, so concurrent requests never
reuse a chunk number. ``project`` is the project a token is bound to: runs and experiments of
other projects read exactly like ones that do not exist.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from tympan.errors import InvalidInputError, NotFoundError, RunNotFoundError
from tympan.records.query import RunFilter, RunQuery
from tympan.records.record import RunRecord, run_by_id
from tympan.records.table import find_runs
from tympan.store import Store, artifacts, projects
from tympan.store.metrics import Chunk
from tympan.store.schema import projects as project_table
from tympan.track.local import LocalTransport
from tympan.track.manage import archive_runs
from tympan.track.naming import new_run_id, new_run_name
from tympan.track.sink import combine, summarize
from tympan.track.transport import Blob, MetricBatch, NewRun, RunMetrics
from tympan.track.validate import check_name, check_text

DEFAULT_EXPERIMENT = "Default"  # MLflow's experiment "0"
SYSTEM = "mlflow."
RUN_NAME, NOTE, PARENT = "mlflow.runName", "mlflow.note.content", "mlflow.parentRunId"
STATUS_OUT = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED",
              "crashed": "KILLED"}
STATUS_IN = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed"}
_LOCKS = [threading.Lock() for _ in range(64)]  # metric appends, striped by run id


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int  # ms
    step: int


def tag_label(key: str, value: str) -> str:
    """A user tag as a tympan run tag."""
    label = key if value == "" else f"{key}={value}"
    if len(label) > 100 or not label.strip():
        raise InvalidInputError(f"tag {key!r}: tympan keeps run tags of 1-100 characters "
                                f"(key=value), this one has {len(label)}")
    return check_text(label, f"tag {key!r}")


def label_tag(label: str) -> tuple[str, str]:
    key, _, value = label.partition("=")
    return key, value


def environment_of(system: Mapping[str, str]) -> dict[str, Any]:
    """The environment record of MLflow's system tags."""
    env: dict[str, Any] = {"mlflow": {"tags": dict(system)}}
    if system.get("mlflow.source.git.commit"):
        env["git"] = {"commit": system["mlflow.source.git.commit"]}
    if system.get("mlflow.source.name"):
        env["command"] = {"argv": [system["mlflow.source.name"]]}
    return env


def params_of(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A run's config as MLflow params: dotted keys, string values."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(params_of(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def number(value: float) -> float | str:
    """A float as MLflow's JSON has it (non-finite values as strings)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class MlflowTracking:
    """One request's view of the store, for a token bound to ``project`` (None: all)."""

    def __init__(self, store: Store, project: str | None = None) -> None:
        self.store = store
        self.project = project
        self.transport = LocalTransport(store, project)

    # -- experiments ------------------------------------------------------------------------
    def experiment(self, experiment_id: str) -> dict[str, Any]:
        names = self._visible_projects()
        if experiment_id == "0":  # MLflow's Default: the project made by its first run
            if self.project is not None and self.project != DEFAULT_EXPERIMENT:
                raise NotFoundError(f"no experiment with id {experiment_id!r}")
            found = [i for i, name in names.items() if name == DEFAULT_EXPERIMENT]
            return (self._experiment_json(found[0], DEFAULT_EXPERIMENT, "0") if found else
                    {"experiment_id": "0", "name": DEFAULT_EXPERIMENT,
                     "artifact_location": "mlflow-artifacts:/", "lifecycle_stage": "active",
                     "tags": []})
        project_id = int(experiment_id) if experiment_id.isdigit() else -1
        if project_id not in names:
            raise NotFoundError(f"no experiment with id {experiment_id!r}")
        return self._experiment_json(project_id, names[project_id])

    def experiment_by_name(self, name: str) -> dict[str, Any]:
        for project_id, project in self._visible_projects().items():
            if project == name:
                return self._experiment_json(project_id, project)
        raise NotFoundError(f"no experiment named {name!r}")

    def create_experiment(self, name: str) -> str:
        check_name(name, "experiment name")
        self._check_project(name, f"this token cannot create experiment {name!r}")
        with self.store.read() as conn:
            if projects.find(conn, name) is not None:
                raise ExistsError(f"experiment {name!r} already exists")
        return str(self._ensure(name))

    def search_experiments(self, max_results: int, offset: int) -> tuple[list[dict], int | None]:
        found = sorted(self._visible_projects().items())
        page = found[offset:offset + max_results]
        more = offset + max_results if len(found) > offset + max_results else None
        return [self._experiment_json(i, name) for i, name in page], more

    def project_of_experiment(self, experiment_id: str) -> str:
        return self.experiment(experiment_id)["name"]

    def _writable_project(self, experiment_id: str) -> str:
        """The project of an experiment runs are created in (Default is made on first use)."""
        project = self.project_of_experiment(experiment_id)
        if experiment_id == "0":
            self._ensure(project)
        return project

    def _experiment_json(self, project_id: int, name: str,
                         experiment_id: str | None = None) -> dict[str, Any]:
        with self.store.read() as conn:
            created = _ms(conn.execute(select(project_table.c.created_at).where(
                project_table.c.id == project_id)).scalar())
        return {"experiment_id": experiment_id or str(project_id), "name": name,
                "artifact_location": "mlflow-artifacts:/", "lifecycle_stage": "active",
                "creation_time": created, "last_update_time": created, "tags": []}

    def _visible_projects(self) -> dict[int, str]:
        with self.store.read() as conn:
            names = projects.names(conn)
        return {i: n for i, n in names.items() if self.project is None or n == self.project}

    def _ensure(self, name: str) -> int:
        self._check_project(name, f"no experiment named {name!r}")
        return self.transport.ensure_project(name, time.time())

    def _check_project(self, name: str, message: str) -> None:
        if self.project is not None and self.project != name:
            raise NotFoundError(message)

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, experiment_id: str, run_name: str | None, start_time: int | None,
                   tags: Mapping[str, str]) -> dict[str, Any]:
        project = self._writable_project(experiment_id or "0")
        tags = dict(tags)
        name = run_name or tags.get(RUN_NAME) or new_run_name()
        user, system = _split(tags)
        parent = system.pop(PARENT, None)
        now = time.time()
        run_id = new_run_id()
        self.transport.create_run(NewRun(
            id=run_id, project=project, name=check_name(name, "run name"), config={},
            tags=[tag_label(k, v) for k, v in user.items()], note=system.pop(NOTE, ""),
            parent=self._parent(parent), study=None, host=None, pid=None, seed=None,
            created_at=now if start_time is None else start_time / 1000))
        self._set_environment(run_id, system)
        return self.run(run_id)

    def update_run(self, run_id: str, status: str | None, end_time: int | None,
                   run_name: str | None) -> dict[str, Any]:
        record = self._active(run_id)
        if run_name:
            self.transport.describe_run(run_id, name=check_name(run_name, "run name"))
        if status in STATUS_IN:
            ended = time.time() if end_time is None else end_time / 1000
            error = "MLflow status KILLED" if status == "KILLED" else None
            self.transport.finish_run(run_id, STATUS_IN[status], ended, error)
        elif status == "RUNNING" and record.status != "running":
            self.transport.reopen_run(run_id, record.host or "", record.pid or 0, time.time())
        elif status not in (None, "", "RUNNING", "SCHEDULED"):
            raise InvalidInputError(f"unknown run status {status!r}: use RUNNING, FINISHED, "
                                    "FAILED or KILLED")
        return self.run(run_id)["info"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self._run_json(self._record(run_id))

    def delete_run(self, run_id: str, actor: str, deleted: bool = True) -> None:
        """MLflow's ``delete_run`` is soft (the run stays, ``restore_run`` brings it back):
        tympan's archive, audited as one; ``deleted=False`` (restore) unarchives. Deleting for
        good stays ``tympan delete``."""
        archive_runs(self.store, [self._record(run_id).id], actor, archived=deleted)

    def search_runs(self, experiment_ids: Iterable[str], max_results: int, offset: int,
                    filter_string: str = "", archived: str = "hide"
                    ) -> tuple[list[dict], int | None]:
        if filter_string.strip():
            raise InvalidInputError(
                "tympan's MLflow endpoint does not evaluate search filters; search without "
                "one (or use tympan runs --where / GET /api/runs?where=)")
        found: list[RunRecord] = []
        existing = set(self._visible_projects().values())
        for experiment_id in dict.fromkeys(experiment_ids):
            project = self.project_of_experiment(experiment_id)
            if project not in existing:  # Default before its first run
                continue
            found += find_runs(self.store, RunQuery(RunFilter(project=project,
                                                              archived=archived),
                                                    limit=offset + max_results))
        found.sort(key=lambda r: (-r.started_at, r.id))
        page = found[offset:offset + max_results]
        more = offset + max_results if len(found) > offset + max_results else None
        return [self._run_json(r) for r in page], more

    def _record(self, run_id: str) -> RunRecord:
        message = f"no run {run_id!r}"
        try:
            record = run_by_id(self.store, run_id)
        except RunNotFoundError:
            raise RunNotFoundError(message) from None
        self._check_project(record.project, message)
        return record

    def _active(self, run_id: str) -> RunRecord:
        """The run, refused once deleted (archived), as MLflow refuses writes to a deleted
        run: nothing logged to it would show where its client looks."""
        record = self._record(run_id)
        if record.archived_at is not None:
            raise InvalidInputError(
                f"the run {run_id} must be in the 'active' state; it is deleted (archived in "
                "tympan): restore it first (MlflowClient.restore_run, or `tympan runs "
                "unarchive`)")
        return record

    def _parent(self, parent: str | None) -> str | None:
        return None if not parent else self._record(parent).id

    def _run_json(self, record: RunRecord) -> dict[str, Any]:
        env = record.environment() or {}
        system = dict((env.get("mlflow") or {}).get("tags") or {})
        tags = [{"key": k, "value": v} for k, v in (label_tag(t) for t in record.tags)]
        system[RUN_NAME] = record.name
        if record.note:
            system[NOTE] = record.note
        if record.parent_id:
            system[PARENT] = record.parent_id
        tags += [{"key": k, "value": v} for k, v in sorted(system.items())]
        seen = _ms(record.ended_at or record.heartbeat_at or record.started_at)
        metrics = [{"key": k, "value": number(s.last), "timestamp": seen,
                    "step": s.last_step or 0}
                   for k, s in sorted(record.summary.items()) if s.last is not None]
        info = {"run_id": record.id, "run_uuid": record.id, "run_name": record.name,
                "experiment_id": self._experiment_id(record.project),
                "user_id": system.get("mlflow.user", ""),
                "status": STATUS_OUT.get(record.status, "RUNNING"),
                "start_time": _ms(record.started_at), "end_time": _ms(record.ended_at),
                "artifact_uri": f"mlflow-artifacts:/{record.id}",
                "lifecycle_stage": "active" if record.archived_at is None else "deleted"}
        params = [{"key": k, "value": v} for k, v in params_of(record.config).items()]
        return {"info": info, "data": {"metrics": metrics, "params": params, "tags": tags},
                "inputs": {}}

    def _experiment_id(self, project: str) -> str:
        with self.store.read() as conn:
            return str(projects.find(conn, project))

    # -- logging ----------------------------------------------------------------------------
    def log_batch(self, run_id: str, metrics: list[MetricPoint], params: Mapping[str, str],
                  tags: Mapping[str, str]) -> None:
        record = self._active(run_id)
        if params:
            self._log_params(record, params)
        if tags:
            self._set_tags(record, dict(tags))
        if metrics:
            self._log_metrics(record, metrics)

    def _log_params(self, record: RunRecord, params: Mapping[str, str]) -> None:
        config = dict(record.config)
        for key, value in params.items():
            check_text(key, "param key")
            check_text(value, f"param {key!r}")
            if key in config and config[key] != value:
                raise InvalidInputError(
                    f"param {key!r} of run {record.id} is {config[key]!r}; MLflow params "
                    f"cannot change (got {value!r})")
            config[key] = value
        self.transport.set_config(record.id, config)

    def _set_tags(self, record: RunRecord, tags: dict[str, str]) -> None:
        user, system = _split(tags)
        labels = {label_tag(t)[0]: t for t in record.tags}
        labels.update({k: tag_label(k, v) for k, v in user.items()})
        name = system.pop(RUN_NAME, None)
        note = system.pop(NOTE, None)
        parent = self._parent(system.pop(PARENT, None))
        self.transport.describe_run(record.id, name=name and check_name(name, "run name"),
                                    tags=list(labels.values()), note=note, parent_id=parent)
        if system:
            old = dict(((record.environment() or {}).get("mlflow") or {}).get("tags") or {})
            self._set_environment(record.id, {**old, **system})

    def delete_tag(self, run_id: str, key: str) -> None:
        record = self._active(run_id)
        labels = [t for t in record.tags if label_tag(t)[0] != key]
        system = dict(((record.environment() or {}).get("mlflow") or {}).get("tags") or {})
        if len(labels) == len(record.tags) and key not in system:
            raise NotFoundError(f"run {run_id} has no tag {key!r}")
        self.transport.describe_run(run_id, tags=labels)
        if key in system:
            del system[key]
            self._set_environment(run_id, system)

    def _set_environment(self, run_id: str, system: Mapping[str, str]) -> None:
        if not system:
            return
        env = environment_of(system)
        digest = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()
        self.transport.set_environment(run_id, digest, env, time.time())

    def _log_metrics(self, record: RunRecord, points: list[MetricPoint]) -> None:
        from tympan.integrations.importers.writing import metric_key

        by_key: dict[str, list[MetricPoint]] = defaultdict(list)
        for point in points:
            if not 0 <= point.step < 2**62:
                raise InvalidInputError(f"metric {point.key!r}: step {point.step} is out of "
                                        "range (tympan steps are >= 0)")
            by_key[metric_key(point.key)].append(point)
        with _LOCKS[hash(record.id) % len(_LOCKS)]:
            state = self.transport.run_state(record.id)
            chunks, summaries = [], {}
            for key, series in by_key.items():
                steps = np.array([p.step for p in series], dtype=np.int64)
                values = np.array([p.value for p in series], dtype=np.float64)
                times = np.array([p.timestamp / 1000 for p in series], dtype=np.float64)
                chunks.append(Chunk(record.id, key, state.next_seq.get(key, 0), steps, values,
                                    times))
                summaries[key] = combine(state.summary.get(key), summarize(steps, values))
            live = [record.id] if state.status == "running" else []
            self.transport.write_metrics(MetricBatch([RunMetrics(record.id, chunks, summaries)],
                                                     live, time.time()))

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        from tympan.integrations.importers.writing import metric_key

        record = self._record(run_id)
        if metric_key(key) not in record.summary:
            return []
        series = record.history(metric_key(key))
        return [{"key": key, "value": number(float(v)), "timestamp": _ms(float(t)),
                 "step": int(s)} for s, v, t in zip(series.steps, series.values, series.times,
                                                     strict=True)]

    # -- artifacts --------------------------------------------------------------------------
    def put_artifact(self, run_id: str, path: str, blob: Blob, media_type: str) -> None:
        from tympan.track.run import artifact_path

        self._record(run_id)
        self.transport.record_artifact(run_id, artifact_path(path), blob, media_type,
                                       time.time())

    def artifact(self, run_id: str, path: str) -> tuple[bytes, str]:
        self._record(run_id)
        with self.store.read() as conn:
            row = artifacts.get(conn, run_id, path)
        if row is None:
            raise NotFoundError(f"run {run_id!r} has no artifact {path!r}")
        return self.store.blobs.read(row.sha256), row.media_type

    def list_artifacts(self, run_id: str, folder: str) -> list[dict[str, Any]]:
        """The files and folders directly under ``folder`` (MLflow lists one level)."""
        self._record(run_id)
        with self.store.read() as conn:
            rows = artifacts.for_run(conn, run_id)
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for row in rows:
            if not row.path.startswith(prefix):
                continue
            first, _, rest = row.path[len(prefix):].partition("/")
            entries[first] = ({"path": first, "is_dir": True} if rest
                              else {"path": first, "is_dir": False, "file_size": row.size})
        return [entries[k] for k in sorted(entries)]


class ExistsError(InvalidInputError):
    """Something MLflow would call RESOURCE_ALREADY_EXISTS."""


def _split(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    user = {k: v for k, v in tags.items() if not k.startswith(SYSTEM)}
    system = {k: v for k, v in tags.items() if k.startswith(SYSTEM)}
    return user, system
