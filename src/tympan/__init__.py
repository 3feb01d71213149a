"""tympan: the lab notebook that listens.

Experiment tracking, ablation studies and a representation debugger for speech and audio
deep learning. ``import tympan`` is light: storage, numpy and torch load on first use.

    run = tympan.init(project="asr", config={"encoder": "gru"})
    run.log({"loss": 0.3}, step=1)
    run.finish()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tympan.errors import TympanError
from tympan.records.api import find_runs, load_run
from tympan.track.api import (
    active_run,
    finish,
    init,
    log,
    log_artifact,
    log_audio,
    log_image,
    log_table,
    seed_everything,
)

if TYPE_CHECKING:
    from tympan.records.record import RunRecord
    from tympan.track.run import Run

__version__ = "0.1.0"

__all__ = [
    "Run",
    "RunRecord",
    "TympanError",
    "__version__",
    "active_run",
    "find_runs",
    "finish",
    "init",
    "load_run",
    "log",
    "log_artifact",
    "log_audio",
    "log_image",
    "log_table",
    "models",
    "probe",
    "seed_everything",
]


def __getattr__(name: str) -> Any:
    # Classes whose modules import SQLAlchemy/numpy are loaded only when asked for.
    if name == "Run":
        from tympan.track.run import Run

        return Run
    if name == "models":  # the registry's functions: tympan.models.load("models:/x@y")
        import tympan.models

        return tympan.models
    if name == "probe":  # the representation debugger: tympan.probe.attach(model, run=run)
        import tympan.probe

        return tympan.probe
    if name == "RunRecord":
        from tympan.records.record import RunRecord

        return RunRecord
    raise AttributeError(f"module 'tympan' has no attribute {name!r}")
