"""Analysis: a pure function of the stored study and its trials' runs.

For one-at-a-time designs every non-baseline level is compared with the baseline arm, seed
by seed. For full factorial designs the comparisons are the main effects and two-way
interactions. Every comparison of every metric is one hypothesis; Holm's correction runs over
all of them, and the verdicts follow docs/statistics.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tympan import __version__
from tympan.errors import InvalidInputError
from tympan.study import signflip, stats
from tympan.study.factorial import factorial_effects
from tympan.study.records import StoredStudy, TrialRow
from tympan.study.spec import Metric, StudySpec

UTTERANCES_ARTIFACT = "{split}/utterances.json"  # per-utterance errors, see docs/studies.md


@dataclass(frozen=True)
class Dropped:
    """A seed a comparison left out: the trial (arm) that gave no usable value, and why."""

    seed: int
    arm: str
    why: str  # "trial failed", "test/wer is NaN", "test/wer never logged", ...

    def __str__(self) -> str:
        return f"seed {self.seed} ({self.arm}: {self.why})"


@dataclass(frozen=True)
class Comparison:
    """One hypothesis: a level (or interaction) against its baseline, on one metric."""

    kind: str  # "level" (vs the baseline arm), "main" or "interaction" (full factorial)
    factor: str  # "encoder", or "encoder x front_end" for an interaction
    level: str  # "gru", or "gru x mfcc"
    baseline: str  # "conv", or "conv x logmel"
    metric: Metric
    effect: stats.Effect
    p_adjusted: float
    verdict: str
    seeds_needed: int | None  # for undecided comparisons: seeds that would likely decide it
    seeds_total: int = 0  # the study's seeds; effect.n of them were used
    dropped: tuple[Dropped, ...] = ()  # the seeds left out, each with why

    @property
    def seeds_text(self) -> str:
        """``3``, or ``2 of 3`` when seeds were dropped."""
        n = self.effect.n
        return str(n) if n >= self.seeds_total else f"{n} of {self.seeds_total}"

    @property
    def label(self) -> str:
        if self.kind == "interaction":
            factors, levels = self.factor.split(" x "), self.level.split(" x ")
            return " x ".join(f"{f}={v}" for f, v in zip(factors, levels, strict=True))
        return f"{self.factor}={self.level}"

    @property
    def decided(self) -> bool:
        return self.verdict != stats.NO_EFFECT


@dataclass(frozen=True)
class TrialResult:
    """A trial as the analysis saw it: its arm, seed, run and metric values."""

    trial: TrialRow
    run_name: str | None
    values: dict[str, float]  # metric key -> value (NaN when missing)
    missing: dict[str, str] = field(default_factory=dict)  # metric key -> why no usable value


@dataclass
class StudyAnalysis:
    study_id: str
    name: str
    project: str
    spec: StudySpec
    context: dict[str, Any]
    trials: list[TrialResult]
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why
    warnings: list[str] = field(default_factory=list)  # what is likely a mistake in the study

    @property
    def finished(self) -> int:
        return sum(t.trial.status == "finished" for t in self.trials)


def analyse(stored: StoredStudy) -> StudyAnalysis:
    """Every comparison of the study, from its stored trials and their runs."""
    spec = stored.spec
    results = _trial_results(stored)
    notes: list[str] = []
    raw: list[tuple[str, str, str, str, Metric, stats.Effect, tuple[float, ...]]] = []
    unlogged = _never_logged(stored, results)
    warnings = list(unlogged.values())
    for metric in spec.metrics:
        if metric.key in unlogged:  # warned about once, not trial by trial
            continue
        notes += _unusable_note(metric, results)
        if spec.design == "full" or (spec.design == "learning_curve"
                                     and len(spec.factors) > 1):  # data size x steps
            raw += _factorial(spec, metric, results, notes)
        else:
            raw += _levels(stored, spec, metric, results, notes)
    adjusted = stats.holm([r[5].p_value for r in raw]) if raw else np.array([])
    comparisons = []
    for (kind, factor, level, baseline, metric, effect, diffs), p_adj in zip(raw, adjusted,
                                                                              strict=True):
        dropped = _dropped(spec, results, metric, kind, factor, level)
        verdict = stats.verdict(effect, float(p_adj), lower_is_better=metric.lower_is_better,
                                alpha=spec.analysis.alpha)
        needed = None
        if verdict == stats.NO_EFFECT and len(diffs) >= 2:
            # The seed count at which this comparison would clear its Holm threshold.
            threshold = spec.analysis.alpha / max(1, len(raw))
            needed = stats.seeds_needed(diffs, lower_is_better=metric.lower_is_better,
                                        alpha=threshold, test=spec.analysis.test)
        comparisons.append(Comparison(kind, factor, level, baseline, metric, effect,
                                      float(p_adj), verdict, needed, len(spec.seed_list),
                                      dropped))
    notes += _resolution_notes(spec, comparisons)
    return StudyAnalysis(stored.id, spec.name, stored.project, spec, study_context(stored),
                         results, comparisons, notes, warnings)


def _resolution_notes(spec: StudySpec, comparisons: list[Comparison]) -> list[str]:
    """Say so when the sign-flip test cannot reach alpha with the seeds a comparison has:
    its smallest p is 2 / 2^n (0.25 with 3 seeds), times the comparisons under Holm."""
    if spec.analysis.test != stats.SIGN_FLIP:
        return []
    m, alpha = len(comparisons), spec.analysis.alpha
    notes = []
    for n in sorted({c.effect.n for c in comparisons if c.effect.method == "seeds"}):
        smallest = min(1.0, m * signflip.smallest_sign_flip_p(n))
        if smallest < alpha:
            continue
        count = sum(c.effect.n == n and c.effect.method == "seeds" for c in comparisons)
        holm = f" × {m} comparisons (Holm) = {smallest:.3g}" if m > 1 else ""
        notes.append(
            f"{count} comparison{'s' if count != 1 else ''} with {n} seeds cannot be decided: "
            f"the smallest p-value the sign-flip test can give with {n} seeds is "
            f"2/2^{n} = {signflip.smallest_sign_flip_p(n):.3g}{holm}, not below α = {alpha:g}. "
            f"{signflip.seeds_to_decide(alpha, m)} seeds can decide; or set analysis.test: "
            "t-test to assume normally distributed differences (docs/statistics.md)")
    return notes


NOT_RUN = {"pending": "not run yet", "running": "still running"}


def _trial_results(stored: StoredStudy) -> list[TrialResult]:
    out = []
    for trial in stored.current_trials():
        run = stored.runs.get(trial.run_id) if trial.run_id else None
        values, missing = {}, {}
        for m in stored.spec.metrics:
            if trial.status != "finished":
                values[m.key] = math.nan
                missing[m.key] = NOT_RUN.get(trial.status,
                                             f"trial {trial.status.replace('_', ' ')}")
                continue
            values[m.key], why = _value(run, m)
            if why:
                missing[m.key] = why
        out.append(TrialResult(trial, run.name if run else None, values, missing))
    return out


def _value(run: Any, metric: Metric) -> tuple[float, str | None]:
    """The run's value of the metric, and why it is not usable (None when it is)."""
    if run is None:
        return math.nan, "its run is missing"
    if metric.key not in run.summary:
        return math.nan, f"{metric.key} never logged"
    summary = run.summary[metric.key]
    value = getattr(summary, metric.summary)
    if value is None:
        nan_count = getattr(summary, "nan_count", 0)
        only_nan = nan_count > 0 and nan_count == getattr(summary, "count", 0)
        return math.nan, (f"{metric.key} is nan" if only_nan
                          else f"{metric.key} has no {metric.summary} value")
    value = float(value)
    return value, None if math.isfinite(value) else f"{metric.key} is {value}"


