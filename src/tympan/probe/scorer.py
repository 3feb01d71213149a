"""Waveforms in, one verdict per input out: the probe as a guard in front of a served model.

``Scorer`` holds a model, the pre-processing that turns waveforms into its input batch, and a
reference profile (``profile.py``). ``score(waves)`` returns, per input, the combined anomaly
score, its conformal p-value, whether it is flagged at alpha, the calibrated z of each stage
(the layers in forward order, then the model's output scores) and the stage where the
divergence enters. Inputs of different lengths are run apart (``features.py``), so an input's
verdict never depends on what else was in the batch.

``Scorer.from_run(run)`` rebuilds all three from a stored run: the model and pre-processing
through its recipe's ``probe_target()``, the profile from the run or its latest probe-fit run.
This is the stable entry point the serving guard builds on; keep its signature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError
from tympan.probe.kernel import ENTRY, P_VALUE, STATISTIC
from tympan.probe.profile import AnomalyReport, CombinedReport, Profile


@dataclass
class Verdict:
    """What the probe says about one input."""

    score: float  # combined anomaly score: the largest calibrated z (higher = further out)
    p_value: float  # conformal p-value of ``score`` (smallest: 1 / (n_calibration + 1))
    flagged: bool  # p_value <= alpha
    alpha: float
    z: dict[str, float]  # stage (layers in forward order, then "output") -> calibrated z
    entry_layer: str | None  # where the divergence enters (flagged inputs; else None)
    outputs: dict[str, float]  # the model's own output scores (energy, msp, blank_ratio)

    def to_json(self) -> dict[str, Any]:
        """JSON-able, non-finite numbers as None."""
        return {"score": _finite(self.score), "p_value": self.p_value, "flagged": self.flagged,
                "alpha": self.alpha, "entry_layer": self.entry_layer,
                "z": {k: _finite(v) for k, v in self.z.items()},
                "outputs": {k: _finite(v) for k, v in self.outputs.items()}}


def verdicts(report: AnomalyReport | CombinedReport) -> list[Verdict]:
    """One ``Verdict`` per input of an ``AnomalyReport`` (or of its combined part)."""
    # Python numbers by one tolist() per array, not one numpy scalar per number: the serving
    # guard makes a verdict for every request.
    alpha, stages, names = report.alpha, report.stages, report.output_names
    return [_verdict(score, p, entry, z, out, alpha, stages, names)
            for score, p, entry, z, out in zip(
                report.anomaly_score.tolist(), report.p_value.tolist(), report.entry.tolist(),
                report.profile.tolist(), report.outputs.tolist(), strict=True)]


def kept_verdicts(profile: Profile, kept: Any, alpha: float) -> list[Verdict]:
    """``verdicts(profile.combine_kept(kept, alpha))``, read straight from the compiled
    call's rows (``Profile.kept_rows``): the serving guard's path, without the report."""
    got = profile.kept_rows(kept, alpha)
    if got is None:
        return verdicts(profile.combine_kept(kept, alpha))
    (rows, cols), stages = got, profile.stages
    names, raw = ([], slice(0)) if profile.output is None else (profile.output.names, cols.raw)
    return [_verdict(r[STATISTIC], r[P_VALUE], int(r[ENTRY]), r[cols.stages], r[raw], alpha,
                     stages, names)
            for r in rows.tolist()]


def _verdict(score: float, p: float, entry: int, z: list[float], outputs: list[float],
             alpha: float, stages: list[str], names: list[str]) -> Verdict:
    """A verdict: flagged when p <= alpha (``report.flagged()``), its entry stage named only
    then (``report.entry_layers()``)."""
    flagged = p <= alpha
    return Verdict(score, p, flagged, alpha, dict(zip(stages, z, strict=True)),
                   stages[entry] if flagged else None, dict(zip(names, outputs, strict=False)))


class Scorer:
    """A model, its pre-processing and a reference profile: waveforms in, verdicts out.

    ``prepare(waves)`` turns a list of mono float waveforms at ``sample_rate`` into the
    model's input batch (x or (x, lengths)), as a recipe's ``probe_target().batch`` does.
    """

    def __init__(self, model: Any, profile: Profile, prepare: Callable[[list[np.ndarray]], Any],
                 sample_rate: int, alpha: float = 0.01, batch_size: int = 32) -> None:
        profile.check_alpha(alpha)
        profile.check_model(model)
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be 1 or more, got {batch_size}")
        self.model, self.profile, self.prepare = model, profile, prepare
        self.sample_rate, self.alpha, self.batch_size = int(sample_rate), alpha, batch_size
        self.profile_source: str | None = None  # where from_run found the profile

    @classmethod
    def from_run(cls, run: Any, *, store: str | None = None, profile: str | None = None,
                 recipe: str | None = None, alpha: float = 0.01,
                 batch_size: int = 32) -> Scorer:
        """The scorer of a stored model run (id, prefix, name or ``RunRecord``): its recipe's
        model and pre-processing, and ``profile`` (a run id or an .npz file; default: the
        run's own profile, else its latest probe-fit run's)."""
        import tympan
        from tympan.probe.jobs import find_profile
        from tympan.probe.target import load_target

        record = tympan.load_run(run, store=store) if isinstance(run, str) else run
        found, source = find_profile(record, profile, store)
        target = load_target(recipe, record)
        model = target.load_model(record)
        scorer = cls(model, found, target.batch, target.sample_rate, alpha, batch_size)
        scorer.profile_source = source
        return scorer

    @property
    def stages(self) -> list[str]:
        return self.profile.stages

    def report(self, waves: Sequence[np.ndarray] | np.ndarray | Any,
               lengths: Sequence[int] | Any | None = None,
               alpha: float | None = None) -> AnomalyReport:
        """The full ``AnomalyReport`` of these waveforms (see ``score``)."""
        alpha = self.alpha if alpha is None else alpha
        self.profile.check_alpha(alpha)
        waves = _as_waves(waves, lengths)
        batches = [self.prepare(waves[i:i + self.batch_size])
                   for i in range(0, len(waves), self.batch_size)]
        return self.profile.score(self.model, batches, alpha=alpha)

    def score(self, waves: Sequence[np.ndarray] | np.ndarray | Any,
              lengths: Sequence[int] | Any | None = None,
              alpha: float | None = None) -> list[Verdict]:
        """One ``Verdict`` per waveform. ``waves``: a list of mono float waveforms at
        ``sample_rate``, or a zero-padded (batch, samples) array or tensor with ``lengths``
        (samples per input; default: all of them)."""
        return verdicts(self.report(waves, lengths, alpha))


def _as_waves(waves: Any, lengths: Any) -> list[np.ndarray]:
    if hasattr(waves, "detach"):  # a torch tensor
        waves = waves.detach().cpu().numpy()
    if isinstance(waves, np.ndarray):
        if waves.ndim == 1:
            waves = waves[None]
        if waves.ndim != 2:
            raise InvalidInputError(f"waveforms must be (batch, samples) or a list of mono "
                                    f"waveforms, got shape {waves.shape}")
        rows = list(waves)
    else:
        rows = [np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w)
                for w in waves]
    if not rows:
        raise InvalidInputError("no waveforms to score")
    if lengths is not None:
        lengths = [int(n) for n in (lengths.tolist() if hasattr(lengths, "tolist") else lengths)]
        if len(lengths) != len(rows):
            raise InvalidInputError(f"{len(lengths)} lengths for {len(rows)} waveforms")
        bad = [n for n, w in zip(lengths, rows, strict=True) if not 1 <= n <= len(w)]
        if bad:
            raise InvalidInputError(f"lengths must lie in 1..samples of each waveform, got "
                                    f"{bad[0]}")
        rows = [w[:n] for w, n in zip(rows, lengths, strict=True)]
    out = []
    for w in rows:
        if w.ndim != 1 or not np.issubdtype(w.dtype, np.number) or len(w) == 0:
            raise InvalidInputError(f"each waveform must be a non-empty mono (samples,) array "
                                    f"of numbers, got {w.dtype} {w.shape}")
        out.append(np.array(w, dtype=np.float32))  # a copy: callers may hand read-only views
    return out


def _finite(value: float) -> float | None:
    # math, not numpy: a verdict's fields are Python floats (np.isfinite on a float goes
    # through the ufunc machinery, 20x)
    return value if math.isfinite(value) else None
