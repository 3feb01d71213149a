"""Stored studies read back: the study, its trials and their runs, as analyses see them."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tympan import settings
from tympan.errors import StudyNotFoundError
from tympan.records.query import RunFilter, RunQuery
from tympan.records.record import RunRecord
from tympan.store import Store, projects, runs, studies
from tympan.study.spec import Metric, StudySpec
from tympan.track import liveness

if TYPE_CHECKING:
    from tympan.study.source import LocalStudies, StudySource


@dataclass(frozen=True)
class TrialRow:
    id: int
    key: str
    arm: str
    levels: dict[str, str]
    seed: int
    overrides: list[str]
    status: str
    run_id: str | None
    attempts: int
    error: str | None
    log_sha256: str | None
    started_at: float | None
    ended_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> TrialRow:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


@dataclass
class StoredStudy:
    id: str
    name: str
    project: str
    spec: StudySpec
    spec_hash: str
    source: str  # the study file's text when it was last run
    created_at: float
    updated_at: float
    meta: dict[str, Any]  # path, config_sha256, trial_keys, data_path (see runner.register)
    trials: list[TrialRow]
    runs: dict[str, RunRecord] = field(repr=False)
    studies: StudySource = field(repr=False)  # where its records were read from
    runner: tuple[str, int] | None = None  # (host, pid) of the runner holding it, if any

    @property
    def config_sha256(self) -> str | None:
        return self.meta.get("config_sha256")

    @property
    def data_path(self) -> str | None:
        return self.meta.get("data_path")

    @property
    def path(self) -> str | None:
        return self.meta.get("path")

    def current_trials(self) -> list[TrialRow]:
        """The trials of the study as last run (a changed, --force'd study keeps the old
        ones in the store, but they are no longer part of it)."""
        keys = set(self.meta.get("trial_keys", []))
        return [t for t in self.trials if t.key in keys]

    def utterances(self, run_id: str | None,
                   metric: Metric) -> tuple[list[str], list[float], list[float]] | None:
        """(utterance ids, errors, counts) a run logged for ``metric``, or None."""
        import json

        from tympan.errors import InvalidInputError

        run = self.runs.get(run_id or "")
        if run is None:
            return None
        path = f"{metric.split}/utterances.json" if metric.split else "utterances.json"
        try:
            data = json.loads(run.read_artifact(path))
            scores = data[metric.name]
            return list(data["ids"]), list(scores["errors"]), list(scores["counts"])
        except (InvalidInputError, KeyError, TypeError, ValueError):
            return None

    def git_commit(self) -> str | None:
        for run in self.runs.values():
            git = (run.environment() or {}).get("git") or {}
            if git.get("commit"):
                return git["commit"]
        return None

    def read_log(self, trial: TrialRow) -> str:
        """The trial's captured output (stdout and stderr), or '' if none was kept."""
        if trial.log_sha256 is None:
            return ""
        return self.studies.read_log(self.id, trial.log_sha256).decode("utf-8", "replace")


