"""Training health rules: checked by the probe at every ``probe.step()``, each firing
``HealthEvent``s. Defaults and what each rule looks at are in docs/probe.md.

A rule sees a ``StepView``: the scalars of one step (loss, NaN/Inf counts, gradient norms,
attention statistics), read from the device in one go by the probe, and a ``counters()``
call for the per-channel counters accumulated on the device since ``attach``, which the
window rules read only at the end of their windows. A rule keeps its own window state.
After firing for a layer it stays quiet on that layer for its ``window`` steps
(``NonFinite`` fires once per phase: it names the *first* occurrence).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from tympan.errors import InvalidInputError


@dataclass
class HealthEvent:
    """One firing of a rule; ``layer`` is None for model-level rules (the loss)."""

    step: int
    layer: str | None
    rule: str
    value: float
    message: str
    phase: str = "forward"  # "forward" | "backward"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not math.isfinite(self.value):
            d["value"] = str(self.value)
        return d


Counters = dict[str, dict[str, torch.Tensor]]


def _no_counters() -> Counters:
    return {}


@dataclass
class StepView:
    """What the probe saw during one training step."""

    step: int
    loss: float | None
    # NaN+Inf values this step in each layer's output (forward order), in its output
    # gradient (backward order); parameter-gradient L2 norms (backward order)
    nonfinite: dict[str, float] = field(default_factory=dict)
    grad_nonfinite: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)
    attention: dict[str, dict[str, float]] = field(default_factory=dict)
    relu_after: set[str] = field(default_factory=set)
    # {layer: {count, zeros, positive, saturated}}: per-channel totals since attach
    counters: Callable[[], Counters] = _no_counters


class Rule:
    """Base class: ``check`` returns the events of one step."""

    name = "rule"
    window = 1

    def __init__(self) -> None:
        self._quiet_until: dict[str | None, int] = {}

    def check(self, view: StepView) -> list[HealthEvent]:
        raise NotImplementedError

    def _event(self, view: StepView, layer: str | None, value: float, message: str,
               phase: str = "forward") -> list[HealthEvent]:
        if view.step < self._quiet_until.get(layer, -1):
            return []
        self._quiet_until[layer] = view.step + self.window
        return [HealthEvent(view.step, layer, self.name, float(value), message, phase)]

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class NonFinite(Rule):
    """The first layer (in execution order) whose output, or gradient, holds NaN/Inf."""

    name = "non_finite"

    def __init__(self) -> None:
        super().__init__()
        self._fired: set[str] = set()

    def check(self, view: StepView) -> list[HealthEvent]:
        events: list[HealthEvent] = []
        if "forward" not in self._fired:
            for layer, bad in view.nonfinite.items():
                if bad:
                    self._fired.add("forward")
                    events.append(HealthEvent(view.step, layer, self.name, bad,
                                              f"first non-finite values ({bad:.0f}) in the "
                                              f"output of {layer!r} at step {view.step}"))
                    break
        if "backward" not in self._fired:
            events += self._backward(view)
        if (view.loss is not None and not math.isfinite(view.loss) and not events
                and not self._fired):
            self._fired.add("forward")
            events.append(HealthEvent(view.step, None, self.name, view.loss,
                                      f"the loss is {view.loss} at step {view.step} while "
                                      f"every probed layer is finite"))
        return events

    def _backward(self, view: StepView) -> list[HealthEvent]:
        # Output gradients in backward order: the first non-finite one arose in the backward
        # of the layer that ran just before it in backward order (the next one forward).
        after = None
        for layer, bad in view.grad_nonfinite.items():
            if bad:
                self._fired.add("backward")
                if after is None:
                    where, msg = layer, (f"first non-finite gradient ({bad:.0f} values) at "
                                         f"step {view.step}: already at the output of "
                                         f"{layer!r}, the last probed layer (from the loss "
                                         f"or what follows the layer)")
                else:
                    where, msg = after, (f"first non-finite gradient ({bad:.0f} values) at "
                                         f"step {view.step}: the backward of {after!r} "
                                         f"turned a finite gradient at its output into a "
                                         f"non-finite one at the output of {layer!r}")
                return [HealthEvent(view.step, where, self.name, bad, msg, "backward")]
            after = layer
        for layer, norm in view.grad_norms.items():  # in backward order
            if not math.isfinite(norm):
                self._fired.add("backward")
                return [HealthEvent(view.step, layer, self.name, norm, f"first non-finite "
                                    f"parameter gradient in {layer!r} at step {view.step}",
                                    "backward")]
        return []


class _GradientRule(Rule):
    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self._norms: dict[str, deque[float]] = {}

    def _history(self, layer: str) -> deque[float]:
        return self._norms.setdefault(layer, deque(maxlen=self.window))


class ExplodingGradients(_GradientRule):
    """A layer's parameter-gradient norm above ``threshold``, or more than ``growth`` times
    the median of its previous ``window`` steps."""

    name = "exploding_gradients"

    def __init__(self, threshold: float = 1e3, growth: float = 100.0, window: int = 20) -> None:
        super().__init__(window)
        self.threshold, self.growth = threshold, growth

    def check(self, view: StepView) -> list[HealthEvent]:
        events: list[HealthEvent] = []
        for layer, norm in view.grad_norms.items():
            if not math.isfinite(norm):
                continue
            past = self._history(layer)
            median = sorted(past)[len(past) // 2] if len(past) == self.window else None
            if norm > self.threshold:
                events += self._event(view, layer, norm, f"gradient norm of {layer!r} is "
                                      f"{norm:.3g} > {self.threshold:g}", "backward")
            elif median is not None and median > 0 and norm > self.growth * median:
                events += self._event(view, layer, norm, f"gradient norm of {layer!r} grew to "
                                      f"{norm:.3g}, {norm / median:.0f}x its recent median",
                                      "backward")
            past.append(norm)
        return events


class VanishingGradients(_GradientRule):
    """A layer's parameter-gradient norm below ``threshold`` for ``window`` steps running."""

    name = "vanishing_gradients"

    def __init__(self, threshold: float = 1e-7, window: int = 10) -> None:
        super().__init__(window)
        self.threshold = threshold

    def check(self, view: StepView) -> list[HealthEvent]:
        events: list[HealthEvent] = []
        for layer, norm in view.grad_norms.items():
            past = self._history(layer)
            past.append(norm)
            if len(past) == self.window and max(past) < self.threshold:
                events += self._event(view, layer, norm, f"gradient norm of {layer!r} stayed "
                                      f"below {self.threshold:g} for {self.window} steps "
                                      f"(now {norm:.3g})", "backward")
        return events


