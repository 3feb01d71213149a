"""Starting and resuming runs: the slow, once-per-run part of tracking."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from tympan import settings
from tympan.errors import InvalidInputError, RunStateError
from tympan.track import active, liveness
from tympan.track.commands import Command
from tympan.track.naming import new_run_id, new_run_name
from tympan.track.run import Run
from tympan.track.sink import Sink
from tympan.track.stores import shared_transport
from tympan.track.transport import NewRun, RunState, Transport
from tympan.track.validate import check_name, check_tags, check_text, to_config
from tympan.track.writer import get_writer, on_exit

_hooks_installed = False


@dataclass(frozen=True)
class Background:
    """What a run records by itself while open (None: as the settings say)."""

    system_metrics: bool | None = None
    console: bool | None = None

    def __post_init__(self) -> None:
        settings_of = {"system_metrics": ("TYMPAN_SYSTEM_METRICS", "TYMPAN_SYSTEM_INTERVAL"),
                       "console": ("TYMPAN_CONSOLE", "TYMPAN_CONSOLE_LIMIT")}
        for name, names in settings_of.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise InvalidInputError(f"{name}= must be True, False or None, got {value!r}")
            if value is not False:  # a bad setting fails here, before any run exists
                for setting in names:
                    settings.get(setting)

    def start(self, run: Run) -> None:
        from tympan.track.console import start_capture
        from tympan.track.system import start_monitor

        try:
            for task in (start_monitor(run, self.system_metrics),
                         start_capture(run, self.console)):
                if task is not None:
                    run._background.append(task)
        except BaseException as exc:
            run.fail(exc)  # a run that could not start what was asked is not left open
            raise


def start_run(*, project: str | None, name: str | None, config: Any, tags: Any, note: str,
              store: Any, parent: str | None, study: str | None, seed: int | None,
              background: Background = Background()) -> Run:
    project = check_name(settings.get("TYMPAN_PROJECT") if project is None else project,
                         "project")
    if name is not None:
        check_name(name, "run name")
    if not isinstance(note, str):
        raise InvalidInputError(f"note must be a str, got {type(note).__name__}")
    check_text(note, "note")
    if parent is not None:
        check_name(parent, "parent run")
    config_dict = to_config(config)
    tag_list = check_tags(tags)
    transport = shared_transport(store)
    transport.check_access(project)  # a bad token or an unreachable server fails here, at once
    transport.send_leftovers(wait=False)
    writer = get_writer()
    if study is None:
        study = settings.get("TYMPAN_STUDY")
    new = NewRun(id=_preassigned_run_id() or new_run_id(), project=project,
                 name=name or new_run_name(), config=config_dict, tags=tag_list, note=note,
                 parent=parent, study=study, host=socket.gethostname(), pid=os.getpid(),
                 seed=seed, created_at=time.time())
    writer.submit(Command(transport, lambda t: t.create_run(new), "create run",
                          awaited=True)).result()
    if settings.get("TYMPAN_CAPTURE_ENV"):
        _capture_environment_later(writer, transport, new.id)
    sink = Sink(new.id, transport)
    writer.attach(sink)
    run = Run(id=new.id, name=new.name, project=project, config=config_dict, tags=tag_list,
              transport=transport, writer=writer, sink=sink)
    _activate(run)
    _announce(run)
    background.start(run)
    return run


def _preassigned_run_id() -> str | None:
    """TYMPAN_RUN_ID, once: a study runner names the run its trial will make."""
    run_id = settings.get("TYMPAN_RUN_ID")
    if run_id is not None:
        del os.environ["TYMPAN_RUN_ID"]
    return run_id


@dataclass(frozen=True)
class ResumeArgs:
    """What ``init(resume=...)`` was also given: checked against the stored run."""

    project: str | None = None
    name: str | None = None
    config: Any = None
    tags: Any = None
    note: str = ""
    parent: str | None = None
    study: str | None = None

    def new_config(self, state: RunState) -> dict[str, Any]:
        """The config keys to add to the resumed run; refuses any other change."""
        conflicts = []
        for what, given, stored in (("project", self.project, state.project),
                                    ("name", self.name, state.name)):
            if given is not None and given != stored:
                conflicts.append(f"{what}={given!r} (the run's is {stored!r})")
        if self.tags is not None and sorted(check_tags(self.tags)) != sorted(state.tags):
            conflicts.append(f"tags={check_tags(self.tags)!r} (the run's are {state.tags!r})")
        for what, given in (("note", self.note), ("parent", self.parent),
                            ("study", self.study)):
            if given:
                conflicts.append(f"{what}={given!r}")
        config = to_config(self.config)
        changed = _changed_keys(state.config, config)
        if changed:
            conflicts.append("config values " + ", ".join(
                f"{key}={new!r} (the run's is {old!r})" for key, old, new in changed))
        if conflicts:
            raise RunStateError(
                f"init(resume={state.id!r}) continues run {state.id} as it was started, but "
                f"was also given {'; '.join(conflicts)}: drop them, start a new run, or "
                "change the resumed run's config with run.update_config(...)")
        return config


def _changed_keys(stored: dict[str, Any], given: dict[str, Any], prefix: str = ""
                  ) -> list[tuple[str, Any, Any]]:
    changed = []
    for key, value in given.items():
        if key not in stored:
            continue
        old = stored[key]
        if isinstance(old, dict) and isinstance(value, dict):
            changed += _changed_keys(old, value, f"{prefix}{key}.")
        elif old != value:
            changed.append((f"{prefix}{key}", old, value))
    return changed


def resume_run(run: str, *, store: Any, background: Background = Background(),
               given: ResumeArgs = ResumeArgs()) -> Run:
    transport = shared_transport(store)
    transport.send_leftovers(wait=True)  # the run's journaled points come before new ones
    state = transport.run_state(run)
    run_id = state.id
    new_config = given.new_config(state)
    if run_id in {r.id for r in active.open_runs()}:
        raise RunStateError(f"run {run_id} is already open in this process")
    if state.status == "running" and not liveness.is_gone(
        state, time.time(), settings.get("TYMPAN_CRASH_AFTER"), socket.gethostname()
    ):
        raise RunStateError(
            f"run {run_id} is still running (pid {state.pid} on {state.host}); resume it after "
            "that process has ended"
        )
    writer = get_writer()
    now = time.time()
    writer.submit(Command(
        transport, lambda t: t.reopen_run(run_id, socket.gethostname(), os.getpid(), now),
        "resume run", awaited=True,
    )).result()
    sink = Sink(run_id, transport)
    sink.summary = state.summary
    sink.next_seq = state.next_seq
    writer.attach(sink)
    resumed = Run(id=run_id, name=state.name, project=state.project, config=state.config,
                  tags=state.tags, transport=transport, writer=writer, sink=sink,
                  next_step=0 if state.last_step is None else state.last_step + 1)
    _activate(resumed)
    if new_config:
        resumed.update_config(new_config)
    _announce(resumed)
    background.start(resumed)
    return resumed


def _announce(run: Run) -> None:
    """Where to watch the run, on stderr, when its store is a server with a web UI."""
    if run.transport.ui_url:
        sys.stderr.write(f"tympan: run {run.name} ({run.id}): {run.transport.ui_url}/runs/"
                         f"{run.id}\n")


def _capture_environment_later(writer: Any, transport: Transport, run_id: str) -> None:
    """Capture git/packages/hardware in the writer thread so init() returns at once."""
    from tympan.track.environment import capture_environment, environment_digest

    captured: dict[str, Any] = {}

    def capture() -> None:
        captured["env"] = capture_environment()
        captured["digest"] = environment_digest(captured["env"])

    def record(t: Transport) -> None:
        t.set_environment(run_id, captured["digest"], captured["env"], time.time())

    writer.submit(Command(transport, record, "environment", prepare=capture))


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
