"""A ``SummaryWriter`` that logs into a tympan run: change one import, keep the calls.

    from tympan.integrations.tensorboard import SummaryWriter   # was torch.utils.tensorboard

    writer = SummaryWriter(project="asr", config={"lr": 3e-4}, tensorboard=True)
    for step, batch in enumerate(loader):
        writer.add_scalar("train/loss", train_step(batch), step)
    writer.add_audio("val/sample", waveform, step, sample_rate=16000)
    writer.close()  # finishes the run it started

What each call records: ``add_scalar``/``add_scalars`` metrics (``add_scalars("loss",
{"train": a, "val": b})`` gives ``loss/train`` and ``loss/val``); ``add_audio`` an audio clip;
``add_image``/``add_images``/``add_figure`` images; ``add_text`` a table with a ``text``
column; ``add_histogram`` a table of bucket edges and counts; ``add_hparams`` merges the
hyperparameters into the run's config and logs the metrics. Tags that tympan keys cannot hold
(spaces, brackets) have those characters replaced by ``_``. A ``global_step`` of None means the
step after the highest one so far, as ``run.log`` does; ``walltime`` is not kept (tympan times
points when they are logged).

``tensorboard=True`` also writes real TensorBoard event files (through
``torch.utils.tensorboard``, under ``log_dir`` or ``runs/...`` as it chooses), so TensorBoard
keeps working; every other ``add_*`` method (graphs, embeddings, PR curves, video, ...) then
goes to those event files only. Without it, such a call raises instead of doing nothing.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import numpy as np

import tympan
from tympan.errors import InvalidInputError
from tympan.integrations.importers.writing import metric_key

__all__ = ["SummaryWriter"]


class SummaryWriter:
    """Drop-in for ``torch.utils.tensorboard.SummaryWriter`` that records into tympan.

    ``run=`` logs into a run you started (and finish yourself); otherwise a run is started
    with ``project``, ``name`` (default: the last part of ``log_dir``), ``config``, ``tags``
    and ``store`` (as ``tympan.init`` takes them) and ``close()`` finishes it.
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None = None, comment: str = "",
                 *args: Any, run: tympan.Run | None = None, project: str | None = None,
                 name: str | None = None, config: Any = None, tags: list[str] | None = None,
                 store: str | None = None, tensorboard: bool = False, **kwargs: Any) -> None:
        self._tb: Any = None
        if tensorboard:
            from tympan.integrations import require

            module: Any = require("torch.utils.tensorboard", "tensorboard",
                                  "SummaryWriter(tensorboard=True)")
            self._tb = module.SummaryWriter(log_dir, comment, *args, **kwargs)
        elif args or kwargs:
            raise InvalidInputError(
                f"SummaryWriter options {sorted(kwargs) or list(args)} only apply to "
                "TensorBoard event files: pass tensorboard=True to write them")
        self.log_dir = (self._tb.get_logdir() if self._tb is not None
                        else None if log_dir is None else os.fspath(log_dir))
        self._owns_run = run is None
        if run is None:
            default = os.path.basename(os.path.normpath(self.log_dir)) if self.log_dir else None
            run = tympan.init(project=project, name=name or default or None, config=config,
                              tags=tags, store=store)
        self.run = run

    # -- what tympan records ------------------------------------------------------------------
    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None,
                   walltime: float | None = None, **options: Any) -> None:
        self.run.log({metric_key(tag): _number(scalar_value)}, step=global_step)
        self._also("add_scalar", tag, scalar_value, global_step, walltime, **options)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any],
                    global_step: int | None = None, walltime: float | None = None) -> None:
        values = {metric_key(f"{main_tag}/{tag}"): _number(value)
                  for tag, value in tag_scalar_dict.items()}
        self.run.log(values, step=global_step)
        self._also("add_scalars", main_tag, tag_scalar_dict, global_step, walltime)

    def add_audio(self, tag: str, snd_tensor: Any, global_step: int | None = None,
                  sample_rate: int = 44100, walltime: float | None = None) -> None:
        samples = _numpy(snd_tensor)
        if samples.ndim == 2 and samples.shape[0] == 1:  # torch's (1, L)
            samples = samples[0]
        self.run.log_audio(metric_key(tag), samples, sample_rate, step=global_step)
        self._also("add_audio", tag, snd_tensor, global_step, sample_rate, walltime)

    def add_image(self, tag: str, img_tensor: Any, global_step: int | None = None,
                  walltime: float | None = None, dataformats: str = "CHW") -> None:
        self.run.log_image(metric_key(tag), _hwc(img_tensor, dataformats), step=global_step)
        self._also("add_image", tag, img_tensor, global_step, walltime, dataformats)

    def add_images(self, tag: str, img_tensor: Any, global_step: int | None = None,
                   walltime: float | None = None, dataformats: str = "NCHW") -> None:
        batch = _numpy(img_tensor)
        if dataformats[:1] != "N" or batch.ndim != len(dataformats):
            raise InvalidInputError(f"add_images({tag!r}): dataformats {dataformats!r} must "
                                    f"start with N and match the shape {batch.shape}")
        step = self.run.step if global_step is None else global_step
        for i, image in enumerate(batch):
            self.run.log_image(metric_key(f"{tag}/{i}"), _hwc(image, dataformats[1:]),
                               step=step)
        self._also("add_images", tag, img_tensor, global_step, walltime, dataformats)

    def add_figure(self, tag: str, figure: Any, global_step: int | None = None,
                   close: bool = True, walltime: float | None = None) -> None:
        figures = figure if isinstance(figure, list) else [figure]
        step = self.run.step if global_step is None else global_step
        for i, one in enumerate(figures):
            key = metric_key(tag if len(figures) == 1 else f"{tag}/{i}")
            self.run.log_image(key, one, step=step)
        if self._tb is not None:
            self._tb.add_figure(tag, figure, global_step, close, walltime)
        elif close:
            from matplotlib import pyplot

            for one in figures:
                pyplot.close(one)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        self.run.log_table(metric_key(tag), [[str(text_string)]], columns=["text"],
                           step=global_step)
        self._also("add_text", tag, text_string, global_step, walltime)

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None,
                      bins: Any = "tensorflow", walltime: float | None = None,
                      max_bins: int | None = None) -> None:
        """Stored as a table (left and right bucket edges, count): tympan has no histogram
        record. ``bins`` is numpy's (a number, edges or a rule name); "tensorflow" means
        numpy's "auto"."""
        array = _numpy(values).astype(np.float64).reshape(-1)
        array = array[np.isfinite(array)]
        if not len(array):
            raise InvalidInputError(f"add_histogram({tag!r}): no finite values")
        counts, edges = np.histogram(array, bins="auto" if bins == "tensorflow" else bins)
        rows = [[float(edges[i]), float(edges[i + 1]), int(counts[i])]
                for i in range(len(counts))]
        self.run.log_table(metric_key(tag), rows, columns=["left", "right", "count"],
                           step=global_step)
        self._also("add_histogram", tag, values, global_step, bins, walltime, max_bins)

    def add_hparams(self, hparam_dict: dict[str, Any], metric_dict: dict[str, Any],
                    hparam_domain_discrete: Any = None, run_name: str | None = None,
                    global_step: int | None = None) -> None:
        """Merge the hyperparameters into the run's config; log the metrics in the run."""
        self.run.update_config(hparam_dict)
        if metric_dict:
            self.run.log({metric_key(k): _number(v) for k, v in metric_dict.items()},
                         step=global_step)
        self._also("add_hparams", hparam_dict, metric_dict, hparam_domain_discrete, run_name,
                   global_step)

    # -- the rest of the SummaryWriter API -------------------------------------------------------
    def get_logdir(self) -> str | None:
        return self.log_dir

    def flush(self) -> None:
        self.run.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Finish the run this writer started (a run passed in stays open)."""
        if self._tb is not None:
            self._tb.close()
        if self._owns_run:
            self.run.finish()
        else:
            self.run.flush()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None and self._owns_run:
            if self._tb is not None:
                self._tb.close()
            self.run.fail(exc)
            return
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("add_"):
            if self._tb is not None:
                return getattr(self._tb, name)  # TensorBoard event files only
            raise InvalidInputError(
                f"SummaryWriter.{name} has no tympan record: pass tensorboard=True to write it "
                "to TensorBoard event files as well")
        raise AttributeError(name)

    def _also(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._tb is not None:
            getattr(self._tb, method)(*args, **kwargs)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _number(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _hwc(image: Any, dataformats: str) -> np.ndarray:
    """An image as (H, W) or (H, W, C), from the layout ``dataformats`` names."""
    array = _numpy(image)
    formats = dataformats.upper()
    if sorted(formats) not in (sorted("CHW"), sorted("HW")) or array.ndim != len(formats):
        raise InvalidInputError(f"image of shape {array.shape} does not match dataformats "
                                f"{dataformats!r} (CHW, HWC or HW)")
    if formats in ("HW", "HWC"):
        return array
    return np.transpose(array, [formats.index(axis) for axis in "HWC"])
