"""The recipe hook that rebuilds a registered model for inference.

A recipe opts in with a module-level ``inference(checkpoint: bytes)`` returning an object of
this shape (``recipes/asr_ctc/train.py`` has one)::

    class AsrInference:
        sample_rate = 16000
        model: nn.Module                                   # in eval mode
        def preprocess(self, waves, lengths) -> tuple: ... # what model(*inputs) takes
        def postprocess(self, outputs, inputs) -> list: ...  # one answer per input
        def describe(self) -> dict: ...                    # the front end, for the signature

``waves`` is a zero-padded ``(batch, samples)`` float32 tensor of mono audio at
``sample_rate`` and ``lengths`` each row's number of samples (``tympan.audio.features.
pad_waves`` makes both). Pre-processing, the module and post-processing are separate so that
the probe can hook the module, an exporter can trace it, and a server can batch requests.
The probe's ``probe_target()`` reuses this hook to rebuild a run's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tympan.errors import InvalidInputError
from tympan.registry.records import ModelVersion

HOOK = "inference"


@runtime_checkable
class Inference(Protocol):
    sample_rate: int
    model: Any

    def preprocess(self, waves: Any, lengths: Any) -> tuple[Any, ...]:
        """The model's inputs for a padded batch of waveforms and their lengths."""

    def postprocess(self, outputs: Any, inputs: tuple[Any, ...]) -> list[Any]:
        """One answer per input (a transcript, an embedding...) from the model's outputs."""


def build(module: Any, checkpoint: bytes, recipe: str) -> Inference:
    """Call the recipe's hook on the checkpoint bytes and check what it returns."""
    hook = getattr(module, HOOK, None)
    if not callable(hook):
        raise InvalidInputError(
            f"recipe {recipe} defines no {HOOK}(checkpoint) hook: add one that rebuilds the "
            "model for inference (see docs/registry.md, 'The recipe hook')")
    made = hook(checkpoint)
    if not isinstance(made, Inference):
        raise InvalidInputError(
            f"recipe {recipe}: {HOOK}() must return an object with sample_rate, model, "
            "preprocess(waves, lengths) and postprocess(outputs, inputs)")
    made.model.eval()
    return made


@dataclass
class LoadedModel:
    """A registered version, ready: ``model`` (eval mode) and its ``preprocess``.

    ``model, preprocess = tympan.models.load(uri)`` unpacks the two; ``predict`` runs all
    three steps on a list of waveforms (mono, at ``sample_rate``).
    """

    version: ModelVersion
    inference: Inference
    recipe: Any = field(default=None, repr=False)  # the recipe module (its other hooks)

    @property
    def model(self) -> Any:
        return self.inference.model

    @property
    def sample_rate(self) -> int:
        return int(self.inference.sample_rate)

    def preprocess(self, waves: Any, lengths: Any = None) -> tuple[Any, ...]:
        """Model inputs from a padded batch and its lengths, or from a list of waveforms."""
        if lengths is None:
            from tympan.audio.features import pad_waves

            waves, lengths = pad_waves(list(waves))
        return self.inference.preprocess(waves, lengths)

    def predict(self, waves: Any, lengths: Any = None) -> list[Any]:
        """The model's answer for each waveform."""
        import torch

        with torch.inference_mode():
            inputs = self.preprocess(waves, lengths)
            return self.inference.postprocess(self.model(*inputs), inputs)

    def __iter__(self):
        yield self.model
        yield self.preprocess
