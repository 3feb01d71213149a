"""``attach()``: hooks on a model's blocks that keep streaming statistics and check health.

    probe = tympan.probe.attach(model, run=run)
    for step, (x, lengths, y) in enumerate(loader):
        with probe.batch(lengths=lengths):
            loss = loss_fn(model(x), y)
        loss.backward(); opt.step(); opt.zero_grad()
        probe.step(step, loss=loss.item())
    probe.save(run); probe.detach()
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.health import HealthEvent, Rule, StepView, make_rules
from tympan.probe.layers import (
    channel_dim,
    feeds_relu,
    output_tensor,
    resolve_layers,
    saturation_of,
    valid_rows,
)
from tympan.probe.stats import Histogram, LayerStats, Saturation, sample_channels

log = logging.getLogger("tympan")


class Probe:
    """Statistics and health events of the layers of one model. Create with ``attach()``."""

    def __init__(self, model: nn.Module, layers: str | list[str], run: Any, every: int,
                 histogram_channels: int, bins: int, gradients: bool, rules: Any,
                 saturation: float, histogram_range: tuple[float, float] | None,
                 attention: str | list[str]) -> None:
        if every < 1:
            raise InvalidInputError(f"every must be >= 1, got {every}")
        self.model, self.run, self.every = model, run, every
        self.histogram_channels, self.bins = histogram_channels, bins
        self.histogram_range, self.gradients = histogram_range, gradients
        self.modules = resolve_layers(model, layers)
        self.rules: list[Rule] = make_rules(rules)
        self.stats: dict[str, LayerStats] = {}  # everything seen, per layer (logged part)
        self.grad_stats: dict[str, LayerStats] = {}
        self.events: list[HealthEvent] = []
        self._saturation = {n: Saturation(*saturation_of(model, n, saturation))
                            for n in self.modules}
        self._relu_after = {n for n in self.modules if feeds_relu(model, n)}
        self._edges: dict[str, Histogram] = {}
        self._step_fwd: dict[str, LayerStats] = {}  # since the last step(), in firing order
        self._step_bwd: dict[str, LayerStats] = {}
        self._interval: dict[str, LayerStats] = {}  # since the last log
        self._interval_grad: dict[str, LayerStats] = {}
        self._attention: dict[str, list[torch.Tensor]] = {}
        self._warned: set[tuple[str, str | None]] = set()
        self._lengths: torch.Tensor | None = None
        self._total: int | None = None
        self._next_step = 0
        self._handles: list[Any] = []
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        names = attention if attention != "auto" else [
            n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
        self.attention_layers = resolve_layers(model, names) if names else {}
        for name, module in self.attention_layers.items():
            if isinstance(module, nn.MultiheadAttention):
                self._handles.append(module.register_forward_pre_hook(
                    _want_weights, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._attention_hook(name)))

    # -- what the hooks do ----------------------------------------------------------------
    def _forward_hook(self, name: str) -> Any:
        dim = channel_dim(self.modules[name])

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            x = output_tensor(output)
            if x is None:
                return
            rows = valid_rows(x.detach(), dim, self._lengths, self._total)
            stats = self._step_fwd.get(name)
            if stats is None:
                stats = self._step_fwd[name] = self._fresh(name, rows)
            if self.histogram_channels and self._next_step % self.every == 0:
                if name not in self._edges:
                    self._edges[name] = Histogram.from_first_batch(
                        rows, sample_channels(rows.shape[-1], self.histogram_channels),
                        self.bins, self.histogram_range)
                if stats.hist is None:
                    stats.hist = self._edges[name].empty_like()
            stats.update(rows)
            if self.gradients and x.requires_grad:
                lengths, total = self._lengths, self._total
                x.register_hook(lambda g: self._grad(name, g, dim, lengths, total))
        return hook

    def _fresh(self, name: str, rows: torch.Tensor) -> LayerStats:
        return LayerStats(rows.shape[-1], rows.device, self._saturation[name])

    def _grad(self, name: str, grad: torch.Tensor, dim: int, lengths: torch.Tensor | None,
              total: int | None) -> None:
        rows = valid_rows(grad.detach(), dim, lengths, total)
        stats = self._step_bwd.get(name)
        if stats is None:
            stats = self._step_bwd[name] = LayerStats(rows.shape[-1], rows.device)
        stats.update(rows)

    def _attention_hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(
                    output[1], torch.Tensor):
                self._attention.setdefault(name, []).append(output[1].detach())
        return hook

    # -- the user's calls -----------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self, lengths: Any, max_length: int | None = None) -> Iterator[None]:
        """Forward passes inside see inputs of these lengths (in input frames), padded to
        ``max_length`` (default: the longest); padded frames are left out of every statistic."""
        lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.numel() == 0 or bool((lengths < 0).any()):
            raise InvalidInputError("lengths must be a non-empty 1-D sequence of frame "
                                    "counts >= 0")
        total = int(lengths.max()) if max_length is None else int(max_length)
        if total < 1 or total < int(lengths.max()):
            raise InvalidInputError(f"max_length {total} is shorter than the longest input")
        self._lengths, self._total = lengths, total
        try:
            yield
        finally:
            self._lengths = self._total = None

    def step(self, step: int, loss: float | torch.Tensor | None = None) -> list[HealthEvent]:
        """End of one training step: check the health rules, fold this step's statistics in,
        and every ``every`` steps log them to the run. Returns the events that fired."""
        if isinstance(loss, torch.Tensor):
            loss = float(loss.detach())
        view = StepView(step, loss, self._step_fwd, dict(reversed(self._step_bwd.items())),
                        self._grad_norms() if self._wants_grad_norms() else {},
                        self._attention_stats(), self._relu_after)
        fired = [e for rule in self.rules for e in rule.check(view)]
        for name, s in self._step_fwd.items():
            _fold(self._interval, name, s)
        for name, s in self._step_bwd.items():
            _fold(self._interval_grad, name, s)
        self._step_fwd, self._step_bwd, self._attention = {}, {}, {}
        metrics: dict[str, float] = {}
        if step % self.every == 0:
            metrics.update(self._flush(view.grad_norms, view.attention))
        for event in fired:
            self.events.append(event)
            metrics[f"health/{event.rule}"] = 1.0
            if (event.rule, event.layer) not in self._warned:
                self._warned.add((event.rule, event.layer))
                log.warning("tympan.probe: %s (rule %s, step %d, %s)", event.message,
                            event.rule, event.step, event.phase)
        if self.run is not None and metrics:
            self.run.log(metrics, step=step)
        self._next_step = step + 1
        return fired

    def _flush(self, grad_norms: dict[str, float],
               attention: dict[str, dict[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, s in self._interval.items():
            for key, value in s.summary().items():
                out[f"probe/{name}/{key}"] = value
            _fold(self.stats, name, s)
        for name, s in self._interval_grad.items():
            summary = s.summary()
            out[f"probe/{name}/grad_mean"] = summary["mean"]
            out[f"probe/{name}/grad_std"] = summary["std"]
            out[f"probe/{name}/grad_nan"] = summary["nan"]
            out[f"probe/{name}/grad_inf"] = summary["inf"]
            _fold(self.grad_stats, name, s)
        for name, norm in grad_norms.items():
            out[f"probe/{name}/grad_norm"] = norm
        for name, values in attention.items():
            for key, value in values.items():
                out[f"probe/{name}/attention_{key}"] = value
        self._interval, self._interval_grad = {}, {}
        return out

    def _wants_grad_norms(self) -> bool:
        return self.gradients or any(r.name in ("exploding_gradients", "vanishing_gradients",
                                                "non_finite") for r in self.rules)

    def _grad_norms(self) -> dict[str, float]:
        """Parameter-gradient L2 norm per layer, in backward order (last layer first)."""
        order = list(self._step_fwd) or list(self.modules)
        names, norms = [], []
        for name in reversed(order):
            grads = [p.grad for p in self.modules[name].parameters() if p.grad is not None]
            if grads:
                names.append(name)
                norms.append(torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g.detach(), dtype=torch.float64)
                                 .to(grads[0].device) for g in grads])))
        if not names:
            return {}
        return dict(zip(names, torch.stack(norms).tolist(), strict=True))

    def _attention_stats(self) -> dict[str, dict[str, float]]:
        return {name: attention_stats(maps) for name, maps in self._attention.items()}

    def snapshot(self) -> dict[str, Any]:
        """Everything seen so far (including the steps not logged yet), as JSON-able data."""
        forward = {n: s.to_dict() for n, s in _merged(self.stats, self._interval).items()}
        grads = {n: s.to_dict() for n, s in _merged(self.grad_stats,
                                                     self._interval_grad).items()}
        return {"version": 1, "layers": list(self.modules), "every": self.every,
                "forward": forward, "gradients": grads,
                "events": [e.to_dict() for e in self.events],
                "rules": {r.name: r.settings() for r in self.rules}}

    def save(self, run: Any = None) -> None:
        """Log the snapshot as artifact ``probe/stats.json`` and the events as
        ``probe/events.json`` to ``run`` (default: the probe's run)."""
        run = run if run is not None else self.run
        if run is None:
            raise InvalidInputError("probe.save() needs a run: attach(..., run=run) or "
                                    "save(run)")
        snap = self.snapshot()
        run.log_artifact(json.dumps(snap, allow_nan=False).encode(), name="probe/stats.json")
        run.log_artifact(json.dumps(snap["events"], allow_nan=False).encode(),
                         name="probe/events.json")

    def detach(self) -> None:
        """Remove every hook this probe put on the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _want_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    if len(args) <= 4:  # need_weights is the 5th positional argument of MultiheadAttention
        kwargs = {**kwargs, "need_weights": True}
    return args, kwargs


def attention_stats(maps: list[torch.Tensor], band: float = 0.1) -> dict[str, float]:
    """Mean over maps of: normalised entropy per query (1 = uniform), focus (mean max
    weight), key share (largest mean mass on one key) and diagonality (mass within
    ``band`` of the diagonal, on positions scaled to [0, 1])."""
    rows = []
    for w in maps:
        w = w.float().reshape(-1, w.shape[-2], w.shape[-1])
        q, k = w.shape[-2], w.shape[-1]
        ent = -(w * w.clamp(min=1e-12).log()).sum(-1) / math.log(k) if k > 1 else w.sum(-1) * 0
        i = torch.arange(q, device=w.device)[:, None] / max(1, q - 1)
        j = torch.arange(k, device=w.device)[None, :] / max(1, k - 1)
        near = ((i - j).abs() <= band).float()
        rows.append(torch.stack([ent.mean(), w.amax(-1).mean(), w.mean(-2).amax(-1).mean(),
                                 (w * near).sum(-1).mean()]))
    values = torch.stack(rows).mean(0).tolist()
    return dict(zip(("entropy", "focus", "key_share", "diagonality"), values, strict=True))


def _fold(into: dict[str, LayerStats], name: str, s: LayerStats) -> None:
    if name in into:
        into[name].merge(s)
    else:
        into[name] = s


def _merged(a: dict[str, LayerStats], b: dict[str, LayerStats]) -> dict[str, LayerStats]:
    out = {n: s.empty_like().merge(s) for n, s in a.items()}
    for n, s in b.items():
        _fold(out, n, s.empty_like().merge(s))
    return out


def attach(model: nn.Module, layers: str | list[str] = "auto", run: Any = None,
           every: int = 50, histogram_channels: int = 8, bins: int = 64,
           gradients: bool = False, rules: Any = "default", saturation: float = 100.0,
           histogram_range: tuple[float, float] | None = None,
           attention: str | list[str] = "auto") -> Probe:
    """Hook ``model``'s blocks (``"auto"`` or module names) and return the ``Probe``.

    Statistics are logged to ``run`` every ``every`` steps; histograms of
    ``histogram_channels`` sampled channels (``bins`` bins, edges from the first batch or
    ``histogram_range``) are updated on those steps; ``gradients`` adds output-gradient
    statistics; ``rules``: "default", None, a list of rules or {name: settings}.
    ``saturation``: |x| threshold for unbounded outputs; ``attention``: the attention
    modules to watch ("auto": every ``nn.MultiheadAttention``).
    """
    return Probe(model, layers, run, every, histogram_channels, bins, gradients, rules,
                 saturation, histogram_range, attention)