class _WindowRule(Rule):
    """Judges each layer's forward counters over ``window`` steps: reads the totals the
    probe accumulates on the device once per window and takes the difference."""

    def __init__(self, threshold: float, window: int) -> None:
        super().__init__()
        self.threshold, self.window = threshold, window
        self._start: Counters = {}
        self._steps = 0

    def check(self, view: StepView) -> list[HealthEvent]:
        self._steps += 1
        if self._steps < self.window:
            return []
        self._steps = 0
        now = view.counters()
        events: list[HealthEvent] = []
        for layer, totals in now.items():
            start = self._start.get(layer)
            window = totals if start is None else {k: v - start[k] for k, v in totals.items()}
            events += self._judge(view, layer, window)
        self._start = now
        return events

    def _judge(self, view: StepView, layer: str,
               window: dict[str, torch.Tensor]) -> list[HealthEvent]:
        raise NotImplementedError


class DeadUnits(_WindowRule):
    """More than ``threshold`` of a layer's channels were exactly zero over the window, or
    (for a block feeding a ReLU) never positive."""

    name = "dead_units"

    def __init__(self, threshold: float = 0.5, window: int = 20) -> None:
        super().__init__(threshold, window)

    def _judge(self, view: StepView, layer: str,
               window: dict[str, torch.Tensor]) -> list[HealthEvent]:
        seen = window["count"] > 0
        dead = (window["zeros"] >= window["count"]) & seen
        if layer in view.relu_after:
            dead = dead | ((window["positive"] == 0) & seen)
        frac = float(dead.sum()) / max(1, int(seen.sum()))
        if frac > self.threshold:
            return self._event(view, layer, frac, f"{frac:.0%} of the channels of {layer!r} "
                               f"were dead over the last {self.window} steps")
        return []


class SaturatedUnits(_WindowRule):
    """More than ``threshold`` of a layer's values saturated over the window."""

    name = "saturated_units"

    def __init__(self, threshold: float = 0.5, window: int = 20) -> None:
        super().__init__(threshold, window)

    def _judge(self, view: StepView, layer: str,
               window: dict[str, torch.Tensor]) -> list[HealthEvent]:
        frac = float(window["saturated"].sum() / window["count"].sum().clamp(min=1))
        if frac > self.threshold:
            return self._event(view, layer, frac, f"{frac:.0%} of the values of {layer!r} "
                               f"were saturated over the last {self.window} steps")
        return []