def _never_logged(stored: StoredStudy, results: list[TrialResult]) -> dict[str, str]:
    """A warning per study metric that no finished trial's run logged (by metric key): a
    misspelled metric would otherwise give "no comparisons yet" and nothing else."""
    runs = [stored.runs[r.trial.run_id] for r in results
            if r.trial.status == "finished" and r.trial.run_id in stored.runs]
    if not runs:
        return {}
    logged = sorted({key for run in runs for key in run.summary})
    out = {}
    for metric in stored.spec.metrics:
        if any(metric.key in run.summary for run in runs):
            continue
        close = difflib.get_close_matches(metric.key, logged, n=3, cutoff=0.6)
        # The system/ metrics every run gets are not what a study file meant.
        named = [key for key in logged if not key.startswith("system/")]
        shown = ", ".join(named[:30]) + (f" and {len(named) - 30} more"
                                         if len(named) > 30 else "")
        out[metric.key] = (
            f"metric {metric.key} was never logged by any of the {len(runs)} finished trials, "
            f"so nothing can be compared on it; they logged: {shown or 'nothing'}"
            + (f". Did you mean {' or '.join(close)}?" if close else "")
            + " (the study file's metrics: name and split)")
    return out


def _unusable_note(metric: Metric, results: list[TrialResult]) -> list[str]:
    """Which trials give no usable value of the metric, and why: their seeds are dropped
    from the comparisons that need them."""
    bad = [r for r in results if metric.key in r.missing
           and r.trial.status not in NOT_RUN]
    waiting = sum(r.trial.status in NOT_RUN for r in results)
    if not bad and not waiting:
        return []
    listed = "; ".join(f"{r.trial.arm} seed {r.trial.seed} ({r.missing[metric.key]})"
                       for r in sorted(bad, key=lambda r: (r.trial.arm != "baseline",
                                                           r.trial.arm, r.trial.seed)))
    parts = []
    if bad:
        parts.append(f"{len(bad)} trial{'s' if len(bad) != 1 else ''} gave no usable value "
                     f"({listed})")
    if waiting:
        parts.append(f"{waiting} trial{'s' if waiting != 1 else ''} not finished yet")
    return [f"{metric.key}: {' and '.join(parts)}; their seeds are left out of the "
            "comparisons that need them (the seeds column says how many each used)"]


