"""Pipeline files: which model to keep improving, from which data, judged how.

YAML validated by pydantic; an unknown key is refused with the keys that are valid, so a
typo never turns a gate rule off::

    name: asr-digits-loop
    model: models:/asr-digits           # its @champion is what a challenger must beat
    data: ../data/incoming              # a folder of manifests: each new *.jsonl (or
                                        # */manifest.jsonl) is a new batch of training data
    recipe: ../recipes/asr_ctc          # default: the champion's recipe
    overrides: {epochs: 8}              # on top of the champion's config
    data_key: extra_train               # the config key that takes the manifests
    gold: ../data/gold/test.jsonl       # fixed evaluation set (a manifest)
    seeds: 3
    executor: local                     # or ray: the trainings are Ray tasks
    triggers: [new_data, drift_alarm, {schedule: every 6h}]
    gate:
      metric: cer                       # cer or wer, measured on the gold set
      rule: improve                     # or no_worse: may hurt by at most `margin`
      margin: 0.005
      confidence: 0.95
      max_health_events: 0
      probe_drift: 0.2                  # at most 20% of gold utterances flagged by the
                                        # challenger's probe at probe_alpha (0.05)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tympan.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TRIGGERS_HELP = "valid: new_data, drift_alarm, {schedule: every 6h}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(_Strict):
    """How a challenger is judged against the champion on the gold set."""

    metric: Literal["cer", "wer"] = "wer"
    rule: Literal["improve", "no_worse"] = "improve"
    margin: float = Field(0.0, ge=0.0)  # no_worse: largest harm allowed (rate units)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    n_boot: int = Field(2000, ge=100)
    max_health_events: int = Field(0, ge=0)  # probe health events in challenger training
    # Largest fraction of gold utterances the challenger's own probe profile may flag at
    # probe_alpha (loop/drift_rule.py); None: no probe-drift rule.
    probe_drift: float | None = Field(None, gt=0.0, le=1.0)
    probe_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    probe_calibration: float = Field(0.3, gt=0.0, lt=1.0)  # of the training split, held out


class PipelineSpec(_Strict):
    name: str
    model: str
    data: str
    gold: str
    recipe: str | None = None
    overrides: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    data_key: str = "extra_train"
    seeds: int | list[int] = 3
    executor: Literal["local", "ray"] = "local"
    address: str | None = None  # executor ray: the cluster (default: a local Ray)
    workers: int | None = Field(None, ge=1)  # trainings at once (local default: 1)
    triggers: list[str | dict[str, str]] = Field(default_factory=lambda: ["new_data"])
    gate: Gate = Field(default_factory=Gate)

    @field_validator("triggers")
    @classmethod
    def _known_triggers(cls, triggers: list[str | dict[str, str]]) -> list[str | dict[str, str]]:
        from tympan.loop.triggers import Schedule

        if not triggers:
            raise ValueError(f"name at least one trigger ({TRIGGERS_HELP})")
        for trigger in triggers:
            if isinstance(trigger, dict):
                if set(trigger) != {"schedule"}:
                    raise ValueError(f"unknown trigger {trigger!r} ({TRIGGERS_HELP})")
                Schedule(trigger["schedule"])
            elif trigger not in ("new_data", "drift_alarm"):
                raise ValueError(f"unknown trigger {trigger!r} ({TRIGGERS_HELP})")
        if sum(isinstance(t, dict) for t in triggers) > 1:
            raise ValueError("one schedule per pipeline")
        return triggers

    def trigger_names(self) -> list[str]:
        return [t if isinstance(t, str) else "schedule" for t in self.triggers]

    def schedule(self) -> Any:
        """The ``schedule`` trigger's :class:`~tympan.loop.triggers.Schedule`, or None."""
        from tympan.loop.triggers import Schedule

        texts = [t["schedule"] for t in self.triggers if isinstance(t, dict)]
        return Schedule(texts[0]) if texts else None

    def seed_list(self) -> list[int]:
        seeds = self.seeds
        return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


class Pipeline(BaseModel):
    """A pipeline file: its spec and where it is (relative paths are relative to it)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    spec: PipelineSpec
    path: Path

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    @property
    def model_name(self) -> str:
        """The registered model's name (``models:/asr-digits`` -> ``asr-digits``)."""
        from tympan.store.models import parse_ref

        return parse_ref(self.spec.model).name

    @property
    def project(self) -> str:
        """The project the loop's own runs (detect, evaluate, gate) are filed under."""
        return f"loop-{self.spec.name}"


def load_pipeline(path: str | Path) -> Pipeline:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"{path}: cannot read the pipeline file: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: a pipeline file is a mapping (name, model, data, "
                                "gold, ...)")
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{path}: " + "; ".join(_problem(e) for e in exc.errors())) \
            from None
    if spec.address is not None and spec.executor != "ray":
        raise InvalidInputError(f"{path}: address: is for executor: ray")
    if spec.gate.probe_drift is not None and spec.gate.probe_drift <= spec.gate.probe_alpha:
        raise InvalidInputError(
            f"{path}: gate.probe_drift {spec.gate.probe_drift:g} must be above probe_alpha "
            f"{spec.gate.probe_alpha:g}: clean gold speech is flagged at about that rate")
    if not _NAME.match(spec.name):
        raise InvalidInputError(f"{path}: name {spec.name!r}: use letters, digits, . _ -")
    if (isinstance(spec.seeds, int) and spec.seeds < 2) or \
            (isinstance(spec.seeds, list) and len(set(spec.seeds)) < 2):
        raise InvalidInputError(f"{path}: seeds: the gate needs at least 2 seeds")
    return Pipeline(spec=spec, path=path.resolve())


def _problem(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        model = Gate if error["loc"][0] == "gate" else PipelineSpec
        valid = ", ".join(model.model_fields)
        return f"{where}: unknown key (valid keys: {valid})"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"