class LossNotDecreasing(Rule):
    """The smoothed loss (EMA, ``smoothing``) made no relative improvement of ``min_delta``
    over its best before the last ``window`` steps."""

    name = "loss_not_decreasing"

    def __init__(self, window: int = 100, min_delta: float = 0.01,
                 smoothing: float = 0.1) -> None:
        super().__init__()
        self.window, self.min_delta, self.smoothing = window, min_delta, smoothing
        self._ema: float | None = None
        self._history: list[float] = []

    def check(self, view: StepView) -> list[HealthEvent]:
        if view.loss is None or not math.isfinite(view.loss):
            return []
        a = self.smoothing
        self._ema = view.loss if self._ema is None else a * view.loss + (1 - a) * self._ema
        self._history.append(self._ema)
        if len(self._history) <= self.window:
            return []
        before = min(self._history[:-self.window])
        recent = min(self._history[-self.window:])
        if recent > before - self.min_delta * abs(before):
            return self._event(view, None, recent, f"the smoothed loss ({recent:.4g}) did not "
                               f"improve on {before:.4g} in the last {self.window} steps")
        return []


class AttentionAlignment(Rule):
    """Attention maps that lost their alignment: near-uniform (mean normalised entropy
    above ``max_entropy``), collapsed onto one key (a key holding more than
    ``max_key_share`` of the mass), or, when ``min_diagonality`` is set (TTS/ASR
    cross-attention), too little mass near the diagonal. Averaged over ``window`` steps,
    from step ``warmup`` on: an attention that must first learn to align (a TTS decoder's)
    is judged only once it has had ``warmup`` steps to do so."""

    name = "attention_alignment"

    def __init__(self, max_entropy: float = 0.95, max_key_share: float = 0.9,
                 min_diagonality: float | None = None, window: int = 10,
                 warmup: int = 0) -> None:
        super().__init__()
        self.max_entropy, self.max_key_share = max_entropy, max_key_share
        self.min_diagonality, self.window, self.warmup = min_diagonality, window, warmup
        self._acc: dict[str, list[dict[str, float]]] = {}

    def check(self, view: StepView) -> list[HealthEvent]:
        events: list[HealthEvent] = []
        if view.step < self.warmup:
            return events
        for layer, stats in view.attention.items():
            acc = self._acc.setdefault(layer, [])
            acc.append(stats)
            if len(acc) < self.window:
                continue
            mean = {k: sum(s[k] for s in acc) / len(acc) for k in acc[0]}
            self._acc[layer] = []
            if mean["entropy"] > self.max_entropy:
                events += self._event(view, layer, mean["entropy"], f"attention of {layer!r} "
                                      f"is near uniform (normalised entropy "
                                      f"{mean['entropy']:.2f})")
            elif mean["key_share"] > self.max_key_share:
                events += self._event(view, layer, mean["key_share"], f"attention of "
                                      f"{layer!r} collapsed onto one key "
                                      f"({mean['key_share']:.0%} of the mass)")
            elif (self.min_diagonality is not None
                  and mean["diagonality"] < self.min_diagonality):
                events += self._event(view, layer, mean["diagonality"], f"attention of "
                                      f"{layer!r} is off the diagonal (diagonality "
                                      f"{mean['diagonality']:.2f})")
        return events


RULES: dict[str, type[Rule]] = {r.name: r for r in (
    NonFinite, ExplodingGradients, VanishingGradients, DeadUnits, SaturatedUnits,
    LossNotDecreasing, AttentionAlignment)}


def make_rules(rules: str | list[Rule] | dict[str, dict[str, Any] | None] | None) -> list[Rule]:
    """``"default"`` -> every rule with its defaults; a list -> those rules; a dict ->
    the defaults with {rule name: {setting: value}} overrides (None switches a rule off)."""
    if rules is None:
        return []
    if rules == "default":
        return [cls() for cls in RULES.values()]
    if isinstance(rules, dict):
        unknown = set(rules) - set(RULES)
        if unknown:
            raise InvalidInputError(f"unknown health rule(s) {sorted(unknown)}; known: "
                                    f"{', '.join(RULES)}")
        out = []
        for name, cls in RULES.items():
            if name in rules and rules[name] is None:
                continue
            try:
                out.append(cls(**(rules.get(name) or {})))
            except TypeError as exc:
                raise InvalidInputError(f"health rule {name!r}: {exc}") from None
        return out
    if isinstance(rules, list) and all(isinstance(r, Rule) for r in rules):
        return list(rules)
    raise InvalidInputError("rules must be 'default', None, a list of Rule objects or a dict "
                            "{rule name: {setting: value} | None}")
