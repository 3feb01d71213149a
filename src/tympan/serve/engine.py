"""A registered version ready to answer batches of audio: pre-processing, one forward pass
(torch eager, or onnxruntime on the version's export) with the guard's layers captured in
it, the recipe's answers and the guard's verdicts.

Padding must not change an answer or a verdict: a request's result may not depend on what it
was batched with, and the guard's profile was calibrated on unpadded inputs. Models that mask
their padding (packed RNNs, masked attention, masked pooling, convolutions that zero padded
frames: every encoder of the ASR recipe) give the same outputs in a padded batch; a
convolution stack that lets padded frames reach the valid ones does not. So at load
the engine runs two clips of different lengths alone and as one padded batch: when the outputs
agree (1e-4 relative) a batch runs as one padded forward pass; when they do not, each group
of equal-length requests in the batch runs as its own unpadded forward pass (exact; batching
then only saves on the queue and the Python around the model). ``GET /v1/model`` says which
(``padding``).

The engine is what every way of serving shares: the embedded server's batcher calls
``answer`` from its worker thread, a Ray Serve replica from its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.serve.guard import Guard

Verdict = Any  # tympan.probe.scorer.Verdict


@dataclass(frozen=True)
class Answer:
    """The model's answer to one request and the guard's verdict (None: guard off)."""

    answer: dict[str, Any]
    verdict: Verdict | None


class Engine:
    def __init__(self, loaded: Any, serving: Any, guard: Guard | None,
                 runtime: str = "torch", onnx: Any = None) -> None:
        self.loaded = loaded
        self.version = loaded.version
        self.inference = loaded.inference
        self.serving = serving
        self.guard = guard
        self.runtime = runtime
        self._onnx = onnx
        self._watch = None
        self.guard_seconds = 0.0  # the last batch's scoring time (one worker thread calls)
        if guard is not None and onnx is None:
            self._watch = guard.watching(self.inference.model)
            self._capture = self._watch.__enter__()
        self.padding = "batch" if self._padding_exact() else "split"

    @classmethod
    def load(cls, ref: str, *, store: str | None = None, runtime: str = "torch",
             guard: bool = True, threshold: float = 0.01, profile: str | None = None,
             options: Mapping[str, str] | None = None) -> Engine:
        """Load ``ref`` (``models:/NAME@ALIAS``) from ``store`` with its guard."""
        import tympan.models
        from tympan.serve.hook import make_serving

        loaded = tympan.models.load(ref, store=store)
        serving = make_serving(loaded.recipe, loaded.inference, options or {})
        found = None
        if guard:
            found = Guard.for_run(loaded.version.run_id, threshold, profile=profile,
                                  store=store)
        onnx = None
        if runtime == "onnx":
            from tympan.serve.onnx import OnnxModel

            onnx = OnnxModel.for_version(loaded.version, found, store=store)
        return cls(loaded, serving, found, runtime, onnx)

    @property
    def sample_rate(self) -> int:
        return int(self.inference.sample_rate)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.__exit__(None, None, None)
            self._watch = None

    def answer(self, waves: list[np.ndarray]) -> list[Answer]:
        """Answers for mono waveforms at ``sample_rate``: one padded forward pass, or one per
        group of equal lengths when padding would change the results (``padding``)."""
        if self.padding == "batch" or len({len(w) for w in waves}) == 1:
            answers, feats = self._forward(waves)
        else:
            answers = [None] * len(waves)
            parts: dict[str, list[np.ndarray]] = {}
            rows: list[int] = []
            for length in sorted({len(w) for w in waves}):
                group = [i for i, w in enumerate(waves) if len(w) == length]
                got, got_feats = self._forward([waves[i] for i in group])
                for i, a in zip(group, got, strict=True):
                    answers[i] = a
                rows += group
                if got_feats is not None and not isinstance(got_feats, dict):
                    got_feats = got_feats.features()  # a lone request's unpooled outputs
                for name, values in (got_feats or {}).items():
                    parts.setdefault(name, []).append(values)
            feats = None
            if parts:
                order = np.argsort(rows)
                feats = {name: np.concatenate(v)[order] for name, v in parts.items()}
        verdicts: list[Verdict | None] = [None] * len(waves)
        if self.guard is not None and feats is not None:
            started = time.perf_counter()
            verdicts = list(self.guard.judge(feats))
            self.guard_seconds = time.perf_counter() - started
        return [Answer(a, v) for a, v in zip(answers, verdicts, strict=True)]

    def _run(self, inputs: tuple[Any, ...]) -> tuple[Any, dict[str, np.ndarray] | None]:
        if self._onnx is not None:
            return self._onnx.run(inputs, self.guard)
        if self._watch is not None:
            return self._capture.run(inputs)
        return self.inference.model(*inputs), None

    def _forward(self, waves: list[np.ndarray]) -> tuple[list[Any], Any]:
        import torch

        from tympan.audio.features import pad_waves

        # no_grad, not inference_mode: the guard's capture reads the version counters that
        # inference tensors do not keep (``FeatureCapture``; the same speed here)
        with torch.no_grad():
            inputs = self.inference.preprocess(*pad_waves(waves))
            outputs, feats = self._run(inputs)
            return self.serving.answer(outputs, inputs), feats

    def _padding_exact(self) -> bool:
        """Whether the model's outputs for a clip are the same alone and in a padded batch."""
        import torch

        from tympan.audio.features import pad_waves

        rng = np.random.default_rng(0)
        rate = self.sample_rate
        clips = [(0.05 * rng.standard_normal(n)).astype(np.float32)
                 for n in (int(0.6 * rate), int(1.1 * rate))]
        with torch.no_grad():
            batched = _tensors(self._run(self.inference.preprocess(*pad_waves(clips)))[0])
            for row, clip in enumerate(clips):
                alone = _tensors(self._run(self.inference.preprocess(*pad_waves([clip])))[0])
                for b, a in zip(batched, alone, strict=True):
                    got = b[row:row + 1]
                    if got.dim() >= 2 and a.dim() >= 2 and got.shape[1] != a.shape[1]:
                        got = got[:, :a.shape[1]]
                    if got.shape != a.shape or not torch.allclose(got, a, rtol=1e-4,
                                                                  atol=1e-4):
                        return False
        return True

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` shows: the version, its signature and card, the guard."""
        version = self.version
        return {"model": version.model, "version": version.version, "uri": version.uri,
                "aliases": list(version.aliases), "project": version.project,
                "run_id": version.run_id, "runtime": self.runtime, "padding": self.padding,
                "signature": version.signature, "description": version.description,
                "parameters": version.parameters, "reports": list(version.reports),
                "guard": self.guard.describe() if self.guard is not None else None}


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value.float()]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []
