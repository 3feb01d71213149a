"""``tympan quantify``: how much data a target needs, from a learning-curve study.

Reads a stored ``design: learning_curve`` study, takes each finished trial's data size (the
run metric ``data_size.measure``, e.g. ``data/train_hours``; the fraction if none) and its
metric, fits the curve (:mod:`tympan.study.curves`) and answers in one sentence, in the
study's own unit. The noise of each size's mean is what its seeds say, plus what resampling
the test utterances says when the runs logged per-utterance errors (the test set is the same
at every size, so this is conservative for the curve's shape and right for the population
value). Every figure is a pure function of the stored runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError, StudyError
from tympan.store import Store
from tympan.study.curves import CurveData, CurveFit, SizeAnswer, curve_data, fit_curve
from tympan.study.records import StoredStudy, load_stored_study
from tympan.study.source import StudySource
from tympan.study.spec import DATA_FACTOR, STEPS_FACTOR, Metric

_UTTERANCE_BOOT = 400  # resamples of the test utterances for each size's variance


@dataclass(frozen=True)
class Point:
    """One finished trial on the curve."""

    size: float
    fraction: float
    seed: int
    value: float
    run_id: str


@dataclass
class Quantification:
    """A learning curve of one metric, and the answer for a target if one was asked."""

    study: str
    study_id: str
    project: str
    metric: Metric
    unit: str  # "h", "utterances", or "of the corpus"
    measure: str | None
    steps: str | None  # the training length these points share, when the study varies it
    points: list[Point]
    data: CurveData
    fit: CurveFit
    level: float
    target: float | None = None
    answer: SizeAnswer | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sentence(self) -> str:
        """The answer in words, or the curve's summary when no target was asked."""
        return answer_sentence(self)


