"""The module-level tracking API. Kept import-light: heavy modules load on first use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tympan.errors import InvalidInputError
from tympan.track import active

if TYPE_CHECKING:
    from tympan.track.run import Run

_pending_seed: list[int] = []  # seed_everything() before init(): recorded by the next run


def init(
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    tags: list[str] | str | None = None,
    note: str = "",
    *,
    store: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    parent: str | None = None,
    study: str | None = None,
    system_metrics: bool | None = None,
    console: bool | None = None,
    notes: str | None = None,
) -> Run:
    """Start recording a run (or, with ``resume=RUN_ID``, continue one) and make it active.

    ``config`` may be a dict, a dataclass, an argparse Namespace or a pydantic model.
    ``store`` defaults to TYMPAN_STORE, else ``./.tympan``. ``system_metrics`` (CPU, memory,
    I/O, GPUs under ``system/``) and ``console`` (stdout and stderr as ``console.log``)
    default to TYMPAN_SYSTEM_METRICS and TYMPAN_CONSOLE, both on. ``notes`` is W&B's name
    for ``note``.

    With ``resume``, ``config`` keys the run does not have yet are added to its config; a
    key it has with another value, or a ``project``, ``name``, ``tags``, ``note``,
    ``parent`` or ``study`` other than the run's own, is refused (a resumed run keeps what
    it was started with; change its config explicitly with ``run.update_config``).
    """
    from tympan.track import start

    note = _one_note(note, notes)
    background = start.Background(system_metrics, console)
    if resume is not None:
        return start.resume_run(resume, store=store, background=background,
                                given=start.ResumeArgs(project, name, config, tags, note,
                                                       parent, study))
    seed = _pending_seed.pop() if _pending_seed else None
    return start.start_run(project=project, name=name, config=config, tags=tags, note=note,
                           store=store, parent=parent, study=study, seed=seed,
                           background=background)


def log(data: dict[str, Any], step: int | None = None) -> None:
    """``Run.log`` on the active run."""
    active.require().log(data, step=step)


def log_audio(key: str, waveform: Any, sample_rate: int, step: int | None = None,
              caption: str | None = None) -> None:
    """``Run.log_audio`` on the active run."""
    active.require().log_audio(key, waveform, sample_rate, step=step, caption=caption)


def log_image(key: str, image: Any, step: int | None = None,
              caption: str | None = None) -> None:
    """``Run.log_image`` on the active run."""
    active.require().log_image(key, image, step=step, caption=caption)


def log_table(key: str, data: Any, columns: list[str] | None = None, step: int | None = None,
              caption: str | None = None) -> None:
    """``Run.log_table`` on the active run."""
    active.require().log_table(key, data, columns=columns, step=step, caption=caption)


def log_artifact(source: str | os.PathLike[str] | bytes, name: str | None = None,
                 media_type: str | None = None) -> None:
    """``Run.log_artifact`` on the active run."""
    active.require().log_artifact(source, name=name, media_type=media_type)


def finish(status: str = "finished") -> None:
    """Finish the active run; with no active run, do nothing (as ``wandb.finish()``)."""
    run = active.current()
    if run is not None:
        run.finish(status)


def _one_note(note: str, notes: str | None) -> str:
    if notes is None:
        return note
    if note and note != notes:
        raise InvalidInputError(
            "init() got note= and notes= with different texts: pass one of them")
    return notes


def active_run() -> Run | None:
    """The run ``tympan.log`` writes to in this thread/task, if any."""
    return active.current()


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch; the seed is recorded with the active (or next) run."""
    from tympan.track.commands import Command
    from tympan.track.seeding import seed_everything as _seed

    seed = _seed(seed)
    run = active.current()
    if run is None:
        _pending_seed[:] = [seed]
    else:
        run._writer.submit(Command(run.transport, lambda t: t.set_seed(run.id, seed), "seed"))
    return seed


__all__ = ["active_run", "finish", "init", "log", "log_artifact", "log_audio", "log_image",
           "log_table", "seed_everything"]
