"""Planning: a study file expanded into trials, one per (arm, seed).

An arm is one assignment of a level to every factor. ``one-at-a-time`` has the baseline arm
plus one arm per non-baseline level (the other factors at their baselines); ``full`` has
every combination, and so has ``learning_curve`` (every data size, at every training length
if it varies those too). Every arm runs the same seeds, so arms are compared seed by seed. Trials
are ordered seed-major: after the first seed finishes, every comparison has its first pair.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tympan.config import config_text
from tympan.study.spec import StudyFile

BASELINE_ARM = "baseline"


@dataclass(frozen=True)
class Trial:
    key: str  # identity: a hash of what runs (entry point, base config content, overrides)
    arm: str  # "baseline", "encoder=gru" or "encoder=gru,front_end=mfcc"
    levels: dict[str, str]  # every factor's level in this arm
    seed: int
    overrides: list[str]  # key=value, as the command line gets them

    def differs_from_baseline(self, baselines: dict[str, str]) -> dict[str, str]:
        return {f: v for f, v in self.levels.items() if baselines[f] != v}


def arms(study: StudyFile) -> list[dict[str, str]]:
    """Every arm's factor levels, the baseline arm first."""
    spec = study.spec
    baseline = {name: f.baseline_name for name, f in spec.factors.items()}
    if spec.design in ("full", "learning_curve"):
        names = list(spec.factors)
        combos = itertools.product(*(spec.factors[n].level_names for n in names))
        out = [dict(zip(names, combo, strict=True)) for combo in combos]
        out.sort(key=lambda levels: levels != baseline)  # stable: baseline first
        return out
    out = [baseline]
    for name, factor in spec.factors.items():
        out += [baseline | {name: level} for level in factor.level_names
                if level != factor.baseline_name]
    return out


def arm_name(levels: dict[str, str], baselines: dict[str, str]) -> str:
    changed = [f"{f}={v}" for f, v in levels.items() if baselines[f] != v]
    return ",".join(changed) or BASELINE_ARM


def entry_command(study: StudyFile) -> list[str]:
    """The argv before the overrides, including ``--config`` when the study names one."""
    from tympan.entry import resolve_entry

    spec = study.spec
    head = (resolve_entry(spec.recipe, cwd=study.folder).command() if spec.recipe
            else list(spec.command or []))
    config = study.resolve(spec.config)
    return [*head, "--config", str(config)] if config else head


def config_digest(study: StudyFile) -> str | None:
    """Hash of the base config file's content: editing it changes every trial."""
    config = study.resolve(study.spec.config)
    return None if config is None else hashlib.sha256(config.read_bytes()).hexdigest()


def plan(study: StudyFile) -> list[Trial]:
    """Every trial of the study, seed-major."""
    spec = study.spec
    baselines = {name: f.baseline_name for name, f in spec.factors.items()}
    entry = _entry_identity(study)
    trials = []
    for seed in spec.seed_list:
        for levels in arms(study):
            values: dict[str, Any] = dict(spec.overrides)
            for factor, level in levels.items():
                values |= spec.factors[factor].overrides(factor, level)
            values[spec.seed_key] = seed
            overrides = [f"{k}={config_text(v)}" for k, v in values.items()]
            key = hashlib.sha256(json.dumps([entry, overrides]).encode()).hexdigest()[:32]
            trials.append(Trial(key=key, arm=arm_name(levels, baselines), levels=levels,
                                seed=seed, overrides=overrides))
    return trials


def _entry_identity(study: StudyFile) -> list[Any]:
    spec = study.spec
    what = spec.recipe or spec.command
    config = study.resolve(spec.config)
    return [what, Path(config).name if config else None, config_digest(study)]
