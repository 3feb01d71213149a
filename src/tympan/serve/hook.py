"""The recipe hook that says how a registered model answers a served request.

A recipe opts in with a module-level ``serving(inference, **options)`` beside its
``inference(checkpoint)`` hook (``recipes/asr_ctc/train.py`` and ``recipes/speaker_id/
train.py`` have one), returning an object with one method::

    class AsrServing:
        def answer(self, outputs, inputs) -> list[dict]: ...   # one JSON object per input

``outputs`` is what the model returned for a batch (torch tensors, also under the ONNX
runtime) and ``inputs`` what ``inference.preprocess`` made. ``options`` are the
``--option KEY=VALUE`` pairs of ``tympan serve`` (the speaker recipe takes ``enroll=DIR``).
A recipe without the hook serves ``inference.postprocess``'s answers as ``{"output": ...}``.

A serving object may also enroll (``POST /v1/enroll/NAME``: the speaker recipe's voiceprints)::

        def enroll(self, name, answers) -> dict: ...   # answers: its own, for NAME's clips

The server answers the clips through the model as it answers requests (same batches, same
padding) and hands their answers over, so enrolling needs no model code of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from tympan.errors import InvalidInputError

HOOK = "serving"


@runtime_checkable
class Serving(Protocol):
    def answer(self, outputs: Any, inputs: tuple[Any, ...]) -> list[dict[str, Any]]:
        """One JSON-able answer per input of the batch."""


class Postprocessed:
    """A recipe without a serving hook: its postprocess answers, as ``{"output": ...}``."""

    def __init__(self, inference: Any) -> None:
        self.inference = inference

    def answer(self, outputs: Any, inputs: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [{"output": value} for value in self.inference.postprocess(outputs, inputs)]


@runtime_checkable
class Enrolling(Protocol):
    def enroll(self, name: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
        """Enroll ``name`` from the answers to its clips; what to answer the client."""


def make_serving(recipe: Any, inference: Any, options: Mapping[str, str]) -> Serving:
    hook = getattr(recipe, HOOK, None)
    if not callable(hook):
        if options:
            raise InvalidInputError(f"this model's recipe defines no {HOOK}() hook, so it takes "
                                    f"no --option ({', '.join(sorted(options))})")
        return Postprocessed(inference)
    made = hook(inference, **dict(options))
    if not isinstance(made, Serving):
        raise InvalidInputError(f"the recipe's {HOOK}() must return an object with "
                                "answer(outputs, inputs)")
    return made
