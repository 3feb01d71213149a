"""Lightning: ``TympanLogger`` records a ``Trainer``'s metrics, hyperparameters and
checkpoints in a tympan run; ``TympanProbe`` attaches ``tympan.probe`` to the module.

    from lightning.pytorch import Trainer
    from tympan.integrations.lightning import TympanLogger

    logger = TympanLogger(project="asr", config={"encoder": "conformer"})
    Trainer(logger=logger, max_epochs=10).fit(model, data)

Everything runs on global rank 0 only (other ranks get Lightning's dummy experiment). The
run is started on first use; ``finalize`` (the end of ``fit``) finishes it, as finished or
failed, and a later ``validate``/``test`` with the same logger resumes it, so its metrics
land in the same run at the steps after training's.
"""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from tympan.errors import InvalidInputError

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
except ImportError:  # the older package name, same API
    try:
        from pytorch_lightning import Callback
        from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
        from pytorch_lightning.utilities.rank_zero import rank_zero_only
    except ImportError:
        from tympan.errors import MissingDependencyError

        raise MissingDependencyError(
            "tympan.integrations.lightning needs lightning: pip install 'tympan[lightning]'"
        ) from None

import tympan

__all__ = ["TympanLogger", "TympanProbe"]

CHECKPOINTS = "checkpoints"


