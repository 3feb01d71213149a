"""Starting and resuming runs: the slow, once-per-run part of tracking."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from typing import Any

from tympan import settings
from tympan.errors import InvalidInputError, RunStateError
from tympan.store import Store, environments, metrics, projects, runs, summaries
from tympan.track import active, liveness
from tympan.track.lookup import resolve_run_id
from tympan.track.naming import new_run_id, new_run_name
from tympan.track.run import Run
from tympan.track.stores import shared_store
from tympan.track.validate import check_tags, to_config
from tympan.track.writer import Command, Sink, get_writer, on_exit

_hooks_installed = False


def start_run(*, project: str | None, name: str | None, config: Any, tags: Any, note: str,
              store: Any, parent: str | None, study: str | None, seed: int | None) -> Run:
    project = settings.get("TYMPAN_PROJECT") if project is None else project
    if not isinstance(project, str) or not project.strip() or len(project) > 200:
        raise InvalidInputError(f"project must be a non-empty str (<= 200 chars), got {project!r}")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise InvalidInputError(f"run name must be a non-empty str (<= 200 chars), got {name!r}")
    if not isinstance(note, str):
        raise InvalidInputError(f"note must be a str, got {type(note).__name__}")
    config_dict = to_config(config)
    tag_list = check_tags(tags)
    handle = shared_store(store, create=True)
    parent_id = resolve_run_id(handle, parent) if parent else None
    writer = get_writer()
    if study is None:
        study = settings.get("TYMPAN_STUDY")
    run_id = _preassigned_run_id() or new_run_id()
    run_name = name or new_run_name()
    now = time.time()

    def create(conn: Any) -> None:
        project_id = projects.ensure(conn, project, now)
        runs.insert(conn, id=run_id, project_id=project_id, name=run_name, status="running",
                    created_at=now, started_at=now, heartbeat_at=now, config=config_dict,
                    tags=tag_list, note=note, parent_id=parent_id, study_id=study,
                    host=socket.gethostname(), pid=os.getpid(), seed=seed)

    writer.submit(Command(handle, create, "create run")).result()
    if settings.get("TYMPAN_CAPTURE_ENV"):
        _capture_environment_later(writer, handle, run_id)
    sink = Sink(run_id, handle)
    writer.attach(sink)
    run = Run(id=run_id, name=run_name, project=project, config=config_dict, tags=tag_list,
              store=handle, writer=writer, sink=sink)
    _activate(run)
    return run


def _preassigned_run_id() -> str | None:
    """TYMPAN_RUN_ID, once: a study runner names the run its trial will make."""
    run_id = settings.get("TYMPAN_RUN_ID")
    if run_id is not None:
        del os.environ["TYMPAN_RUN_ID"]
    return run_id


def resume_run(run: str, *, store: Any) -> Run:
    handle = shared_store(store, create=True)
    run_id = resolve_run_id(handle, run)
    with handle.read() as conn:
        row = runs.get(conn, run_id)
        project = projects.names(conn)[row.project_id]
        summary = summaries.for_runs(conn, [run_id])[run_id]
        next_seq = metrics.next_seqs(conn, run_id)
        last_step = metrics.max_step(conn, run_id)
    if run_id in {r.id for r in active.open_runs()}:
        raise RunStateError(f"run {run_id} is already open in this process")
    if row.status == "running" and not liveness.is_gone(
        row, time.time(), settings.get("TYMPAN_CRASH_AFTER"), socket.gethostname()
    ):
        raise RunStateError(
            f"run {run_id} is still running (pid {row.pid} on {row.host}); resume it after "
            "that process has ended"
        )
    writer = get_writer()
    now = time.time()
    writer.submit(Command(
        handle, lambda conn: runs.reopen(conn, run_id, socket.gethostname(), os.getpid(), now),
        "resume run",
    )).result()
    sink = Sink(run_id, handle)
    sink.summary = summary
    sink.next_seq = next_seq
    writer.attach(sink)
    resumed = Run(id=run_id, name=row.name, project=project, config=row.config or {},
                  tags=row.tags or [], store=handle, writer=writer, sink=sink,
                  next_step=0 if last_step is None else last_step + 1)
    _activate(resumed)
    return resumed


def _capture_environment_later(writer: Any, store: Store, run_id: str) -> None:
    """Capture git/packages/hardware in the writer thread so init() returns at once."""
    from tympan.track.environment import capture_environment, environment_digest

    captured: dict[str, Any] = {}

    def capture() -> None:
        captured["env"] = capture_environment()
        captured["digest"] = environment_digest(captured["env"])

    def record(conn: Any) -> None:
        env_id = environments.intern(conn, captured["digest"], captured["env"], time.time())
        runs.set_fields(conn, run_id, env_id=env_id)

    writer.submit(Command(store, record, "environment", prepare=capture))


def _activate(run: Run) -> None:
    global _hooks_installed
    active.activate(run)
    if not _hooks_installed:
        _hooks_installed = True
        on_exit(_finish_open_runs)
        os.register_at_fork(after_in_child=_disown_runs_in_child)
        previous = sys.excepthook

        def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
            for open_run in active.open_runs():
                with contextlib.suppress(Exception):  # never hide the user's own traceback
                    open_run.fail(exc.with_traceback(tb))
            previous(kind, exc, tb)

        sys.excepthook = excepthook


def _disown_runs_in_child() -> None:
    """A forked child inherits open runs but not the writer thread: what it logged would
    vanish, so logging there is an error that says what to do instead."""
    parent = os.getppid()
    for run in active.open_runs():
        run._closed = (
            f"run {run.id} belongs to process {parent}; this forked child cannot log to it "
            "(nothing it logged would be stored): log from the parent, or call tympan.init() "
            "in the child for a run of its own"
        )
        active.forget(run)


def _finish_open_runs() -> None:
    for run in active.open_runs():
        run.finish(timeout=settings.get("TYMPAN_EXIT_TIMEOUT"))
