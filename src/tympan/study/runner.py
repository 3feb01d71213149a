"""Running a study: register it, plan its trials, run what is not done, keep every outcome.

Each trial runs the study's command as a child process with ``TYMPAN_STUDY`` (links its run
to the study) and ``TYMPAN_RUN_ID`` (names the run it will make), so any training script
that calls ``tympan.init()`` becomes a trial without code changes. Re-running the same study
resumes it: finished trials are kept; a trial that was running when a runner died is kept
if its run finished (the run id is recorded when the trial starts) and run again otherwise;
failed ones only with ``retry_failed``. A study file that changed since its trials
ran is refused unless ``force``.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tympan import settings
from tympan.errors import StudyBusyError, StudyChangedError, StudyError
from tympan.store import Store, projects, runs, studies
from tympan.study.executors import Executor, TrialJob, TrialResult, make_executor
from tympan.study.plan import arms, config_digest, entry_command, plan
from tympan.study.records import (
    StoredStudy,
    TrialRow,
    first_line,
    load_stored_study,
    runner_gone,
    settle_trial,
)
from tympan.study.spec import StudyFile
from tympan.track.naming import new_run_id
from tympan.track.stores import shared_store

_BEAT = 5.0  # seconds between the runner's heartbeats on the study
_ERROR_TAIL = 4000  # characters of a failed trial's output kept as its error


@dataclass(frozen=True)
class Progress:
    """What the runner reports after every change: counts and the trial that changed."""

    total: int
    done: int  # finished
    failed: int
    running: int
    skipped: int  # finished before this invocation
    to_run: int  # trials this invocation runs
    event: str  # "start", "finished", "failed" or "begin"
    trial: TrialRow | None


def run_study(study: StudyFile, *, store: str | os.PathLike[str] | None = None,
              executor: str = "local", workers: int | None = None, address: str | None = None,
              retry_failed: bool = False, force: bool = False,
              on_progress: Callable[[Progress], None] | None = None) -> StoredStudy:
    """Run every trial of ``study`` that is not done yet; returns the stored study."""
    where = _portable(store)
    handle = shared_store(where, create=True)
    study_id = register(handle, study, force=force)
    _claim(handle, study_id)
    try:
        pool = make_executor(executor, workers, address)
        try:
            _run(handle, study, study_id, where, pool, retry_failed, on_progress)
        finally:
            pool.shutdown()
    finally:
        with handle.write() as conn:
            studies.release(conn, study_id, socket.gethostname(), os.getpid())
    return load_stored_study(handle, study_id)


def register(store: Store, study: StudyFile, *, force: bool = False) -> str:
    """The study's id, creating its record, or checking (and with ``force`` accepting) a
    changed file; its trials are added as pending."""
    spec = study.spec
    trials = plan(study)
    digest = _digest(study)
    meta = {"spec": spec.model_dump(mode="json"), "path": str(study.path),
            "config_sha256": config_digest(study), "trial_keys": [t.key for t in trials],
            "data_path": str(study.resolve(spec.data)) if spec.data else None}
    source = study.path.read_text(encoding="utf-8")
    now = time.time()
    with store.write() as conn:
        project_id = projects.ensure(conn, spec.project_name, now)
        row = studies.find(conn, project_id, spec.name)
        if row is None:
            study_id = _new_study_id()
            studies.insert(conn, id=study_id, project_id=project_id, name=spec.name, spec=meta,
                           spec_hash=digest, source=source, created_at=now, updated_at=now)
        else:
            study_id = row.id
            if row.spec_hash != digest:
                if not force:
                    done = sum(t.status == "finished" for t in studies.trials_of(conn, row.id))
                    raise StudyChangedError(
                        f"{study.path.name} changed since study {spec.name} ({row.id}) ran "
                        f"{done} trial(s) under it; run with --force to accept the change "
                        "(trials whose command line is unchanged are kept), or give the "
                        "study a new name")
                studies.change(conn, study_id, spec=meta, spec_hash=digest, source=source,
                               updated_at=now)
        known = {t.key for t in studies.trials_of(conn, study_id)}
        studies.add_trials(conn, [
            {"study_id": study_id, "key": t.key, "arm": t.arm, "levels": t.levels,
             "seed": t.seed, "overrides": t.overrides, "status": "pending", "attempts": 0}
            for t in trials if t.key not in known])
    return study_id


def _run(store: Store, study: StudyFile, study_id: str, where: str, pool: Executor,
         retry_failed: bool, on_progress: Callable[[Progress], None] | None) -> None:
    stored = load_stored_study(store, study_id)
    trials = {t.id: _reconciled(store, t) for t in stored.current_trials()}
    todo = [t for t in trials.values() if t.status in ("pending", "crashed")
            or (retry_failed and t.status == "failed")]
    skipped = sum(t.status == "finished" for t in trials.values())
    command = entry_command(study)
    cwd = str(study.folder if study.spec.command else _entry_root(study))
    planned = {t.key: t for t in plan(study)}
    running: dict[int, TrialRow] = {}
    last_beat = 0.0

    def report(event: str, trial: TrialRow | None) -> None:
        if on_progress is not None:
            states = [t.status for t in trials.values()]
            on_progress(Progress(len(trials), states.count("finished"), states.count("failed"),
                                 len(running), skipped, len(todo), event, trial))

    report("begin", None)
    queue = list(todo)
    # As many trials as arms: if all of the first ones to end fail with one error, the cause
    # is the command or the environment, not a component, and the rest would fail alike.
    first = min(len(arms(study)), len(todo))
    ended: list[TrialRow] = []
    stopped = ""
    while queue or running:
        while queue and len(running) < pool.slots:
            trial = queue.pop(0)
            trial = _start(store, trial, [*command, *planned[trial.key].overrides], cwd, study,
                           study_id, where, pool)
            trials[trial.id] = running[trial.id] = trial
            report("start", trial)
        for result in pool.wait(timeout=1.0):
            trial = _finish(store, running.pop(result.trial_id), result)
            trials[trial.id] = trial
            report(trial.status, trial)
            ended.append(trial)
            error = _common_failure(ended) if len(ended) == first and queue else None
            if error:
                stopped = (f"study {study.spec.name} stopped: its first {first} trials all "
                           f"failed the same way: {error}; {len(queue)} "
                           f"{'trial was' if len(queue) == 1 else 'trials were'} not run. "
                           "Fix the cause, then run again with --retry-failed")
                queue.clear()  # the running ones end on their own
        if time.monotonic() - last_beat > _BEAT:
            with store.write() as conn:
                studies.change(conn, study_id, runner_beat=time.time())
            last_beat = time.monotonic()
    if stopped:
        raise StudyError(stopped)


def _common_failure(trials: list[TrialRow]) -> str | None:
    """The one error line every trial failed with, or None."""
    lines = {first_line(t.error) for t in trials}
    if all(t.status == "failed" for t in trials) and len(lines) == 1:
        return lines.pop()
    return None


def _start(store: Store, trial: TrialRow, argv: list[str], cwd: str, study: StudyFile,
           study_id: str, where: str, pool: Executor) -> TrialRow:
    run_id = new_run_id()
    resources = study.spec.resources
    threads = str(resources.threads)
    if argv[0] in (sys.executable, "python", "python3"):
        # The interpreter tympan runs in (where tympan is installed), or on Ray the node's own.
        argv[0] = "{python}"
    env = {"TYMPAN_STUDY": study_id, "TYMPAN_RUN_ID": run_id, "TYMPAN_STORE": where,
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "PYTHONUNBUFFERED": "1"}
    now = time.time()
    with store.write() as conn:  # the run id first: a runner killed from here on is resumable
        studies.change_trial(conn, trial.id, status="running", run_id=run_id,
                             attempts=trial.attempts + 1, error=None, started_at=now,
                             ended_at=None)
    pool.start(TrialJob(trial.id, argv, cwd, env, resources.timeout, resources.cpus,
                        resources.gpus))
    return _replace(trial, status="running", run_id=run_id, attempts=trial.attempts + 1,
                    started_at=now, error=None, ended_at=None)


def _finish(store: Store, trial: TrialRow, result: TrialResult) -> TrialRow:
    """The trial's outcome from its exit and its run's record; the output kept as a blob."""
    with store.read() as conn:
        run = runs.get(conn, trial.run_id) if trial.run_id else None
    output = result.output.decode("utf-8", "replace")
    log_sha = store.blobs.put_bytes(result.output)[0] if result.output else None
    status, error = "finished", None
    if result.error is not None:
        status, error = "failed", result.error
    elif result.timed_out:
        status, error = "failed", f"timed out after {result.seconds:.0f} s\n{output[-_ERROR_TAIL:]}"
    elif result.returncode != 0:
        status = "failed"
        error = (run.error if run is not None and run.error else
                 f"exit status {result.returncode}\n{output[-_ERROR_TAIL:]}")
    elif run is None:
        status, error = "failed", ("the command exited 0 without starting a tympan run: does "
                                   "it call tympan.init()?")
    elif run.status != "finished":
        status, error = "failed", run.error or f"its run ended {run.status}"
    with store.write() as conn:
        studies.change_trial(conn, trial.id, status=status, error=error, ended_at=time.time(),
                             log_sha256=log_sha, run_id=trial.run_id if run else None)
    return _replace(trial, status=status, error=error, log_sha256=log_sha,
                    run_id=trial.run_id if run else None)


def _reconciled(store: Store, trial: TrialRow) -> TrialRow:
    """A trial an earlier runner left running or crashed is finished if its run finished
    (taken, never run again), else crashed (run again)."""
    if trial.status not in ("running", "crashed") or trial.run_id is None:
        return trial
    with store.write() as conn:
        status = settle_trial(conn, trial, "the runner stopped while this trial was running")
    return _replace(trial, status=status, error=None if status == "finished" else trial.error)


def _claim(store: Store, study_id: str) -> None:
    host, pid, now = socket.gethostname(), os.getpid(), time.time()
    with store.write() as conn:
        row = studies.get(conn, study_id)
        free = None
        if row.runner_pid is not None and (
                runner_gone(row) or (row.runner_host, row.runner_pid) == (host, pid)):
            free = (row.runner_host, row.runner_pid)
        if studies.claim(conn, study_id, host, pid, now, free):
            return
    raise StudyBusyError(f"study {row.name} is being run by pid {row.runner_pid} on "
                         f"{row.runner_host}; wait for it to end (or stop it) and run again")


def _entry_root(study: StudyFile) -> str:
    from tympan.entry import resolve_entry

    return str(resolve_entry(study.spec.recipe or "", cwd=study.folder).root)


def _digest(study: StudyFile) -> str:
    import hashlib

    return hashlib.sha256(f"{study.spec.digest()}:{config_digest(study)}".encode()).hexdigest()


def _portable(store: str | os.PathLike[str] | None) -> str:
    """The store as trials in other processes (other folders) must name it."""
    from tympan.store import parse_location

    text = os.fspath(store) if store is not None else settings.get("TYMPAN_STORE")
    location = parse_location(text)
    if location.sqlite_path is None:
        return text
    if text.startswith("sqlite:"):
        return f"sqlite:///{location.sqlite_path.resolve()}"
    return str(os.path.abspath(text))


def _new_study_id() -> str:
    return "s" + "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(9))


def _replace(trial: TrialRow, **fields: Any) -> TrialRow:
    from dataclasses import replace

    return replace(trial, **fields)