def first_line(text: str | None) -> str:
    """A failed trial's error in one line: its first line, followed by the last line of the
    output when that first line only says how the command ended (``exit status 1: ValueError:
    ...``); a traceback's last line (the exception) when the error is a traceback."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1]
    if len(lines) > 1 and lines[0].startswith(("exit status", "timed out after")):
        return f"{lines[0]}: {lines[-1]}"
    return lines[0]


def runner_gone(row: Any) -> bool:
    """Whether the runner holding a study (its ``studies`` row) has stopped: on this host its
    process is gone; anywhere, it sent no heartbeat for TYMPAN_CRASH_AFTER seconds."""
    if row.runner_pid is None:
        return False
    if time.time() - (row.runner_beat or 0.0) > settings.get("TYMPAN_CRASH_AFTER"):
        return True
    return row.runner_host == socket.gethostname() and not liveness.pid_alive(row.runner_pid)


def settle_trial(conn: Any, trial: Any, why: str) -> str:
    """A trial whose runner is gone: finished if its run finished (it is taken, never run
    again), else crashed (run again by the next ``tympan ablate``). Returns the status."""
    run = runs.get(conn, trial.run_id) if trial.run_id else None
    status = "finished" if run is not None and run.status == "finished" else "crashed"
    studies.change_trial(conn, trial.id, status=status,
                         error=None if status == "finished" else trial.error or why)
    return status


def settle(store: Store, row: Any) -> Any:
    """The study's row, after freeing it from a runner that is gone and settling the trials
    that runner left running (see :func:`settle_trial`); the row itself when all is well."""
    holder = (row.runner_host, row.runner_pid) if row.runner_pid is not None else None
    if holder is not None and not runner_gone(row):
        return row
    with store.read() as conn:
        orphans = [t for t in studies.trials_of(conn, row.id) if t.status == "running"]
    if holder is None and not orphans:
        return row
    why = (f"the runner (pid {holder[1]} on {holder[0]}) stopped while this trial was running"
           if holder else "its runner stopped while this trial was running")
    with store.write() as conn:
        if holder is not None:
            studies.release(conn, row.id, *holder)
        for trial in orphans:
            settle_trial(conn, trial, why)
        return studies.get(conn, row.id)


def find_study(store: Store, text: str, project: str | None = None,
               visible: str | None = None) -> Any:
    """The studies row named by an id, a unique id prefix, or a name (within ``project``).
    ``visible``: the study must belong to that project, else it is not found (and the
    message names no other project's studies)."""
    if visible is None:
        return _find_study(store, text, project)
    try:
        row = _find_study(store, text, project if project is not None else visible)
    except StudyNotFoundError:
        raise StudyNotFoundError(f"no study {text!r}") from None
    with store.read() as conn:
        if projects.names(conn)[row.project_id] != visible:
            raise StudyNotFoundError(f"no study {text!r}")
    return row


def _find_study(store: Store, text: str, project: str | None) -> Any:
    with store.read() as conn:
        row = studies.get(conn, text)
        if row is not None:
            return row
        candidates = studies.named(conn, text)
        if project is not None:
            project_id = projects.find(conn, project)
            candidates = [c for c in candidates if c.project_id == project_id]
        if not candidates:
            candidates = studies.with_id_prefix(conn, text) if text.isalnum() else []
        names = projects.names(conn)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise StudyNotFoundError(f"no study {text!r} in {store.where} (run `tympan ablate "
                                 "STUDY.yaml` first, or give the study's id)")
    where = ", ".join(f"{c.id} in project {names[c.project_id]}" for c in candidates)
    raise StudyNotFoundError(f"{text!r} names several studies ({where}); give the id or "
                             "--project")


def load_stored_study(where: Store | StudySource, text: str,
                      project: str | None = None) -> StoredStudy:
    """The study with its trials and runs, from a store opened here or a
    :class:`~tympan.study.source.StudySource` (a team server); a runner that is gone is seen
    (see :func:`settle`)."""
    from tympan.study.source import studies_of

    return studies_of(where).load(text, project)


def load_from_store(source: LocalStudies, text: str, project: str | None = None,
                    visible: str | None = None) -> StoredStudy:
    """``load_stored_study`` over the store of ``source`` (``visible``: see find_study)."""
    from tympan.records.table import find_runs

    store = source.store
    row = settle(store, find_study(store, text, project, visible))
    with store.read() as conn:
        trial_rows = [TrialRow.from_row(r) for r in studies.trials_of(conn, row.id)]
        project_name = projects.names(conn)[row.project_id]
        holder = (row.runner_host, row.runner_pid) if row.runner_pid is not None else None
    records = {r.id: r for r in find_runs(store, RunQuery(RunFilter(study=row.id)))}
    stored = stored_study(row, project_name, trial_rows, records, source, holder)
    # Listening tests give each judged trial run one more metric (study/listening.py).
    from tympan.study.listening import listening_metrics

    with_listening(stored, listening_metrics(store, stored))
    return stored


def stored_study(row: Any, project: str, trials: list[TrialRow], records: dict[str, RunRecord],
                 source: StudySource, runner: tuple[str, int] | None) -> StoredStudy:
    """A StoredStudy from a ``studies`` row (or its JSON on the server API)."""
    stored_spec = dict(row.spec)
    spec = StudySpec.model_validate(stored_spec.pop("spec"))
    return StoredStudy(id=row.id, name=row.name, project=project, spec=spec,
                       spec_hash=row.spec_hash, source=row.source, created_at=row.created_at,
                       updated_at=row.updated_at, meta=stored_spec, trials=trials,
                       runs=records, studies=source, runner=runner)


def with_listening(stored: StoredStudy, summaries: dict[str, Any]) -> None:
    """The ``listen/preference`` summaries put on the trial runs they belong to."""
    from tympan.study.listening import METRIC

    for run_id, summary in summaries.items():
        if run_id in stored.runs:
            stored.runs[run_id].summary[METRIC] = summary
