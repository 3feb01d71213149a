"""Where study records live: a store this process opens (:class:`LocalStudies`), or a team
server's JSON API (:class:`~tympan.study.remote.HttpStudies`, with a token).

A study's records are the study (its file, as registered), its trials with their status,
run and captured output, the runner holding it, and the findings its analysis recorded.
The runner (``tympan ablate``), ``tympan study``, ``tympan report``, ``tympan quantify`` and
``tympan findings`` reach them through one interface, :class:`StudySource`, so with
``TYMPAN_STORE=http://host:port`` a study runs against the server and a Ray cluster's
workers need only its address and a token. The server answers with :class:`LocalStudies`
over its own store (``server/routes/study_records.py``), as the ingest API answers with the
local transport: one implementation of every rule, whichever way the records travel.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tympan.errors import StudyBusyError, StudyChangedError

if TYPE_CHECKING:
    from tympan.records.source import RunSource
    from tympan.store import Store
    from tympan.study.analysis import StudyAnalysis
    from tympan.study.records import StoredStudy, TrialRow

__all__ = ["LocalStudies", "Registration", "StudySource", "shared_studies", "studies_of"]

# What a runner may change on a trial (the rest is the plan's, fixed at registration).
TRIAL_CHANGES = ("status", "run_id", "attempts", "error", "started_at", "ended_at")


@dataclass(frozen=True)
class Registration:
    """A study file as the runner registers it: everything the store keeps of it."""

    project: str
    name: str
    file_name: str  # for the message when the file changed
    meta: dict[str, Any]  # spec, path, config_sha256, trial_keys, data_path
    digest: str  # of the spec and the config it runs with
    source: str  # the study file's text
    trials: list[dict[str, Any]] = field(default_factory=list)  # key, arm, levels, seed, overrides


class StudySource(Protocol):
    """The reads and writes of study records, wherever they are stored."""

    where: str  # for messages: a path, a redacted database URL or the server URL
    runs: RunSource  # the trials' runs

    def load(self, text: str, project: str | None = None) -> StoredStudy:
        """The study named by an id, unique id prefix or name, with its trials and runs (a
        runner that is gone is seen and its trials settled)."""
        ...

    def finding_rows(self, component: str | None = None, metric: str | None = None,
                     project: str | None = None) -> list[Any]:
        """The findings rows (``tympan.store.findings.query``), oldest study first."""
        ...

    def record_findings(self, analysis: StudyAnalysis) -> int:
        """Replace the study's findings with its analysis's comparisons; returns how many."""
        ...

    def read_log(self, study_id: str, sha256: str) -> bytes: ...

    def register(self, registration: Registration, force: bool = False) -> str:
        """The study's id, creating its record, or checking (with ``force`` accepting) a
        changed file; trials not yet known are added as pending."""
        ...

    def claim(self, study_id: str, host: str, pid: int) -> None:
        """Become the study's runner, or raise StudyBusyError naming the one that is."""
        ...

    def release(self, study_id: str, host: str, pid: int) -> None: ...

    def beat(self, study_id: str) -> None:
        """The runner is alive (a heartbeat on the study)."""
        ...

    def change_trial(self, study_id: str, trial_id: int, **changes: Any) -> None:
        """Set some of ``TRIAL_CHANGES`` on one of the study's trials."""
        ...

    def settle_trial(self, study_id: str, trial: TrialRow, why: str) -> str:
        """A trial whose runner is gone becomes finished (its run finished) or crashed."""
        ...

    def put_log(self, study_id: str, trial_id: int, output: bytes) -> str:
        """Keep a trial's captured output as its log; returns the sha256."""
        ...

    def run_state(self, run_id: str) -> tuple[str, str | None] | None:
        """(status, error) of the run a trial made, or None if it made none."""
        ...

    def close(self) -> None: ...