def parse_target(text: str) -> tuple[str, float]:
    """``test/wer=0.05`` -> ("test/wer", 0.05); a percentage (``5%``) is divided by 100."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise InvalidInputError(f"--target {text!r}: write METRIC=VALUE, e.g. test/wer=0.05")
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise InvalidInputError(f"--target {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"--target {text!r}: the value must be finite")
    return key, number


def quantify(where: Store | StudySource, study: str, *, metric: str | None = None,
             target: float | None = None, level: float = 0.8, method: str = "averaged",
             max_extrapolation: float = 10.0, steps: str | None = None,
             project: str | None = None) -> Quantification:
    """The learning curve of ``metric`` (default: the study's first) in a stored
    learning-curve study, and the data size that reaches ``target`` if given."""
    stored = load_stored_study(where, study, project)
    spec = stored.spec
    if spec.design != "learning_curve" or spec.data_size is None:
        raise StudyError(f"study {spec.name} is a {spec.design} study; tympan quantify reads "
                         "learning-curve studies (design: learning_curve, see docs/quantify.md)")
    chosen = _metric(stored, metric)
    steps_level = _steps_level(stored, steps)
    points = curve_points(stored, chosen, steps_level)
    sizes = sorted({p.size for p in points})
    if len(sizes) < 3:
        raise StudyError(f"study {spec.name}: {chosen.key} has finished trials at "
                         f"{len(sizes)} data size(s); a curve needs 3 (run `tympan ablate` "
                         "to finish the study)")
    notes: list[str] = []
    extra = utterance_variances(stored, chosen, points, notes)
    values = [[p.value for p in points if p.size == s] for s in sizes]
    data = curve_data(sizes, values, lower_is_better=chosen.lower_is_better,
                      extra_variances=[extra.get(s, 0.0) for s in sizes] if extra else None)
    fit = fit_curve(data, method=method, max_extrapolation=max_extrapolation)  # type: ignore[arg-type]
    measure = spec.data_size.measure if all(_has_measure(stored, p, spec.data_size.measure)
                                            for p in points) else None
    if spec.data_size.measure and measure is None:
        notes.append(f"not every run logged {spec.data_size.measure}: sizes are fractions of "
                     "the corpus")
    result = Quantification(stored.name, stored.id, stored.project, chosen, unit_of(measure),
                            measure, steps_level, points, data, fit, level, notes=notes)
    if target is not None:
        result.target = target
        result.answer = fit.size_for(target, level)
    return result


def unit_of(measure: str | None) -> str:
    if measure is None:
        return "of the corpus"
    name = measure.rsplit("/", 1)[-1]
    if name.endswith("hours"):
        return "h"
    return name.removeprefix("train_")


def size_text(size: float, unit: str) -> str:
    """A data size as people say it: ``3.1 h``, ``1,200 utterances``, ``25% of the corpus``."""
    if not math.isfinite(size):
        return "no finite amount"
    if unit == "of the corpus":
        return f"{size:.3g}x the corpus" if size > 1 else f"{size * 100:.3g}% of the corpus"
    if unit == "h":
        return f"{size:.3g} h" if size >= 1 else f"{size * 60:.3g} min"
    return f"{math.ceil(size - 1e-9):,} {unit}"  # counted things: whole ones


def answer_sentence(q: Quantification) -> str:
    metric, unit = q.metric, q.unit
    a = q.fit.irreducible
    have = size_text(q.fit.largest, unit)
    pct = f"{q.level * 100:.0f}%"
    if q.answer is None or q.target is None:
        mid = q.fit.predict(q.fit.largest, q.level)
        return (f"{metric.key} is {mid.estimate:.4g} at {have} ({pct} interval {mid.low:.4g}"
                f"-{mid.high:.4g}) and levels off at {a:.4g} with unlimited data")
    answer, target = q.answer, q.target
    goal = f"{metric.key} {'≤' if metric.lower_is_better else '≥'} {target:g}"
    if answer.verdict == "reached":
        mid = q.fit.predict(q.fit.largest, q.level)
        return (f"{goal} is already reached: the curve gives {mid.estimate:.4g} at {have}, "
                f"the data you have ({pct} interval {mid.low:.4g}-{mid.high:.4g})")
    if answer.verdict == "unreachable":
        return (f"{goal} is not reachable by adding data: the curve levels off at {a:.3g} "
                f"(its irreducible level; {answer.reachable * 100:.0f}% of its uncertainty "
                f"lets it reach {target:g}); change the model or the recipe, not the data")
    limit = size_text(answer.supported_limit, unit)
    again = next_round_text(answer, unit)
    if answer.verdict == "beyond" and not math.isfinite(answer.estimate) and \
            metric.lower_is_better == (target > a):
        return (f"{goal} is beyond what the curve supports: the fitted curve does not get "
                f"there within {limit} ({q.fit.max_extrapolation:g}x the {have} you have), "
                f"though it levels off at {a:.3g}; {again}")
    if answer.verdict == "beyond" and not math.isfinite(answer.estimate):
        return (f"{goal} is beyond what the curve supports: the fitted curve levels off at "
                f"{a:.3g}, short of the target, but {answer.reachable * 100:.0f}% of its "
                f"uncertainty would reach it, and {have} of data cannot tell which; {again}")
    if answer.verdict == "beyond":
        return (f"{goal} is beyond what the curve supports: the fitted curve says "
                f"{size_text(answer.estimate, unit)}, more than {limit} "
                f"({q.fit.max_extrapolation:g}x the {have} you have); {again}")
    high = (size_text(answer.high, unit) if math.isfinite(answer.high)
            else f"more than {limit}")
    factor = answer.estimate / answer.have
    return (f"to reach {goal}: {size_text(answer.estimate, unit)} of training data ({pct} "
            f"interval {size_text(answer.low, unit)} to {high}), you have {have}; extrapolated "
            f"{factor:.3g}x beyond the largest size measured, so {again}")


def next_round_text(answer: SizeAnswer, unit: str) -> str:
    """What to collect before estimating again: ``collect 6.2 min more (12.3 min in all)``."""
    more = answer.next_round - answer.have
    if unit == "of the corpus":
        return (f"grow the corpus to {answer.next_round:.3g}x its size ({more:.3g}x more) and "
                "estimate again")
    return (f"collect {size_text(more, unit)} more ({size_text(answer.next_round, unit)} in "
            "all) and estimate again")


def _metric(stored: StoredStudy, key: str | None) -> Metric:
    metrics = stored.spec.metrics
    if key is None:
        return metrics[0]
    for m in metrics:
        if m.key == key:
            return m
    raise InvalidInputError(f"study {stored.name} judges {', '.join(m.key for m in metrics)}, "
                            f"not {key}")


def _steps_level(stored: StoredStudy, steps: str | None) -> str | None:
    factor = stored.spec.factors.get(STEPS_FACTOR)
    if factor is None:
        if steps is not None:
            raise InvalidInputError(f"study {stored.name} does not vary training length; "
                                    "leave out --steps")
        return None
    if steps is None:
        return factor.baseline_name  # the longest training
    if steps not in factor.level_names:
        raise InvalidInputError(f"--steps {steps}: study {stored.name} trained for "
                                f"{', '.join(factor.level_names)}")
    return steps


def curve_points(stored: StoredStudy, metric: Metric, steps: str | None) -> list[Point]:
    """The finished trials of ``metric`` (at training length ``steps``), one point each.

    A point's size is the mean recorded size (``data_size.measure``) of the trials of its
    fraction, so that every seed of a fraction sits at one size of the curve: a recipe whose
    held-out utterances are drawn per seed (the speaker recipe) trains on slightly different
    hours at each seed, and grouping by the exact recorded value would make each seed a size
    of its own. Without a recorded size on every trial, sizes are the fractions."""
    measure = stored.spec.data_size.measure if stored.spec.data_size else None
    out = []
    for trial in stored.current_trials():
        if trial.status != "finished" or trial.run_id not in stored.runs:
            continue
        if steps is not None and trial.levels.get(STEPS_FACTOR) != steps:
            continue
        run = stored.runs[trial.run_id]
        value = _summary(run, metric.key, metric.summary)
        if value is None:
            continue
        fraction = float(trial.levels[DATA_FACTOR])
        size = _summary(run, measure, "last") if measure else None
        out.append(Point(size if size is not None else fraction, fraction, trial.seed, value,
                         run.id))
    if not out:
        raise StudyError(f"study {stored.name}: no finished trial logged {metric.key}")
    if any(_summary(stored.runs[p.run_id], measure, "last") is None for p in out) and measure:
        return [Point(p.fraction, p.fraction, p.seed, p.value, p.run_id) for p in out]
    recorded: dict[float, list[float]] = {}
    for p in out:
        recorded.setdefault(p.fraction, []).append(p.size)
    size = {fraction: float(np.mean(sizes)) for fraction, sizes in recorded.items()}
    return [Point(size[p.fraction], p.fraction, p.seed, p.value, p.run_id) for p in out]


def _has_measure(stored: StoredStudy, point: Point, measure: str | None) -> bool:
    return measure is not None and _summary(stored.runs[point.run_id], measure, "last") \
        is not None


def _summary(run: Any, key: str | None, which: str) -> float | None:
    if key is None or key not in run.summary:
        return None
    value = getattr(run.summary[key], which)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def utterance_variances(stored: StoredStudy, metric: Metric, points: list[Point],
                         notes: list[str]) -> dict[float, float]:
    """Per size, the variance of the seeds' mean corpus rate over resampled test utterances;
    empty when some run logged no per-utterance errors or runs scored different ones."""
    per_run = {p.run_id: stored.utterances(p.run_id, metric) for p in points}
    if any(v is None for v in per_run.values()):
        return {}
    ids = {tuple(v[0]) for v in per_run.values() if v is not None}
    if len(ids) != 1:
        notes.append("runs scored different test utterances: intervals from seeds only")
        return {}
    rng = np.random.default_rng(0)
    n_utts = len(next(iter(ids)))
    weights = rng.multinomial(n_utts, np.full(n_utts, 1.0 / n_utts), _UTTERANCE_BOOT)
    out = {}
    for size in sorted({p.size for p in points}):
        rows = [per_run[p.run_id] for p in points if p.size == size]
        errors = np.array([r[1] for r in rows], dtype=float)  # type: ignore[index]
        counts = np.array([r[2] for r in rows], dtype=float)  # type: ignore[index]
        rates = (weights @ errors.T) / np.maximum(weights @ counts.T, 1e-12)  # (boot, seeds)
        out[size] = float(rates.mean(1).var())
    return out
