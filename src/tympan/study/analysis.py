"""Analysis: a pure function of the stored study and its trials' runs.

For one-at-a-time designs every non-baseline level is compared with the baseline arm, seed
by seed. For full factorial designs the comparisons are the main effects and two-way
interactions. Every comparison of every metric is one hypothesis; Holm's correction runs over
all of them, and the verdicts follow docs/statistics.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tympan import __version__
from tympan.errors import InvalidInputError
from tympan.study import stats
from tympan.study.factorial import factorial_effects
from tympan.study.records import StoredStudy, TrialRow
from tympan.study.spec import Metric, StudySpec

UTTERANCES_ARTIFACT = "{split}/utterances.json"  # per-utterance errors, see docs/studies.md


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

    @property
    def finished(self) -> int:
        return sum(t.trial.status == "finished" for t in self.trials)


def analyse(stored: StoredStudy) -> StudyAnalysis:
    """Every comparison of the study, from its stored trials and their runs."""
    spec = stored.spec
    results = _trial_results(stored)
    notes: list[str] = []
    raw: list[tuple[str, str, str, str, Metric, stats.Effect, tuple[float, ...]]] = []
    for metric in spec.metrics:
        if spec.design == "full":
            raw += _factorial(spec, metric, results, notes)
        else:
            raw += _levels(stored, spec, metric, results, notes)
    adjusted = stats.holm([r[5].p_value for r in raw]) if raw else np.array([])
    comparisons = []
    for (kind, factor, level, baseline, metric, effect, diffs), p_adj in zip(raw, adjusted,
                                                                              strict=True):
        verdict = stats.verdict(effect, float(p_adj), lower_is_better=metric.lower_is_better,
                                alpha=spec.analysis.alpha)
        needed = None
        if verdict == stats.NO_EFFECT and len(diffs) >= 2:
            # The seed count at which this comparison would clear its Holm threshold.
            threshold = spec.analysis.alpha / max(1, len(raw))
            needed = stats.seeds_needed(diffs, lower_is_better=metric.lower_is_better,
                                        alpha=threshold)
        comparisons.append(Comparison(kind, factor, level, baseline, metric, effect,
                                      float(p_adj), verdict, needed))
    return StudyAnalysis(stored.id, spec.name, stored.project, spec, study_context(stored),
                         results, comparisons, notes)


def _trial_results(stored: StoredStudy) -> list[TrialResult]:
    out = []
    for trial in stored.current_trials():
        run = stored.runs.get(trial.run_id) if trial.run_id else None
        values = {m.key: _value(run, m) if trial.status == "finished" else math.nan
                  for m in stored.spec.metrics}
        out.append(TrialResult(trial, run.name if run else None, values))
    return out


def _value(run: Any, metric: Metric) -> float:
    if run is None or metric.key not in run.summary:
        return math.nan
    summary = run.summary[metric.key]
    value = getattr(summary, metric.summary)
    return math.nan if value is None else float(value)


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
                                             confidence=spec.analysis.confidence)
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
                                    confidence=spec.analysis.confidence, on_too_few="skip")
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
