"""The active run lives in a ContextVar: per thread and per asyncio task, never a global.

``open_runs`` is the process's list of unfinished runs, kept only so that an uncaught
exception or interpreter exit can close them properly.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from tympan.errors import RunStateError

if TYPE_CHECKING:
    from tympan.track.run import Run

_active: ContextVar[Run | None] = ContextVar("tympan_active_run", default=None)
_open: dict[str, Run] = {}


def activate(run: Run) -> None:
    _open[run.id] = run
    _active.set(run)


def forget(run: Run) -> None:
    _open.pop(run.id, None)
    if _active.get() is run:
        _active.set(None)


def current() -> Run | None:
    return _active.get()


def require() -> Run:
    run = _active.get()
    if run is None:
        raise RunStateError(
            "no active run in this thread: call tympan.init() first (or, from another thread, "
            "call run.log() on the Run object init() returned)"
        )
    return run


def open_runs() -> list[Run]:
    return list(_open.values())