class TympanLogger(Logger):
    """A Lightning logger that records into a tympan run.

    ``project``, ``name``, ``config``, ``tags``, ``note``, ``store`` go to ``tympan.init``
    (``resume=RUN`` continues a run instead; ``run=`` logs into a run you started and
    finish yourself). ``log_checkpoints``: ``True`` stores every checkpoint
    ``ModelCheckpoint`` writes, as it is written, as artifact ``checkpoints/FILE``;
    ``"end"`` only the best and the last when training ends; ``False`` none.
    ``prefix`` is put before every metric key (``prefix="finetune/"``).
    """

    def __init__(self, project: str | None = None, name: str | None = None,
                 config: Any = None, tags: list[str] | str | None = None, note: str = "", *,
                 store: str | os.PathLike[str] | None = None, resume: str | None = None,
                 run: tympan.Run | None = None,
                 log_checkpoints: bool | Literal["end"] = True, prefix: str = "",
                 **init: Any) -> None:
        super().__init__()
        if log_checkpoints not in (True, False, "end"):
            raise InvalidInputError(f"log_checkpoints must be True, False or 'end', got "
                                    f"{log_checkpoints!r}")
        self._init = {"project": project, "name": name, "config": config, "tags": tags,
                      "note": note, "store": store, **init}
        self._resume = resume
        self._run = run
        self._owns_run = run is None
        self._log_checkpoints = log_checkpoints
        self._prefix = prefix
        self._logged: dict[str, float] = {}  # checkpoint path -> mtime it was stored at
        self._checkpoint_callback: Any = None

    # -- the run ----------------------------------------------------------------------------
    @property
    @rank_zero_experiment
    def experiment(self) -> tympan.Run:
        """The tympan run (started on first use)."""
        if self._run is None:
            self._run = (tympan.init(resume=self._resume, store=self._init["store"])
                         if self._resume else tympan.init(**self._init))
        return self._run

    def _writable(self) -> tympan.Run:
        """The run, resumed if ``finalize`` finished it (``test`` after ``fit``)."""
        run = self.experiment
        if run.status != "running" and self._owns_run:
            self._run = run = tympan.init(resume=run.id, store=self._init["store"])
        return run

    @property
    def name(self) -> str | None:
        """The run's project."""
        return self._init["project"] if self._run is None else self._run.project

    @property
    def version(self) -> str | None:
        """The run's id (starts the run)."""
        run = self.experiment
        return getattr(run, "id", None)

    @property
    def save_dir(self) -> str | None:
        return None  # the store keeps everything; ModelCheckpoint writes to its default place

    # -- what Lightning sends ---------------------------------------------------------------
    @rank_zero_only
    def log_hyperparams(self, params: Namespace | Mapping[str, Any], *args: Any,
                        **kwargs: Any) -> None:
        """Merge ``params`` (``model.hparams``, the datamodule's) into the run's config."""
        if isinstance(params, Namespace):
            params = vars(params)
        params = {str(k): v for k, v in dict(params).items()}
        if params:
            self._writable().update_config(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        data = {f"{self._prefix}{k}": v for k, v in metrics.items()}
        self._writable().log(data, step=step)

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: the run's writer thread stores what was logged within
        TYMPAN_FLUSH_INTERVAL."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """The end of fit/validate/test: store the checkpoints not yet stored, then finish
        the run ("success" and "finished" as finished, anything else as failed)."""
        if self._run is None or self._run.status != "running":
            return
        if self._checkpoint_callback is not None and self._log_checkpoints:
            self._store_checkpoints(self._checkpoint_callback)
        if self._owns_run:
            self._run.finish("finished" if status in ("success", "finished") else "failed")
        else:
            self._run.flush()

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Store the checkpoint files written since the last call (``log_checkpoints=True``)
        or remember the callback for the end (``"end"``)."""
        self._checkpoint_callback = checkpoint_callback
        if self._log_checkpoints is True:
            self._store_checkpoints(checkpoint_callback)

    def _store_checkpoints(self, callback: Any) -> None:
        best = getattr(callback, "best_model_path", "") or ""
        paths = set(getattr(callback, "best_k_models", {}) or {})
        paths.update(p for p in (best, getattr(callback, "last_model_path", "")) if p)
        if self._log_checkpoints == "end":
            paths = {p for p in paths if p in (best, getattr(callback, "last_model_path", ""))}
        run = self._writable()
        for path in sorted(paths):
            try:
                written = os.stat(path).st_mtime
            except OSError:  # deleted since (a worse top-k checkpoint): nothing to store
                continue
            if self._logged.get(path) == written:
                continue
            run.log_artifact(path, name=f"{CHECKPOINTS}/{Path(path).name}")
            self._logged[path] = written
        if best:
            score = getattr(callback, "best_model_score", None)
            run.update_config({"checkpoint": {
                "best": f"{CHECKPOINTS}/{Path(best).name}",
                "monitor": getattr(callback, "monitor", None),
                "best_score": None if score is None else float(score)}})


class TympanProbe(Callback):
    """Attach ``tympan.probe`` to the LightningModule for ``fit``: its statistics and health
    events go to the run of the trainer's ``TympanLogger`` (or ``run=``).

    ``lengths``: a function of the batch giving each input's length in frames, so padded
    frames are left out of the statistics; the other arguments go to
    ``tympan.probe.attach`` (``layers``, ``every``, ``gradients``, ...). At the end of fit
    the probe's snapshot is stored (``probe/stats.json``, ``probe/events.json``).
    """

    def __init__(self, lengths: Callable[[Any], Any] | None = None, *,
                 run: tympan.Run | None = None, **attach: Any) -> None:
        self.lengths = lengths
        self.run = run
        self.attach = attach
        self.probe: Any = None
        self._batch: Any = None

    def _run_of(self, trainer: Any) -> tympan.Run:
        if self.run is not None:
            return self.run
        for logger in trainer.loggers:
            if isinstance(logger, TympanLogger):
                return logger.experiment
        raise InvalidInputError("TympanProbe needs a TympanLogger on the Trainer, or run=")

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0:
            return
        from tympan.probe import attach

        self.probe = attach(pl_module, run=self._run_of(trainer), **self.attach)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        if self.probe is not None and self.lengths is not None:
            self._batch = self.probe.batch(lengths=self.lengths(batch))
            self._batch.__enter__()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.probe is None:
            return
        if self._batch is not None:
            self._batch.__exit__(None, None, None)
            self._batch = None
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        self.probe.step(max(trainer.global_step - 1, 0), loss=loss)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.probe is not None:
            self.probe.save()
            self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.probe is not None:
            self.probe.detach()
            self.probe = None
