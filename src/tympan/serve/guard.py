"""The guard: each request scored against the served model's probe profile.

This module is the one seam between serving and the probe (``tympan.probe``): it finds the
profile, captures the watched layers and the output head in the same forward pass that
answers the request (no second pass), and scores them with the probe's own scoring
(``Profile.combine_features``, verdicts from ``tympan.probe.scorer``): per request the combined
anomaly score (the largest calibrated z over the stages), its conformal p-value, the z
profile by stage (layers in forward order, then ``output``), the model's output scores
(energy, max softmax probability, CTC blank ratio) and the layer where the divergence enters.
See docs/probe.md for what the numbers mean, docs/serving.md for the policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tympan.errors import InvalidInputError

if TYPE_CHECKING:
    from tympan.probe.features import Kept


class Guard:
    """A probe profile ready to score a model's layer features at ``threshold``."""

    def __init__(self, profile: Any, threshold: float, source: str) -> None:
        from tympan.probe.scorer import kept_verdicts, verdicts

        profile.check_alpha(threshold)  # a threshold under the p-value floor flags nothing
        self.profile = profile
        self.threshold = threshold
        self.source = source  # the run or file the profile came from
        # (held, not imported per request: an import statement costs microseconds cold)
        self._verdicts, self._kept_verdicts = verdicts, kept_verdicts

    @classmethod
    def for_run(cls, run_id: str, threshold: float, *, profile: str | None = None,
                store: str | None = None) -> Guard:
        """The guard of the model ``run_id`` trained: ``profile`` (a run id or .npz file),
        else the run's own profile, else its latest ``tympan probe fit``."""
        import tympan
        from tympan.errors import NotFoundError
        from tympan.probe.jobs import find_profile

        record = tympan.load_run(run_id, store=store)
        try:
            found, source = find_profile(record, profile, store)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc}; or serve without the guard (--guard off)") from None
        return cls(found, threshold, source)

    @property
    def layers(self) -> list[str]:
        return list(self.profile.layer_names)

    @property
    def head(self) -> Any:
        """The profile's output head (``OutputHead``), or None."""
        output = getattr(self.profile, "output", None)
        return None if output is None else output.head

    @property
    def watched(self) -> list[str]:
        """Every layer whose output the guard reads: the profile's, then the head's."""
        head = self.head
        return self.layers + ([head.layer] if head and head.layer not in self.layers else [])

    def describe(self) -> dict[str, Any]:
        head = self.head
        return {"profile": self.source, "layers": self.layers, "stages": self.profile.stages,
                "output_head": None if head is None else head.layer,
                "threshold": self.threshold, "n_calibration": self.profile.n_calibration,
                "min_p_value": self.profile.min_alpha, "detector": self.profile.detector}

    @contextlib.contextmanager
    def watching(self, model: Any) -> Iterator[Capture]:
        """Hooks on the profile's layers (and head) of ``model`` while the block runs. The
        batch is run as given (``padding="batch"``): the engine only hands over batches whose
        padding cannot change an input's result (see ``engine.py``)."""
        from tympan.probe.features import FeatureCapture

        self.profile.check_model(model)
        with FeatureCapture(model, self.layers, self.head, padding="batch") as capture:
            yield Capture(capture)

    def pool(self, outputs: Mapping[str, Any], lengths: Any, frames: int
             ) -> dict[str, np.ndarray]:
        """Features of layer outputs already shaped (batch, time, channels), as an exported
        model returns them beside its answer: pooled, and the head's output scores."""
        import torch

        from tympan.probe.features import pooled_features

        return pooled_features(outputs, self.layers, self.head, torch.as_tensor(lengths),
                               frames)

    def judge(self, feats: Mapping[str, np.ndarray] | Kept) -> list[Any]:
        """One ``tympan.probe.scorer.Verdict`` per input of the pooled features, or of a lone
        input's unpooled outputs (``Kept``)."""
        if isinstance(feats, dict):
            return self._verdicts(self.profile.combine_features(feats, alpha=self.threshold))
        return self._kept_verdicts(self.profile, feats, self.threshold)


class Capture:
    """Runs the model once and returns its outputs and the watched layers' features."""

    def __init__(self, capture: Any) -> None:
        self.capture = capture

    def run(self, inputs: tuple[Any, ...]) -> tuple[Any, dict[str, np.ndarray] | Kept]:
        """The outputs and the features, or a lone input's unpooled outputs (``Kept``: what
        ``Guard.judge`` scores fastest)."""
        if len(inputs) != 2:
            raise InvalidInputError("the guard needs a model called as model(x, lengths): "
                                    "serve this model with --guard off")
        return self.capture.forward(inputs, kept=True)
