"""Running a study: register it, plan its trials, run what is not done, keep every outcome.

Each trial runs the study's command as a child process with ``TYMPAN_STUDY`` (links its run
to the study) and ``TYMPAN_RUN_ID`` (names the run it will make), so any training script
that calls ``tympan.init()`` becomes a trial without code changes. Re-running the same study
resumes it: finished trials are kept; a trial that was running when a runner died is kept
if its run finished (the run id is recorded when the trial starts) and run again otherwise;
failed ones only with ``retry_failed``. A study file that changed since its trials
ran is refused unless ``force``.

The study's records go through a :class:`~tympan.study.source.StudySource`: the store, or
with ``TYMPAN_STORE=http://host:port`` a team server, whose address and token the trials
get too (a Ray cluster's workers need nothing else).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tympan import settings
from tympan.errors import StudyError
from tympan.store import Store
from tympan.store.location import is_remote
from tympan.study.executors import Executor, TrialJob, TrialResult, make_executor
from tympan.study.plan import arms, config_digest, entry_command, plan
from tympan.study.records import StoredStudy, TrialRow, first_line
from tympan.study.source import Registration, StudySource, shared_studies, studies_of
from tympan.study.spec import DEFAULT_TRIAL_TIMEOUT, StudyFile
from tympan.study.spooled import send_spooled, spooled_error
from tympan.track.naming import new_run_id

_BEAT = 5.0  # seconds between the runner's heartbeats on the study
FAILED = ("failed", "timed_out")  # trial statuses that --retry-failed runs again
_ERROR_TAIL = 4000  # characters of a failed trial's output kept as its error


@dataclass(frozen=True)
class Progress:
    """What the runner reports after every change: counts and the trial that changed."""

    total: int
    done: int  # finished
    failed: int  # failed or timed out
    running: int
    skipped: int  # finished before this invocation
    to_run: int  # trials this invocation runs
    event: str  # "begin", "start", or the status a trial ended with
    trial: TrialRow | None


def run_study(study: StudyFile, *, store: str | os.PathLike[str] | None = None,
              executor: str = "local", workers: int | None = None, address: str | None = None,
              retry_failed: bool = False, force: bool = False,
              on_progress: Callable[[Progress], None] | None = None) -> StoredStudy:
    """Run every trial of ``study`` that is not done yet; returns the stored study."""
    where = _portable(store)
    records = shared_studies(where, create=True)
    study_id = register(records, study, force=force)
    host, pid = socket.gethostname(), os.getpid()
    records.claim(study_id, host, pid)
    try:
        pool = make_executor(executor, workers, address)
        try:
            _run(records, study, study_id, where, pool, retry_failed, on_progress)
        finally:
            pool.shutdown()
    finally:
        records.release(study_id, host, pid)
    return records.load(study_id)


def register(where: Store | StudySource, study: StudyFile, *, force: bool = False) -> str:
    """The study's id, creating its record, or checking (and with ``force`` accepting) a
    changed file; its trials are added as pending."""
    spec = study.spec
    trials = plan(study)
    meta = {"spec": spec.model_dump(mode="json"), "path": str(study.path),
            "config_sha256": config_digest(study), "trial_keys": [t.key for t in trials],
            "data_path": str(study.resolve(spec.data)) if spec.data else None}
    return studies_of(where).register(Registration(
        project=spec.project_name, name=spec.name, file_name=study.path.name, meta=meta,
        digest=_digest(study), source=study.path.read_text(encoding="utf-8"),
        trials=[{"key": t.key, "arm": t.arm, "levels": t.levels, "seed": t.seed,
                 "overrides": t.overrides} for t in trials]), force)


def _run(records: StudySource, study: StudyFile, study_id: str, where: str, pool: Executor,
         retry_failed: bool, on_progress: Callable[[Progress], None] | None) -> None:
    stored = records.load(study_id)
    trials = {t.id: _reconciled(records, study_id, t, where) for t in stored.current_trials()}
    todo = [t for t in trials.values() if t.status in ("pending", "crashed")
            or (retry_failed and t.status in FAILED)]
    skipped = sum(t.status == "finished" for t in trials.values())
    command = entry_command(study)
    cwd = str(study.folder if study.spec.command else _entry_root(study))
    planned = {t.key: t for t in plan(study)}
    running: dict[int, TrialRow] = {}
    last_beat = 0.0

    def report(event: str, trial: TrialRow | None) -> None:
        if on_progress is not None:
            states = [t.status for t in trials.values()]
            on_progress(Progress(len(trials), states.count("finished"),
                                 sum(states.count(s) for s in FAILED),
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
            trial = _start(records, trial, [*command, *planned[trial.key].overrides], cwd, study,
                           study_id, where, pool)
            trials[trial.id] = running[trial.id] = trial
            report("start", trial)
        for result in pool.wait(timeout=1.0):
            trial = _finish(records, study_id, running.pop(result.trial_id), result,
                            study.spec.resources.timeout_seconds, where)
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
            records.beat(study_id)
            last_beat = time.monotonic()
    if stopped:
        raise StudyError(stopped)


def _common_failure(trials: list[TrialRow]) -> str | None:
    """The one error line every trial failed with, or None."""
    lines = {first_line(t.error) for t in trials}
    if all(t.status in FAILED for t in trials) and len(lines) == 1:
        return lines.pop()
    return None


def _start(records: StudySource, trial: TrialRow, argv: list[str], cwd: str, study: StudyFile,
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
    token = settings.get("TYMPAN_TOKEN")
    if is_remote(where) and token:  # the trials log to the server too (on Ray: other hosts)
        env["TYMPAN_TOKEN"] = token
    now = time.time()
    # The run id first: a runner killed from here on is resumable.
    records.change_trial(study_id, trial.id, status="running", run_id=run_id,
                         attempts=trial.attempts + 1, error=None, started_at=now, ended_at=None)
    pool.start(TrialJob(trial.id, argv, cwd, env, resources.timeout_seconds, resources.cpus,
                        resources.gpus))
    return _replace(trial, status="running", run_id=run_id, attempts=trial.attempts + 1,
                    started_at=now, error=None, ended_at=None)


def _limit(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    return f"{seconds:g} s" + (" = the default 3 h" if seconds == DEFAULT_TRIAL_TIMEOUT else "")


def _finish(records: StudySource, study_id: str, trial: TrialRow, result: TrialResult,
            study_timeout: float | None = None, where: str = "") -> TrialRow:
    """The trial's outcome from its exit and its run's record (sent from the disk spool
    first, if the trial left it there); the output kept as its log."""
    state = records.run_state(trial.run_id) if trial.run_id else None
    spooled: list = []
    if trial.run_id and (state is None or state[0] == "running"):
        spooled = send_spooled(where, trial.run_id)
        state = records.run_state(trial.run_id)
    output = result.output.decode("utf-8", "replace")
    log_sha = records.put_log(study_id, trial.id, result.output) if result.output else None
    status, error = "finished", None
    if result.error is not None:
        status, error = "failed", result.error
    elif result.timed_out:
        status = "timed_out"
        # The limit, not the measured time: trials stopped alike must read alike for the
        # early stop (a loaded machine stops one at 1.4 s, another at 2.1 s).
        error = (f"timed out after {_limit(study_timeout)} (resources.timeout)\n"
                 f"{output[-_ERROR_TAIL:]}")
    elif result.returncode != 0:
        status = "failed"
        error = (state[1] if state is not None and state[1] else
                 f"exit status {result.returncode}\n{output[-_ERROR_TAIL:]}")
    elif spooled:  # crashed: the next runner settles it by its run, once synced
        status, error = "crashed", spooled_error(spooled)
    elif state is None:
        status, error = "failed", ("the command exited 0 without starting a tympan run: does "
                                   "it call tympan.init()?")
    elif state[0] != "finished":
        status, error = "failed", state[1] or f"its run ended {state[0]}"
    run_id = trial.run_id if state or spooled else None
    records.change_trial(study_id, trial.id, status=status, error=error, ended_at=time.time(),
                         run_id=run_id)
    return _replace(trial, status=status, error=error, log_sha256=log_sha, run_id=run_id)


def _reconciled(records: StudySource, study_id: str, trial: TrialRow, where: str = ""
                ) -> TrialRow:
    """A trial an earlier runner left running or crashed is finished if its run finished
    (taken, never run again), else crashed (run again). A run left in the disk spool is
    sent first."""
    if trial.status not in ("running", "crashed") or trial.run_id is None:
        return trial
    send_spooled(where, trial.run_id)
    status = records.settle_trial(study_id, trial,
                                  "the runner stopped while this trial was running")
    return _replace(trial, status=status, error=None if status == "finished" else trial.error)


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
    if is_remote(text):
        return text
    location = parse_location(text)
    if location.sqlite_path is None:
        return text
    if text.startswith("sqlite:"):
        return f"sqlite:///{location.sqlite_path.resolve()}"
    return str(os.path.abspath(text))


def _replace(trial: TrialRow, **fields: Any) -> TrialRow:
    from dataclasses import replace

    return replace(trial, **fields)
