"""Study files: what to run, which components to vary, with which seeds, judged by what.

A study file is YAML validated by pydantic. Every mistake is reported at once, each with the
file, line and dotted location (``asr.yaml:14: factors.encoder.baseline: ...``), so a study
never starts half-right.

    name: asr_components
    recipe: recipes/asr_ctc            # or command: [python, train.py]
    config: ../recipes/asr_ctc/configs/base.yaml   # relative to this file
    overrides: {epochs: 8}             # fixed for every trial
    factors:
      encoder: {levels: [conv, gru, transformer], baseline: conv}
      front_end: {levels: [logmel, mfcc], baseline: logmel}
    design: one-at-a-time              # or full
    seeds: 3                           # or [0, 1, 2]: the same seeds in every arm
    metrics:
      - {name: wer, split: test, direction: lower}
    resources: {cpus: 1, gpus: 0.25, timeout: 900}   # seconds; default 3 h; none: no limit

A learning-curve study varies the training data instead (docs/quantify.md): nested subsets
of the corpus, so that each larger set contains every smaller one, on the same seeds::

    design: learning_curve
    data_size: {key: train_fraction, fractions: [1/16, 1/8, 1/4, 1/2, 1],
                measure: data/train_hours}   # the run metric that says how much data it had
    steps: {key: epochs, values: [10, 20]}    # optional: training length as a second axis
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tympan.errors import StudyFileError

Scalar = str | int | float | bool
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Factor(_Strict):
    """One component under study: its levels and the baseline the others are compared with.

    Levels are values of the config key (``key``, default: the factor's name), or named sets
    of overrides: ``levels: {small: {hidden: 96, layers: 2}, large: {hidden: 256, layers: 4}}``.
    """

    levels: list[Scalar] | dict[str, dict[str, Scalar | None]]
    baseline: Scalar
    key: str | None = None

    @field_validator("levels")
    @classmethod
    def _two_distinct_levels(cls, levels: Any) -> Any:
        names = [_text(v) for v in levels]
        if len(names) < 2:
            raise ValueError("a factor needs at least two levels (the baseline and another)")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"levels are repeated: {', '.join(duplicates)}")
        return levels

    @model_validator(mode="after")
    def _baseline_is_a_level(self) -> Factor:
        if _text(self.baseline) not in self.level_names:
            raise ValueError(f"baseline {_text(self.baseline)!r} is not one of the levels "
                             f"({', '.join(self.level_names)})")
        if isinstance(self.levels, dict) and self.key is not None:
            raise ValueError("key applies to plain levels; named levels list their overrides")
        return self

    @property
    def level_names(self) -> list[str]:
        return [_text(v) for v in self.levels]

    @property
    def baseline_name(self) -> str:
        return _text(self.baseline)

    def overrides(self, factor: str, level: str) -> dict[str, Any]:
        """The config overrides that put this factor at ``level``."""
        if isinstance(self.levels, dict):
            return dict(self.levels[level])
        value = next(v for v in self.levels if _text(v) == level)
        return {self.key or factor: value}


class Metric(_Strict):
    """A metric the study judges arms by: ``{split}/{name}`` as the run logged it."""

    name: str
    split: str | None = None
    direction: Literal["lower", "higher"]
    summary: Literal["last", "min", "max"] = "last"

    @property
    def key(self) -> str:
        return f"{self.split}/{self.name}" if self.split else self.name

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"


DEFAULT_TRIAL_TIMEOUT = 3 * 3600.0  # seconds: a hung trial cannot hold a study forever


class Resources(_Strict):
    """What one trial needs: CPU cores (its thread count), GPUs (fractions share a GPU), and
    how long it may run: ``timeout`` seconds, unset for the default (3 hours), ``none`` for
    no limit."""

    cpus: float = Field(1, gt=0)
    gpus: float = Field(0, ge=0)
    timeout: float | Literal["none"] | None = Field(
        None, description="seconds before a trial is stopped; none: no limit")

    @field_validator("timeout", mode="before")
    @classmethod
    def _positive_or_none(cls, timeout: Any) -> Any:
        if isinstance(timeout, str) and timeout.strip().lower() == "none":
            return "none"
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float, type(None))) or (
                timeout is not None and not timeout > 0):
            raise ValueError(f"{timeout!r} is not a timeout: give a positive number of seconds "
                             "per trial (e.g. 10800 for 3 hours), or none for no limit")
        return timeout

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    @property
    def timeout_seconds(self) -> float | None:
        """Seconds a trial may run (None: no limit)."""
        if self.timeout == "none":
            return None
        return DEFAULT_TRIAL_TIMEOUT if self.timeout is None else float(self.timeout)


class Analysis(_Strict):
    """How comparisons are made: see docs/statistics.md."""

    n_boot: int = Field(10_000, ge=1_000)
    alpha: float = Field(0.05, gt=0, lt=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    resample: Literal["seeds", "utterances"] = "seeds"
    # sign-flip: exact randomisation test, no normality assumed (needs 6+ seeds to decide at
    # 0.05); t-test: paired t-test, exact under normal noise, liberal under skewed noise.
    test: Literal["sign-flip", "t-test"] = "sign-flip"


# (section, field, default) of fields added after studies were stored: see StudySpec.digest.
# section None: a top-level field.
_LATER_FIELDS = (("analysis", "test", "sign-flip"), (None, "data_size", None),
                 (None, "steps", None))


class DataSize(_Strict):
    """A learning-curve study's data axis: the config key that takes a fraction of the
    corpus (the recipe takes nested subsets: ``train_fraction`` in the bundled recipes),
    the fractions, and the metric each run logs with the amount of data it trained on."""

    key: str = "train_fraction"
    fractions: list[float] = [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1]
    measure: str | None = "data/train_hours"  # None: sizes are the fractions themselves

    @field_validator("fractions", mode="before")
    @classmethod
    def _parse_fractions(cls, fractions: Any) -> Any:
        if not isinstance(fractions, list):
            return fractions
        out = []
        for value in fractions:
            if isinstance(value, str) and "/" in value:
                top, _, bottom = value.partition("/")
                try:
                    value = float(top) / float(bottom)
                except (ValueError, ZeroDivisionError):
                    raise ValueError(f"{value!r} is not a fraction such as 1/16") from None
            out.append(value)
        return out

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if len(fractions) < 3:
            raise ValueError("a learning curve needs at least 3 data sizes")
        if any(not 0 < f <= 1 for f in fractions):
            raise ValueError("fractions of the corpus are in (0, 1]")
        if len(set(fractions)) != len(fractions):
            raise ValueError("fractions are repeated")
        return sorted(fractions)


class Steps(_Strict):
    """A learning-curve study's optional second axis: training length (epochs or steps)."""

    key: str = "epochs"
    values: list[int] = Field(min_length=2)


DATA_FACTOR = "data_size"  # the factor a learning-curve study varies (findings name it so)
STEPS_FACTOR = "steps"


class StudySpec(_Strict):
    name: str
    project: str | None = None
    description: str = ""
    recipe: str | None = None
    command: list[str] | None = None
    config: str | None = None
    overrides: dict[str, Scalar | None] = {}
    factors: dict[str, Factor]
    design: Literal["one-at-a-time", "full", "learning_curve"] = "one-at-a-time"
    data_size: DataSize | None = None
    steps: Steps | None = None
    seeds: int | list[int]
    seed_key: str = "seed"
    metrics: list[Metric]
    resources: Resources = Resources()
    analysis: Analysis = Analysis()
    data: str | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("use letters, digits, '_', '-' and '.' (at most 200), e.g. "
                             "asr_components")
        return name

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, command: Any) -> Any:
        if isinstance(command, str):
            import shlex

            return shlex.split(command)
        return command

    @field_validator("factors")
    @classmethod
    def _some_factors(cls, factors: dict[str, Factor]) -> dict[str, Factor]:
        if not factors:  # a learning curve's come from data_size (below)
            raise ValueError("list at least one factor to vary")
        return factors

    @model_validator(mode="before")
    @classmethod
    def _learning_curve_factors(cls, data: Any) -> Any:
        """A learning curve's axes become factors (data size, and steps if given), each with
        its largest level as the baseline, so reports and findings treat data size as a
        component like any other."""
        if not isinstance(data, dict):
            return data
        if data.get("design") != "learning_curve":
            if data.get("data_size") is not None or data.get("steps") is not None:
                raise ValueError("data_size and steps belong to design: learning_curve")
            return data
        size = DataSize.model_validate(data.get("data_size") or {})
        factors = {DATA_FACTOR: {"levels": size.fractions, "baseline": size.fractions[-1],
                                 "key": size.key}}
        if data.get("steps") is not None:
            steps = Steps.model_validate(data["steps"])
            factors[STEPS_FACTOR] = {"levels": steps.values, "baseline": max(steps.values),
                                     "key": steps.key}
        given = data.get("factors")
        if given and given != factors:
            raise ValueError("a learning_curve study varies data size (data_size:) and "
                             "optionally training length (steps:); it takes no factors")
        return {**data, "factors": factors, "data_size": size.model_dump()}

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        count = seeds if isinstance(seeds, int) else len(seeds)
        if count < 2:
            raise ValueError("at least 2 seeds: paired differences need two to estimate "
                             "their spread")
        if isinstance(seeds, list) and len(set(seeds)) != len(seeds):
            raise ValueError("seeds are repeated")
        if count > 1000:
            raise ValueError("more than 1000 seeds")
        return seeds

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, metrics: list[Metric]) -> list[Metric]:
        if not metrics:
            raise ValueError("list at least one metric, e.g. {name: wer, split: test, "
                             "direction: lower}")
        keys = [m.key for m in metrics]
        if len(set(keys)) != len(keys):
            raise ValueError(f"metrics are repeated: {', '.join(keys)}")
        return metrics

    @model_validator(mode="after")
    def _one_entry_point(self) -> StudySpec:
        if (self.recipe is None) == (self.command is None):
            raise ValueError("give exactly one of recipe (e.g. recipes/asr_ctc) or command "
                             "(e.g. [python, train.py])")
        if self.command is not None and not self.command:
            raise ValueError("command is empty")
        clash = [name for name in self.factors if name == self.seed_key]
        if clash:
            raise ValueError(f"factor {clash[0]!r} is the seed key; seeds are listed in seeds")
        return self

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def project_name(self) -> str:
        return self.project or self.name

    def digest(self) -> str:
        """A hash of everything that decides what the trials run (not of comments). Fields
        added later are left out while they hold their default, so a study run before they
        existed keeps its digest."""
        dump = self.model_dump(mode="json")
        for section, key, default in _LATER_FIELDS:
            fields = dump if section is None else dump[section]
            if key in fields and fields[key] == default:
                del fields[key]
        return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()


