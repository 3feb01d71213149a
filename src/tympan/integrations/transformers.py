"""Hugging Face Transformers: ``TympanCallback`` records a ``Trainer``'s logs, evaluations,
arguments, model config and checkpoints in a tympan run.

    from transformers import Trainer
    from tympan.integrations.transformers import TympanCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=valid,
                      callbacks=[TympanCallback(project="asr")])
    trainer.train()

``report_to="tympan"``: transformers has no public way to add a reporting integration; its
``report_to`` names are looked up in ``transformers.integrations.integration_utils.
INTEGRATION_TO_CALLBACK``, an internal table. :func:`register` adds ``"tympan"`` to it, when
you call it (tympan never changes transformers by itself); ``callbacks=[TympanCallback()]``
needs nothing of the kind and is the supported way.

Keys are named as the Trainer's own TensorBoard and W&B callbacks name them: ``eval_loss``
becomes ``eval/loss``, ``test_wer`` ``test/wer``, and training logs (``loss``,
``learning_rate``, ``grad_norm``, ``epoch``) go under ``train/``. Only the main process
(``state.is_world_process_zero``) records.
"""

from __future__ import annotations

import logging
import os
from numbers import Number
from typing import Any

from tympan.integrations import require

require("transformers", "transformers", "tympan.integrations.transformers")

from transformers import TrainerCallback  # noqa: E402

import tympan  # noqa: E402

__all__ = ["TympanCallback", "register"]

log = logging.getLogger("tympan")
EVAL_PREFIXES = ("eval_", "test_", "predict_")
CHECKPOINTS = "checkpoints"


def metric_key(key: str) -> str:
    """The Trainer's log key as a tympan metric key: ``eval_loss`` -> ``eval/loss``,
    ``loss`` -> ``train/loss``."""
    for prefix in EVAL_PREFIXES:
        if key.startswith(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return key if "/" in key else f"train/{key}"


class TympanCallback(TrainerCallback):
    """Records a Trainer's training into a tympan run.

    ``project``, ``name``, ``config``, ``tags``, ``note``, ``store`` go to ``tympan.init``
    (the run's name defaults to ``args.run_name`` when you set one); ``run=`` logs into a run
    you started and finish yourself. The run's config holds ``trainer`` (the
    TrainingArguments) and ``model`` (the model's config) besides ``config``.
    ``log_checkpoints``: store each checkpoint folder the Trainer saves as artifacts
    ``checkpoints/checkpoint-STEP/...``.
    """

    def __init__(self, project: str | None = None, name: str | None = None,
                 config: Any = None, tags: list[str] | str | None = None, note: str = "", *,
                 store: str | os.PathLike[str] | None = None, run: tympan.Run | None = None,
                 log_checkpoints: bool = True, **init: Any) -> None:
        self._init = {"project": project, "name": name, "config": config, "tags": tags,
                      "note": note, "store": store, **init}
        self.run = run
        self._owns_run = run is None
        self.log_checkpoints = log_checkpoints
        self._last_logged: tuple[int, set[str]] = (-1, set())
        self._training = False
        self._skipped: set[str] = set()

    # -- the run ----------------------------------------------------------------------------
    def _active(self, args: Any, state: Any, model: Any = None) -> tympan.Run | None:
        if not state.is_world_process_zero:
            return None
        if self.run is None:
            self.run = tympan.init(**self._init_arguments(args, model))
        elif self.run.status != "running" and self._owns_run:  # evaluate() after train()
            self.run = tympan.init(resume=self.run.id, store=self._init["store"])
        return self.run

    def _init_arguments(self, args: Any, model: Any) -> dict[str, Any]:
        from tympan.track.validate import to_config

        config: dict[str, Any] = {}
        user = to_config(self._init["config"])
        config.update(user)
        config["trainer"] = _json_ready(args.to_dict())
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model"] = _json_ready(model_config.to_dict())
        arguments = {**self._init, "config": config}
        run_name = getattr(args, "run_name", None)
        if arguments["name"] is None and run_name and run_name != getattr(args, "output_dir",
                                                                          None):
            arguments["name"] = run_name
        return arguments

    # -- what the Trainer sends -------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        self._training = True
        self._active(args, state, model)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               model: Any = None, **kwargs: Any) -> None:
        run = self._active(args, state, model)
        if run is None or not logs:
            return
        data = self._numbers(logs)
        run.log(data, step=state.global_step)
        self._last_logged = (state.global_step, set(data))

    def on_evaluate(self, args: Any, state: Any, control: Any,
                    metrics: dict[str, Any] | None = None, model: Any = None,
                    **kwargs: Any) -> None:
        """Evaluation metrics the Trainer did not pass through ``on_log`` at this step (it
        normally does: then nothing is logged twice). An evaluation after training resumes
        the run and finishes it again."""
        run = self._active(args, state, model)
        if run is None or not metrics:
            return
        step, logged = self._last_logged
        data = {k: v for k, v in self._numbers(metrics).items()
                if not (step == state.global_step and k in logged)}
        if data:
            run.log(data, step=state.global_step)
        if not self._training and self._owns_run:  # evaluate() on its own: the run ends here
            run.finish()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self._active(args, state)
        if run is None or not self.log_checkpoints:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            run.log_artifact(folder, name=f"{CHECKPOINTS}/checkpoint-{state.global_step}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        if self.run is None or not state.is_world_process_zero or self.run.status != "running":
            return
        if self._owns_run:
            self.run.finish()
        else:
            self.run.flush()

    def _numbers(self, logs: dict[str, Any]) -> dict[str, float]:
        data = {}
        for key, value in logs.items():
            if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
                value = value.item()
            if isinstance(value, Number) and not isinstance(value, complex):
                data[metric_key(key)] = value
            elif key not in self._skipped:
                self._skipped.add(key)
                log.warning("tympan: the Trainer logged %s=%r, which is not a number; it is "
                            "not recorded", key, value)
        return data


def _json_ready(values: dict[str, Any]) -> dict[str, Any]:
    """Arguments and model configs hold enums, paths and other objects: keep what JSON
    holds, the text of the rest."""
    from tympan.errors import InvalidInputError
    from tympan.track.validate import to_config

    out = {}
    for key, value in values.items():
        try:
            out[key] = to_config({key: value})[key]
        except InvalidInputError:
            out[key] = str(value)
    return out


def register() -> None:
    """Make ``TrainingArguments(report_to="tympan")`` use :class:`TympanCallback`, by adding
    ``"tympan"`` to transformers' internal table of reporting integrations."""
    from transformers.integrations import integration_utils

    integration_utils.INTEGRATION_TO_CALLBACK["tympan"] = TympanCallback