def _dropped(spec: StudySpec, results: list[TrialResult], metric: Metric, kind: str,
             factor: str, level: str) -> tuple[Dropped, ...]:
    """The seeds a comparison left out, each with the first trial that gave no value."""
    factors, levels = factor.split(" x "), level.split(" x ")
    base = {name: f.baseline_name for name, f in spec.factors.items()}
    if kind == "level":
        arms = {"baseline", f"{factor}={level}"}
        needed = [r for r in results if r.trial.arm in arms]
    else:  # a main effect or interaction needs every cell at these levels or the baselines
        needed = [r for r in results if all(
            r.trial.levels.get(f) in (v, base[f]) for f, v in zip(factors, levels, strict=True))]
    out: dict[int, Dropped] = {}
    for r in sorted(needed, key=lambda r: (r.trial.arm != "baseline", r.trial.arm)):
        why = r.missing.get(metric.key)
        if why and r.trial.seed not in out:
            out[r.trial.seed] = Dropped(r.trial.seed, r.trial.arm, why)
    present = {r.trial.seed for r in needed}
    for seed in spec.seed_list:
        if seed not in present and seed not in out:
            out[seed] = Dropped(seed, "-", "no trial")
    return tuple(out[s] for s in sorted(out))


def _levels(stored: StoredStudy, spec: StudySpec, metric: Metric, results: list[TrialResult],
            notes: list[str]) -> list[tuple]:
    by_arm: dict[str, dict[int, TrialResult]] = {}
    for r in results:
        by_arm.setdefault(r.trial.arm, {})[r.trial.seed] = r
    baseline = by_arm.get("baseline", {})
    out = []
    for factor_name, factor in spec.factors.items():
        for level in factor.level_names:
            if level == factor.baseline_name:
                continue
            arm = by_arm.get(f"{factor_name}={level}", {})
            seeds = [s for s in spec.seed_list if s in arm and s in baseline
                     and math.isfinite(arm[s].values[metric.key])
                     and math.isfinite(baseline[s].values[metric.key])]
            label = f"{factor_name}={level} on {metric.key}"
            if len(seeds) < 2:
                notes.append(f"{label}: only {len(seeds)} seed(s) where both arms finished "
                             "with the metric; need 2")
                continue
            treat = [arm[s].values[metric.key] for s in seeds]
            base = [baseline[s].values[metric.key] for s in seeds]
            diffs = tuple(t - b for t, b in zip(treat, base, strict=True))
            effect = None
            if spec.analysis.resample == "utterances":
                effect = _utterance_effect(stored, metric, [arm[s] for s in seeds],
                                           [baseline[s] for s in seeds], notes, label)
            if effect is None:
                effect = stats.paired_effect(treat, base, lower_is_better=metric.lower_is_better,
                                             n_boot=spec.analysis.n_boot,
                                             confidence=spec.analysis.confidence,
                                             test=spec.analysis.test)
            out.append(("level", factor_name, level, factor.baseline_name, metric, effect,
                        diffs))
    return out