class StudyFile(BaseModel):
    """A loaded study: the spec, the file it came from, and that file's folder."""

    model_config = ConfigDict(frozen=True)
    spec: StudySpec
    path: Path

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str | None) -> Path | None:
        """A path written in the study file, relative to the file's folder."""
        return None if relative is None else (self.folder / relative).resolve()


def load_study(path: str | Path) -> StudyFile:
    """The study at ``path``; a ``StudyFileError`` listing every mistake with its line."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot read the study file: {exc.strerror or exc}") \
            from None
    try:
        data = yaml.safe_load(text)
        lines = _line_numbers(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or exc
        raise StudyFileError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise StudyFileError(f"{path}: a study file is a mapping (name:, factors:, seeds:, "
                             f"metrics:, ...), got {type(data).__name__}")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise StudyFileError(_describe(path, exc, lines)) from None
    study = StudyFile(spec=spec, path=path.resolve())
    _check_paths(study, lines)
    return study


def _check_paths(study: StudyFile, lines: dict[tuple[Any, ...], int]) -> None:
    spec = study.spec
    config = study.resolve(spec.config)
    if config is not None and not config.is_file():
        line = lines.get(("config",), 1)
        raise StudyFileError(f"{study.path}:{line}: config: {spec.config} does not exist "
                             f"(paths are relative to the study file)")


def _describe(path: Path, exc: ValidationError, lines: dict[tuple[Any, ...], int]) -> str:
    mistakes = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
        line = _nearest_line(loc, lines)
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see docs/studies.md)"
        elif error["type"] == "missing":
            message = "missing (required)"
        mistakes.append((line, f"{path}:{line}: {where}: {message}"))
    unique = dict.fromkeys(text for _, text in sorted(mistakes, key=lambda m: m[0]))
    return "; ".join(unique)


def _is_union_tag(part: Any) -> bool:
    # pydantic names the union member it tried ("list[...]", "int", "function-after[...]").
    return isinstance(part, str) and ("[" in part or part in {"int", "str", "float", "bool"})


def _nearest_line(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _line_numbers(node: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Dotted location -> 1-based line, from the YAML node tree."""
    import yaml

    out: dict[tuple[Any, ...], int] = {}
    if node is None:
        return out
    out[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*prefix, key.value)] = key.start_mark.line + 1
            out.update({k: v for k, v in _line_numbers(value, (*prefix, key.value)).items()
                        if k != (*prefix, key.value)})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out.update(_line_numbers(item, (*prefix, index)))
    return out


def _text(value: Any) -> str:
    """A level as users write it on a command line (``true``, ``0.001``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