class LocalStudies:
    """Study records read and written with SQL in a store this process opened."""

    def __init__(self, store: Store) -> None:
        from tympan.records.source import LocalSource

        self.store = store
        self.where = store.where
        self.runs = LocalSource(store)

    def load(self, text: str, project: str | None = None) -> StoredStudy:
        from tympan.study.records import load_from_store

        return load_from_store(self, text, project)

    def finding_rows(self, component: str | None = None, metric: str | None = None,
                     project: str | None = None) -> list[Any]:
        from tympan.store import findings

        with self.store.read() as conn:
            return findings.query(conn, component=component, metric=metric, project=project)

    def record_findings(self, analysis: StudyAnalysis) -> int:
        from tympan.store import findings
        from tympan.study.findings import finding_rows

        rows = finding_rows(analysis)
        with self.store.write() as conn:
            findings.replace_for_study(conn, analysis.study_id, rows)
        return len(rows)

    def read_log(self, study_id: str, sha256: str) -> bytes:
        return self.store.blobs.read(sha256)

    def register(self, registration: Registration, force: bool = False) -> str:
        from tympan.store import projects, studies

        r, now = registration, time.time()
        with self.store.write() as conn:
            project_id = projects.ensure(conn, r.project, now)
            row = studies.find(conn, project_id, r.name)
            if row is None:
                study_id = new_study_id()
                studies.insert(conn, id=study_id, project_id=project_id, name=r.name,
                               spec=r.meta, spec_hash=r.digest, source=r.source,
                               created_at=now, updated_at=now)
            else:
                study_id = row.id
                if row.spec_hash != r.digest:
                    if not force:
                        done = sum(t.status == "finished"
                                   for t in studies.trials_of(conn, row.id))
                        raise StudyChangedError(
                            f"{r.file_name} changed since study {r.name} ({row.id}) ran "
                            f"{done} trial(s) under it; run with --force to accept the change "
                            "(trials whose command line is unchanged are kept), or give the "
                            "study a new name")
                    studies.change(conn, study_id, spec=r.meta, spec_hash=r.digest,
                                   source=r.source, updated_at=now)
            existing = {t.key: t for t in studies.trials_of(conn, study_id)}
            for t in r.trials:  # a kept trial takes the file's names (a factor or level renamed)
                old = existing.get(t["key"])
                if old is not None and (old.arm != t["arm"] or old.levels != t["levels"]):
                    studies.change_trial(conn, old.id, arm=t["arm"], levels=t["levels"])
            studies.add_trials(conn, [
                {"study_id": study_id, "key": t["key"], "arm": t["arm"], "levels": t["levels"],
                 "seed": t["seed"], "overrides": t["overrides"], "status": "pending",
                 "attempts": 0}
                for t in r.trials if t["key"] not in existing])
        return study_id

    def claim(self, study_id: str, host: str, pid: int) -> None:
        from tympan.store import studies
        from tympan.study.records import runner_gone

        with self.store.write() as conn:
            row = studies.get(conn, study_id)
            free = None
            if row.runner_pid is not None and (
                    runner_gone(row) or (row.runner_host, row.runner_pid) == (host, pid)):
                free = (row.runner_host, row.runner_pid)
            if studies.claim(conn, study_id, host, pid, time.time(), free):
                return
        raise StudyBusyError(f"study {row.name} is being run by pid {row.runner_pid} on "
                             f"{row.runner_host}; wait for it to end (or stop it) and run "
                             "again")

    def release(self, study_id: str, host: str, pid: int) -> None:
        from tympan.store import studies

        with self.store.write() as conn:
            studies.release(conn, study_id, host, pid)

    def beat(self, study_id: str) -> None:
        from tympan.store import studies

        with self.store.write() as conn:
            studies.change(conn, study_id, runner_beat=time.time())

    def change_trial(self, study_id: str, trial_id: int, **changes: Any) -> None:
        from tympan.store import studies

        unknown = set(changes) - set(TRIAL_CHANGES)
        if unknown:
            raise ValueError(f"a runner cannot change a trial's {', '.join(sorted(unknown))}")
        with self.store.write() as conn:
            studies.change_trial(conn, trial_id, **changes)

    def settle_trial(self, study_id: str, trial: TrialRow, why: str) -> str:
        from tympan.study.records import settle_trial

        with self.store.write() as conn:
            return settle_trial(conn, trial, why)

    def put_log(self, study_id: str, trial_id: int, output: bytes) -> str:
        from tympan.store import studies

        sha256 = self.store.blobs.put_bytes(output)[0]
        with self.store.write() as conn:
            studies.change_trial(conn, trial_id, log_sha256=sha256)
        return sha256

    def run_state(self, run_id: str) -> tuple[str, str | None] | None:
        from tympan.store import runs

        with self.store.read() as conn:
            run = runs.get(conn, run_id)
        return None if run is None else (run.status, run.error)

    def close(self) -> None:
        self.store.close()


def new_study_id() -> str:
    import secrets

    return "s" + "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz")
                         for _ in range(9))


def studies_of(where: Store | StudySource) -> StudySource:
    """The study records of a store opened here, or ``where`` itself if it is a source."""
    from tympan.store import Store

    return LocalStudies(where) if isinstance(where, Store) else where


def shared_studies(where: str | os.PathLike[str] | None = None, *,
                   create: bool = False) -> StudySource:
    """The study records at ``where`` (default TYMPAN_STORE), shared by the whole process:
    the store of ``tympan.track.stores``, or one client per server and token, closed at
    exit (the runner and the analyses that follow it use the same one)."""
    from tympan import settings
    from tympan.store.location import is_remote

    location = os.fspath(where) if where is not None else settings.get("TYMPAN_STORE")
    if not is_remote(location):
        from tympan.track.stores import shared_store

        return LocalStudies(shared_store(location, create=create))
    import atexit

    from tympan.study.remote import HttpStudies

    key = (location.strip().rstrip("/"), settings.get("TYMPAN_TOKEN"))
    with _lock:
        studies = _remote.get(key)
        if studies is None:
            studies = _remote[key] = HttpStudies(*key)
            atexit.register(studies.close)
        return studies


def open_studies(where: str | os.PathLike[str] | None = None) -> StudySource:
    """The study records at ``where`` for one command: a store opened here or a server
    client; the caller closes it."""
    from tympan import settings
    from tympan.store.location import is_remote

    location = os.fspath(where) if where is not None else settings.get("TYMPAN_STORE")
    if is_remote(location):
        from tympan.study.remote import HttpStudies

        return HttpStudies(location, settings.get("TYMPAN_TOKEN"))
    from tympan.store import open_store

    return LocalStudies(open_store(location))


_remote: dict[tuple[str, str | None], StudySource] = {}
_lock = threading.Lock()