def _utterance_effect(stored: StoredStudy, metric: Metric, treat: list[TrialResult],
                      base: list[TrialResult], notes: list[str],
                      label: str) -> stats.Effect | None:
    """Seeds and utterances resampled together, when every run logged its per-utterance
    errors (``{split}/utterances.json``); None (seed-level analysis) otherwise."""
    arrays = []
    for group in (treat, base):
        per_seed = [stored.utterances(r.trial.run_id, metric) for r in group]
        if any(p is None for p in per_seed):
            notes.append(f"{label}: no per-utterance results in every run; resampled seeds "
                         "only")
            return None
        ids = [p[0] for p in per_seed]
        if any(i != ids[0] for i in ids):
            notes.append(f"{label}: runs scored different utterances; resampled seeds only")
            return None
        arrays.append((np.array([p[1] for p in per_seed]), np.array([p[2] for p in per_seed]),
                       ids[0]))
    (te, tc, t_ids), (be, bc, b_ids) = arrays
    if t_ids != b_ids:
        notes.append(f"{label}: the arms scored different utterances; resampled seeds only")
        return None
    spec = stored.spec
    return stats.utterance_effect(te, tc, be, bc, lower_is_better=metric.lower_is_better,
                                  n_boot=spec.analysis.n_boot,
                                  confidence=spec.analysis.confidence)


def _factorial(spec: StudySpec, metric: Metric, results: list[TrialResult],
               notes: list[str]) -> list[tuple]:
    factors = {name: f.level_names for name, f in spec.factors.items()}
    baselines = {name: f.baseline_name for name, f in spec.factors.items()}
    observations = [(r.trial.levels, r.trial.seed, r.values[metric.key]) for r in results]
    try:
        effects = factorial_effects(observations, factors, baselines,
                                    lower_is_better=metric.lower_is_better,
                                    n_boot=spec.analysis.n_boot,
                                    confidence=spec.analysis.confidence, on_too_few="skip",
                                    test=spec.analysis.test)
    except InvalidInputError as exc:
        notes.append(f"{metric.key}: no factorial analysis yet: {exc}")
        return []
    expected = sum(len(v) - 1 for v in factors.values())
    if len([e for e in effects if e.kind == "main"]) < expected:
        notes.append(f"{metric.key}: some effects have fewer than 2 complete seeds and are "
                     "left out")
    return [(e.kind, " x ".join(e.factors), " x ".join(e.levels), " x ".join(e.baselines),
             metric, e.effect, e.diffs) for e in effects]


def study_context(stored: StoredStudy) -> dict[str, Any]:
    """What a finding holds true for: recipe, base config, data, code and tympan versions."""
    spec = stored.spec
    base_config = {"file_sha256": stored.config_sha256, "overrides": spec.overrides}
    return {
        "recipe": spec.recipe or " ".join(spec.command or []),
        "base_config_hash": hashlib.sha256(json.dumps(base_config, sort_keys=True)
                                           .encode()).hexdigest()[:16],
        "data_manifest_hash": _data_hash(stored),
        "tympan_version": __version__,
        "design": spec.design,
        "seeds": spec.seed_list,
        "overrides": spec.overrides,
        "baselines": {name: f.baseline_name for name, f in spec.factors.items()},
        "git_commit": stored.git_commit(),
        "project": stored.project,
        "study": spec.name,
    }


def _data_hash(stored: StoredStudy) -> str | None:
    """sha256 (16 hex) of the data manifest: the study's ``data`` file, else the manifest of
    the corpus the trials' configs name (``corpus_dir``)."""
    candidates = []
    if stored.data_path is not None:
        candidates.append(Path(stored.data_path))
    for run in stored.runs.values():
        corpus = run.config.get("corpus_dir")
        if isinstance(corpus, str):
            candidates.append(Path(corpus) / "manifest.jsonl")
            break
    for path in candidates:
        path = path / "manifest.jsonl" if path.is_dir() else path
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return None
