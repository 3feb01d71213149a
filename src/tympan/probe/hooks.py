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
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.attention import ATTENTION_STATS, attention_tensor, want_weights
from tympan.probe.background import BackgroundStats, Item, Pacing
from tympan.probe.frames import Batch, real_frames
from tympan.probe.gradients import GradientNorms
from tympan.probe.health import HealthEvent, Rule, StepView, make_rules
from tympan.probe.histogram import HistogramSettings
from tympan.probe.layers import (
    channel_dim,
    feeds_relu,
    output_tensor,
    resolve_layers,
    saturation_of,
)
from tympan.probe.stats import LayerStats, Saturation, Scratch
from tympan.records.probe import EVENTS, STATS, layer_metric

if TYPE_CHECKING:
    from tympan.probe.worker import Worker

log = logging.getLogger("tympan")
_F64 = torch.float64
# How the background worker is paced (see ``background.Pacing``), read at attach().
QUEUE_LIMIT = 16  # batches the background worker may be behind before a hook waits
HELD_LIMIT = 64  # outputs held for their step's _version check before a hook drains
JUDGE_STEPS, PAUSE_STEPS, WAIT_RATIO = 50, 500, 0.5
STATS_EVERY = 10  # the default: statistics from every 10th step's batches (see attach())


class Probe:
    """Statistics and health events of the layers of one model. Create with ``attach()``."""

    def __init__(self, model: nn.Module, layers: str | list[str], run: Any, every: int,
                 histogram_channels: int, bins: int, gradients: bool, rules: Any,
                 saturation: float, histogram_range: tuple[float, float] | None,
                 attention: str | list[str], background: bool | str = "auto",
                 stats_every: int = STATS_EVERY) -> None:
        background = resolve_background(background)
        if every < 1:
            raise InvalidInputError(f"every must be >= 1, got {every}")
        if not isinstance(stats_every, int) or stats_every < 1:
            raise InvalidInputError(f"stats_every must be an integer >= 1, got {stats_every!r}")
        self.model, self.run, self.every, self.stats_every = model, run, every, stats_every
        self.histogram_channels, self.bins = histogram_channels, bins
        self.histogram_range, self.gradients = histogram_range, gradients
        self._histograms = HistogramSettings(histogram_channels, bins, histogram_range)
        self.modules = resolve_layers(model, layers)
        self.rules: list[Rule] = make_rules(rules)
        self.stats: dict[str, LayerStats] = {}  # everything logged, per layer
        self.grad_stats: dict[str, LayerStats] = {}
        self.events: list[HealthEvent] = []
        self._saturation = {n: Saturation(*saturation_of(model, n, saturation))
                            for n in self.modules}
        self._relu_after = {n for n in self.modules if feeds_relu(model, n)}
        # Since the last log, updated in place by the hooks: forward order / backward order.
        self._interval: dict[str, LayerStats] = {}
        self._interval_grad: dict[str, LayerStats] = {}
        self._seen_bad: dict[str, float] = {}  # NaN+Inf counts read at the previous step
        self._seen_bad_grad: dict[str, float] = {}
        self._attention: dict[str, list[torch.Tensor]] = {}
        self._warned: set[tuple[str, str | None]] = set()
        self._batch: Batch | None = None
        self._paused = False  # inside paused(): the hooks see nothing
        self._next_step = 0
        self._scratch, self._rows_buf = Scratch(), Scratch()  # reused by every layer
        self._norms = GradientNorms(self.modules)
        self._wants_norms = gradients or any(r.name in _GRAD_RULES for r in self.rules)
        self._background = BackgroundStats(
            self._interval, self._interval_grad, self._histograms,
            Pacing(QUEUE_LIMIT, HELD_LIMIT, JUDGE_STEPS, PAUSE_STEPS, WAIT_RATIO), background)
        self.background_steps = 0  # steps whose statistics the worker computed
        self._handles: list[Any] = []
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        names = attention if attention != "auto" else [
            n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
        self.attention_layers = resolve_layers(model, names) if names else {}
        for name, module in self.attention_layers.items():
            if isinstance(module, nn.MultiheadAttention):
                self._handles.append(module.register_forward_pre_hook(
                    want_weights, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._attention_hook(name)))

    @property
    def skipped(self) -> dict[str, int]:
        """Forward batches left out of the statistics, per layer: their output was modified
        in place before the worker read it."""
        return self._background.skipped

    @property
    def skipped_grad(self) -> dict[str, int]:
        """Output-gradient batches left out of the statistics, per layer (as ``skipped``)."""
        return self._background.skipped_grad

    @property
    def _worker(self) -> Worker | None:
        """The worker thread (None without ``background``), for the tests and benchmarks."""
        return self._background.worker

    @property
    def _items(self) -> list[Item]:
        """The outputs handed to the worker since the last drain, for the tests."""
        return self._background.items

    # -- what the hooks do ----------------------------------------------------------------
    def _forward_hook(self, name: str) -> Any:
        dim = channel_dim(self.modules[name])
        saturation = self._saturation[name]

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            x = output_tensor(output)
            if x is None or self._paused:
                return
            batch = self._batch
            log_step = self._next_step % self.every == 0
            stats = self._interval.get(name)
            if stats is not None and not self._sampled(log_step):
                self._non_finite_only(stats, x.detach(), dim, batch)
                self._watch_gradient(name, x, dim, batch)
                return
            if self._background.takes(x, False, name, self._next_step):
                if stats is None:  # created here: the interval keeps forward order
                    self._interval[name] = LayerStats(x.shape[dim], x.device, saturation)
                self._background.submit(
                    Item(name, False, x.detach(), x._version, dim, batch, log_step),
                    self._next_step)
                self._watch_gradient(name, x, dim, batch)
                return
            rows, rdim, owned = real_frames(x.detach(), dim, batch, self._rows_buf)
            if stats is None:
                stats = self._interval[name] = LayerStats(rows.shape[rdim], rows.device,
                                                          saturation)
            if log_step and self.histogram_channels and stats.hist is None:
                stats.hist = self._histograms.first(rows, rdim, stats.channels)
            stats.update(rows, rdim, self._scratch, histogram=log_step, owned=owned)
            self._watch_gradient(name, x, dim, batch)
        return hook

    def _sampled(self, log_step: bool) -> bool:
        """Whether this step's batches add to the statistics: every ``stats_every``-th step
        and every logging step (the others only count their NaN/Inf values)."""
        return log_step or self._next_step % self.stats_every == 0

    def _non_finite_only(self, stats: LayerStats, x: torch.Tensor, dim: int,
                         batch: Batch | None) -> None:
        """A batch of a step that is not sampled: only its NaN and Inf values are counted
        (the ``non_finite`` rule names the exact step). On the CPU one sum finds a batch
        that has none (reading it back is free there); the rest count their real frames."""
        if x.device.type == "cpu" and math.isfinite(float(x.sum())):
            return
        rows, _, _ = real_frames(x, dim, batch, self._rows_buf)
        stats.add_non_finite(rows)

    def _watch_gradient(self, name: str, x: torch.Tensor, dim: int,
                        batch: Batch | None) -> None:
        if self.gradients and x.requires_grad:
            x.register_hook(lambda g: self._grad(name, g, dim, batch))

    def _grad(self, name: str, grad: torch.Tensor, dim: int, batch: Batch | None) -> None:
        grad = grad.detach()
        stats = self._interval_grad.get(name)
        if stats is not None and not self._sampled(False):
            self._non_finite_only(stats, grad, dim, batch)
            return
        if self._background.takes(grad, True, name, self._next_step):
            if stats is None:
                self._interval_grad[name] = LayerStats(grad.shape[dim], grad.device)
            self._background.submit(Item(name, True, grad, grad._version, dim, batch, False),
                                    self._next_step)
            return
        rows, rdim, owned = real_frames(grad, dim, batch, self._rows_buf)
        if stats is None:
            stats = self._interval_grad[name] = LayerStats(rows.shape[rdim], rows.device)
        stats.update(rows, rdim, self._scratch, histogram=False, owned=owned)

    def _attention_hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, (tuple, list)) or len(output) < 2 or self._paused:
                return
            maps = output[1]
            if isinstance(maps, torch.Tensor):
                self._attention.setdefault(name, []).append(maps.detach())
            elif (isinstance(maps, (tuple, list)) and maps
                  and all(isinstance(m, torch.Tensor) for m in maps)):
                # One map per utterance, cropped to its lengths (a TTS decoder's alignments):
                # each is judged on its own positions, not on the batch's padded ones.
                self._attention.setdefault(name, []).extend(m.detach() for m in maps)
        return hook

    # -- the user's calls -----------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self, lengths: Any, max_length: int | None = None) -> Iterator[None]:
        """Forward passes inside see inputs of these lengths (in input frames), padded to
        ``max_length`` (default: the longest); padded frames are left out of every statistic."""
        lengths = torch.as_tensor(lengths).detach().to("cpu", torch.int64)
        if lengths.dim() != 1 or lengths.numel() == 0 or bool((lengths < 0).any()):
            raise InvalidInputError("lengths must be a non-empty 1-D sequence of frame "
                                    "counts >= 0")
        longest = int(lengths.max())
        total = longest if max_length is None else int(max_length)
        if total < 1 or total < longest:
            raise InvalidInputError(f"max_length {total} is shorter than the longest input")
        self._batch = Batch(lengths, total)
        try:
            yield
        finally:
            self._batch = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Forward passes inside are not seen: an evaluation or a synthesis between training
        steps adds nothing to the statistics or to the next step's attention maps."""
        before, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = before

    def step(self, step: int, loss: float | torch.Tensor | None = None) -> list[HealthEvent]:
        """End of one training step: check the health rules (one read from the device for
        all of them), and every ``every`` steps log the statistics to the run. Returns the
        events that fired."""
        if self._background.items:
            self.background_steps += 1
        self._background.drain(self._next_step)
        self._background.judge(step)
        view = self._read(step, loss)
        fired = [e for rule in self.rules for e in rule.check(view)]
        metrics: dict[str, float] = {}
        if step % self.every == 0:
            metrics.update(self._flush(view.grad_norms, view.attention))
        self._attention = {}
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

    def _read(self, step: int, loss: float | torch.Tensor | None) -> StepView:
        """This step's view for the rules, with every scalar they need read in one go."""
        fwd, bwd = list(self._interval.items()), list(self._interval_grad.items())
        log_step = step % self.every == 0
        wanted = bool(self.rules) or log_step
        parts: list[torch.Tensor] = []
        if self.rules:
            parts += [s.nan + s.inf for _, s in fwd] + [s.nan + s.inf for _, s in bwd]
        norm_names: list[str] = []
        if wanted and self._wants_norms:
            norm_names, norms = self._norms.read(list(self._interval))
            if norms is not None:
                parts.append(norms)
        att_names = list(self._attention) if wanted else []
        parts += [attention_tensor(self._attention[n]) for n in att_names]
        if isinstance(loss, torch.Tensor):
            if self.rules:
                parts.append(loss.detach().reshape(-1)[:1])
            else:
                loss = None  # no rule reads it: no need to wait for the device
        values: list[float] = []
        if parts:
            device = parts[0].device
            values = torch.cat([p.reshape(-1).to(device, _F64) for p in parts]).tolist()
        if isinstance(loss, torch.Tensor):
            loss = values.pop()
        at = 0
        nonfinite, grad_nonfinite = {}, {}
        if self.rules:
            for named, seen, out in ((fwd, self._seen_bad, nonfinite),
                                     (bwd, self._seen_bad_grad, grad_nonfinite)):
                for name, _ in named:
                    out[name] = values[at] - seen.get(name, 0.0)
                    seen[name] = values[at]
                    at += 1
        grad_norms = dict(zip(norm_names, values[at:at + len(norm_names)], strict=True))
        for name, norm in grad_norms.items():
            if not math.isfinite(norm):  # float32 overflow, or a real NaN/Inf: exactly
                grad_norms[name] = self._norms.exact(name)
        at += len(norm_names)
        attention = {}
        for name in att_names:
            attention[name] = dict(zip(ATTENTION_STATS, values[at:at + 4], strict=True))
            at += 4
        return StepView(step, loss, nonfinite, grad_nonfinite, grad_norms, attention,
                        self._relu_after, self._counters)

    def _flush(self, grad_norms: dict[str, float],
               attention: dict[str, dict[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, s in self._interval.items():
            for key, value in s.summary().items():
                out[layer_metric(name, key)] = value
            _fold(self.stats, name, s)
        for name, s in self._interval_grad.items():
            summary = s.summary()
            out[layer_metric(name, "grad_mean")] = summary["mean"]
            out[layer_metric(name, "grad_std")] = summary["std"]
            out[layer_metric(name, "grad_nan")] = summary["nan"]
            out[layer_metric(name, "grad_inf")] = summary["inf"]
            _fold(self.grad_stats, name, s)
        for name, norm in grad_norms.items():
            out[layer_metric(name, "grad_norm")] = norm
        for name, values in attention.items():
            for key, value in values.items():
                out[layer_metric(name, f"attention_{key}")] = value
        self._seen_bad, self._seen_bad_grad = {}, {}
        return out

    def _counters(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each layer's additive counters since attach (count, zeros, positive, saturated),
        as fresh tensors (forward order)."""
        out = {}
        for name, s in self._interval.items():
            now = s.counters()
            logged = self.stats.get(name)
            if logged is None:
                out[name] = {k: v.clone() for k, v in now.items()}
            else:
                before = logged.counters()
                out[name] = {k: v + before[k].to(v.device) for k, v in now.items()}
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything seen so far (including the steps not logged yet), as JSON-able data."""
        self._background.drain(self._next_step)
        forward = {n: s.to_dict() for n, s in _merged(self.stats, self._interval).items()}
        grads = {n: s.to_dict() for n, s in _merged(self.grad_stats,
                                                     self._interval_grad).items()}
        return {"version": 1, "layers": list(self.modules), "every": self.every,
                "forward": forward, "gradients": grads,
                "events": [e.to_dict() for e in self.events],
                "skipped": {"forward": dict(self.skipped), "gradients": dict(self.skipped_grad)},
                "rules": {r.name: r.settings() for r in self.rules}}

    def save(self, run: Any = None) -> None:
        """Log the snapshot as artifact ``probe/stats.json`` and the events as
        ``probe/events.json`` to ``run`` (default: the probe's run)."""
        run = run if run is not None else self.run
        if run is None:
            raise InvalidInputError("probe.save() needs a run: attach(..., run=run) or "
                                    "save(run)")
        snap = self.snapshot()
        run.log_artifact(json.dumps(snap, allow_nan=False).encode(), name=STATS)
        run.log_artifact(json.dumps(snap["events"], allow_nan=False).encode(),
                         name=EVENTS)

    def detach(self) -> None:
        """Remove every hook this probe put on the model and stop its worker thread (after
        folding in what it was computing; its error, if any, is raised)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._background.close(self._next_step)


_GRAD_RULES = ("exploding_gradients", "vanishing_gradients", "non_finite")


def _fold(into: dict[str, LayerStats], name: str, s: LayerStats) -> None:
    """Merge the interval ``s`` into ``into[name]`` and empty it (kept for the next one)."""
    if name in into:
        into[name].merge(s)
    else:
        into[name] = s.copy()
    s.reset()


def _merged(a: dict[str, LayerStats], b: dict[str, LayerStats]) -> dict[str, LayerStats]:
    out = {n: s.copy() for n, s in a.items()}
    for n, s in b.items():
        if n in out:
            out[n].merge(s)
        else:
            out[n] = s.copy()
    return out


def free_cores() -> int:
    """Cores this process may run on that torch's intra-op threads leave free."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores - torch.get_num_threads()


def resolve_background(background: bool | str) -> bool:
    """``background="auto"``: the worker only pays off on a core of its own. With torch's
    default thread count every core already runs the training step's kernels, and a worker
    thread fights them (measured: +156% step time on a conv+GRU model on 2 cores, against
    +7% computing in the hooks), so "auto" uses it only when torch leaves a core free.
    Outputs on a GPU never use it (their statistics are device kernels the training thread
    only queues)."""
    if background == "auto":
        return free_cores() >= 1
    if not isinstance(background, bool):
        raise InvalidInputError(f"background must be True, False or 'auto', got "
                                f"{background!r}")
    return background


def attach(model: nn.Module, layers: str | list[str] = "auto", run: Any = None,
           every: int = 50, histogram_channels: int = 8, bins: int = 64,
           gradients: bool = False, rules: Any = "default", saturation: float = 100.0,
           histogram_range: tuple[float, float] | None = None,
           attention: str | list[str] = "auto", background: bool | str = "auto",
           stats_every: int = STATS_EVERY) -> Probe:
    """Hook ``model``'s blocks (``"auto"`` or module names) and return the ``Probe``.

    Statistics are logged to ``run`` every ``every`` steps; histograms of
    ``histogram_channels`` sampled channels (``bins`` bins, edges from the first batch or
    ``histogram_range``) are updated on those steps; ``gradients`` adds output-gradient
    statistics; ``rules``: "default", None, a list of rules or {name: settings}.
    ``saturation``: |x| threshold for unbounded outputs; ``attention``: the attention
    modules to watch ("auto": every ``nn.MultiheadAttention``); ``background``: compute
    the statistics of CPU outputs on a worker thread while training goes on (``step()``,
    ``snapshot()`` and ``detach()`` wait for it: results are the same as with False);
    ``"auto"`` (default): only when a core is free of torch's intra-op threads (see
    ``resolve_background``); ``stats_every``: the statistics come from the batches of
    every ``stats_every``-th step and of every logging step, the other steps' batches
    are only checked for NaN/Inf (one sum on the CPU), so ``non_finite`` still names the
    exact step and layer (statistics of every batch cost 5 to 10% of a small conv
    model's step on the CPU; see docs/probe.md).
    """
    return Probe(model, layers, run, every, histogram_channels, bins, gradients, rules,
                 saturation, histogram_range, attention, background, stats_every)
