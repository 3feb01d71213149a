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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.attention import ATTENTION_STATS, attention_tensor, want_weights
from tympan.probe.health import HealthEvent, Rule, StepView, make_rules
from tympan.probe.layers import (
    channel_dim,
    feeds_relu,
    kept_frames,
    output_tensor,
    resolve_layers,
    saturation_of,
)
from tympan.probe.stats import Histogram, LayerStats, Saturation, Scratch, sample_channels
from tympan.probe.worker import Worker

log = logging.getLogger("tympan")
_F64 = torch.float64
QUEUE_LIMIT = 16  # batches the background worker may be behind before a hook waits
HELD_LIMIT = 64  # outputs held for their step's _version check before a hook drains
# The worker pays off only with a core to itself: judged every JUDGE_STEPS steps, it is
# paused for PAUSE_STEPS steps when step() waited for it for more than WAIT_RATIO of the
# CPU time it spent (then it mostly ran while the training thread waited).
JUDGE_STEPS, PAUSE_STEPS, WAIT_RATIO = 50, 500, 0.5


@dataclass
class _Item:
    """One layer output (or output gradient) handed to the background worker."""

    name: str
    grad: bool
    tensor: torch.Tensor  # detached: shares the output's storage and version counter
    version: int  # its ``_version`` when the hook ran
    dim: int
    batch: _Batch | None
    histogram: bool


class _Batch:
    """The lengths of the batch a ``probe.batch()`` block sees, and what follows from them
    for each layer shape (computed once on the host, then reused)."""

    def __init__(self, lengths: torch.Tensor, total: int) -> None:
        self.lengths, self.total = lengths, total
        self._keep: dict[tuple[int, int], list[int] | None] = {}
        self._index: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def keep(self, batch: int, steps: int) -> list[int] | None:
        key = (batch, steps)
        if key not in self._keep:
            self._keep[key] = kept_frames(self.lengths, self.total, batch, steps)
        return self._keep[key]

    def index(self, keep: list[int], steps: int, device: torch.device) -> torch.Tensor:
        """Rows of a (batch * steps, channels) view that are real frames."""
        key = (len(keep), steps, device)
        if key not in self._index:
            mask = torch.arange(steps)[None, :] < torch.tensor(keep)[:, None]
            self._index[key] = mask.reshape(-1).nonzero().squeeze(1).to(device,
                                                                         non_blocking=True)
        return self._index[key]


class Probe:
    """Statistics and health events of the layers of one model. Create with ``attach()``."""

    def __init__(self, model: nn.Module, layers: str | list[str], run: Any, every: int,
                 histogram_channels: int, bins: int, gradients: bool, rules: Any,
                 saturation: float, histogram_range: tuple[float, float] | None,
                 attention: str | list[str], background: bool = True) -> None:
        if every < 1:
            raise InvalidInputError(f"every must be >= 1, got {every}")
        self.model, self.run, self.every = model, run, every
        self.histogram_channels, self.bins = histogram_channels, bins
        self.histogram_range, self.gradients = histogram_range, gradients
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
        self._batch: _Batch | None = None
        self._next_step = 0
        self._scratch, self._rows_buf = Scratch(), Scratch()  # reused by every layer
        self._grad_params: tuple[list[str], list[nn.Parameter], list[int]] | None = None
        self._wants_norms = gradients or any(r.name in _GRAD_RULES for r in self.rules)
        # Background statistics (CPU outputs): the worker fills per-step accumulators, which
        # step() folds into the interval's once it has checked that no output it read was
        # modified in place (an output that was: its layer's batches of that step are left
        # out, counted in ``skipped``, and the layer is computed synchronously from then on).
        self._worker = Worker(self._work, QUEUE_LIMIT) if background else None
        self._items: list[_Item] = []  # handed to the worker since the last drain
        self._pending: dict[tuple[bool, str], LayerStats] = {}  # worker's, per step
        self._wscratch, self._wrows_buf = Scratch(), Scratch()  # the worker's own buffers
        self._synchronous: set[tuple[bool, str]] = set()
        self._waited, self._judged, self._paused_until = 0.0, 0, -1
        self.background_steps = 0  # steps whose statistics the worker computed
        self.skipped: dict[str, int] = {}  # forward batches left out, per layer
        self.skipped_grad: dict[str, int] = {}  # output-gradient batches left out
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

    # -- what the hooks do ----------------------------------------------------------------
    def _forward_hook(self, name: str) -> Any:
        dim = channel_dim(self.modules[name])
        saturation = self._saturation[name]

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            x = output_tensor(output)
            if x is None:
                return
            batch = self._batch
            log_step = self._next_step % self.every == 0
            stats = self._interval.get(name)
            if self._background(x, False, name):
                if stats is None:  # created here: the interval keeps forward order
                    self._interval[name] = LayerStats(x.shape[dim], x.device, saturation)
                self._submit(_Item(name, False, x.detach(), x._version, dim, batch, log_step))
                self._watch_gradient(name, x, dim, batch)
                return
            rows, rdim, owned = self._rows(x.detach(), dim, batch, self._rows_buf)
            if stats is None:
                stats = self._interval[name] = LayerStats(rows.shape[rdim], rows.device,
                                                          saturation)
            if log_step and self.histogram_channels and stats.hist is None:
                flat = rows.movedim(rdim, -1).reshape(-1, stats.channels)
                stats.hist = Histogram.from_first_batch(
                    flat, sample_channels(stats.channels, self.histogram_channels),
                    self.bins, self.histogram_range)
            stats.update(rows, rdim, self._scratch, histogram=log_step, owned=owned)
            self._watch_gradient(name, x, dim, batch)
        return hook

    def _watch_gradient(self, name: str, x: torch.Tensor, dim: int,
                        batch: _Batch | None) -> None:
        if self.gradients and x.requires_grad:
            x.register_hook(lambda g: self._grad(name, g, dim, batch))

    def _background(self, x: torch.Tensor, grad: bool, name: str) -> bool:
        """Whether this CPU output goes to the worker (GPU statistics are device kernels
        that do not hold up the training thread: no worker; inference-mode tensors have no
        ``_version`` to check: computed in the hook)."""
        return (self._worker is not None and x.device.type == "cpu" and not x.is_inference()
                and self._next_step >= self._paused_until
                and (grad, name) not in self._synchronous)

    def _submit(self, item: _Item) -> None:
        x, batch = item.tensor, item.batch
        if batch is not None and x.dim() > 2:  # a wrong batch size is an error here, now
            dim = item.dim % x.dim()
            batch.keep(x.shape[0], x.shape[max(a for a in range(1, x.dim()) if a != dim)])
        if len(self._items) >= HELD_LIMIT:  # many passes without step() (an eval loop)
            self._drain()
        self._items.append(item)
        self._worker.submit(item)  # type: ignore[union-attr]

    def _work(self, item: _Item) -> None:
        """On the worker: add one output to its layer's accumulator for this step."""
        x = item.tensor
        if x._version != item.version:  # modified in place already: drain() leaves it out
            return
        key = (item.grad, item.name)
        base = (self._interval_grad if item.grad else self._interval)[item.name]
        pend = self._pending.get(key)
        if pend is None:
            pend = self._pending[key] = base.pending()
        rows, rdim, owned = self._rows(x, item.dim, item.batch, self._wrows_buf)
        if item.histogram and not item.grad and self.histogram_channels and pend.hist is None:
            if base.hist is not None:
                pend.hist = base.hist.empty_like()
            else:
                flat = rows.movedim(rdim, -1).reshape(-1, pend.channels)
                pend.hist = Histogram.from_first_batch(
                    flat, sample_channels(pend.channels, self.histogram_channels),
                    self.bins, self.histogram_range)
        pend.update(rows, rdim, self._wscratch, histogram=item.histogram, owned=owned)

    def _drain(self) -> None:
        """Wait for the worker, then fold its per-step accumulators into the interval's,
        leaving out every layer whose output changed (``_version``) after its hook ran."""
        if self._worker is None:
            return
        items, self._items = self._items, []
        started = time.perf_counter()
        try:
            self._worker.drain()  # raises the worker's error (this step's batches are lost)
        finally:
            self._waited += time.perf_counter() - started
            pending, self._pending = self._pending, {}
        changed: dict[tuple[bool, str], int] = {}
        for item in items:
            key = (item.grad, item.name)
            if item.tensor._version != item.version or key in changed:
                changed[key] = 0
        for item in items:
            if (item.grad, item.name) in changed:
                changed[(item.grad, item.name)] += 1
        for key, stats in pending.items():
            if key not in changed:
                (self._interval_grad if key[0] else self._interval)[key[1]].absorb(stats)
        for (grad, name), n in changed.items():
            skipped = self.skipped_grad if grad else self.skipped
            skipped[name] = skipped.get(name, 0) + n
            self._synchronous.add((grad, name))
            what = "output gradient" if grad else "output"
            log.warning("tympan.probe: the %s of %r was modified in place after the probe's "
                        "hook saw it (step %d); its %d batch(es) of that step are left out "
                        "of the statistics (probe.%s) and the layer's statistics are "
                        "computed on the training thread from now on", what, name,
                        self._next_step, n, "skipped_grad" if grad else "skipped")

    def _judge(self, step: int) -> None:
        """Every ``JUDGE_STEPS`` steps: pause the worker when step() mostly waited for it
        (no free core: computing in the hooks is then cheaper)."""
        worker = self._worker
        if worker is None or step < self._paused_until:
            return
        self._judged += 1
        if self._judged < JUDGE_STEPS:
            return
        busy, waited = worker.busy, self._waited
        worker.busy, self._waited, self._judged = 0.0, 0.0, 0
        if busy > 0 and waited > WAIT_RATIO * busy:
            self._paused_until = step + 1 + PAUSE_STEPS
            log.info("tympan.probe: step() waited %.0f%% of the worker's CPU time over the "
                     "last %d steps (no free core?); statistics are computed in the hooks "
                     "for the next %d steps", 100 * waited / busy, JUDGE_STEPS, PAUSE_STEPS)

    def _rows(self, x: torch.Tensor, dim: int, batch: _Batch | None,
              buf: Scratch) -> tuple[torch.Tensor, int, bool]:
        """The values of an output that belong to real frames, their channel axis, and
        whether they are a copy (in the probe's buffer, which the statistics may reuse).

        Works in the tensor's memory order (a channels-last view of a channels-first buffer
        is read as channels-first, without a copy). The time axis is the last axis other
        than channels; with lengths, the real frames of each input are copied into a reused
        buffer in one ``index_select`` or ``cat``, with sizes computed on the host (no
        device sync)."""
        if x.dim() <= 2:
            return x, dim, False
        dim = dim % x.dim()
        time = max(a for a in range(1, x.dim()) if a != dim)
        order = sorted(range(x.dim()), key=lambda a: -x.stride(a))
        xp = x.permute(order)
        if order[0] != 0 or not xp.is_contiguous():
            xp, order = x.contiguous(), list(range(x.dim()))
        cdim, tdim = order.index(dim), order.index(time)
        keep = None if batch is None else batch.keep(x.shape[0], x.shape[time])
        if keep is None:
            return xp, cdim, False
        shape = list(xp.shape)
        del shape[0]
        shape[tdim - 1] = sum(keep)
        out = buf.like(xp, tuple(shape))
        if xp.dim() == 3 and tdim == 1:  # (batch, time, channels) in memory: rows
            flat = xp.reshape(-1, xp.shape[2])
            torch.index_select(flat, 0, batch.index(keep, xp.shape[1], x.device),  # type: ignore[union-attr]
                               out=out)
        else:
            parts = [xp[b].narrow(tdim - 1, 0, k) for b, k in enumerate(keep) if k]
            if not parts:
                return out, cdim - 1, True
            torch.cat(parts, dim=tdim - 1, out=out)
        return out, cdim - 1, True

    def _grad(self, name: str, grad: torch.Tensor, dim: int, batch: _Batch | None) -> None:
        grad = grad.detach()
        stats = self._interval_grad.get(name)
        if self._background(grad, True, name):
            if stats is None:
                self._interval_grad[name] = LayerStats(grad.shape[dim], grad.device)
            self._submit(_Item(name, True, grad, grad._version, dim, batch, False))
            return
        rows, rdim, owned = self._rows(grad, dim, batch, self._rows_buf)
        if stats is None:
            stats = self._interval_grad[name] = LayerStats(rows.shape[rdim], rows.device)
        stats.update(rows, rdim, self._scratch, histogram=False, owned=owned)

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
        lengths = torch.as_tensor(lengths).detach().to("cpu", torch.int64)
        if lengths.dim() != 1 or lengths.numel() == 0 or bool((lengths < 0).any()):
            raise InvalidInputError("lengths must be a non-empty 1-D sequence of frame "
                                    "counts >= 0")
        longest = int(lengths.max())
        total = longest if max_length is None else int(max_length)
        if total < 1 or total < longest:
            raise InvalidInputError(f"max_length {total} is shorter than the longest input")
        self._batch = _Batch(lengths, total)
        try:
            yield
        finally:
            self._batch = None

    def step(self, step: int, loss: float | torch.Tensor | None = None) -> list[HealthEvent]:
        """End of one training step: check the health rules (one read from the device for
        all of them), and every ``every`` steps log the statistics to the run. Returns the
        events that fired."""
        if self._items:
            self.background_steps += 1
        self._drain()
        self._judge(step)
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
            norm_names, norms = self._grad_norms()
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
                grad_norms[name] = self._exact_norm(name)
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
        self._seen_bad, self._seen_bad_grad = {}, {}
        return out

    def _grad_norms(self) -> tuple[list[str], torch.Tensor | None]:
        """Parameter-gradient L2 norm per layer, in backward order (last layer first), as
        one device tensor (float64), from one fused norm over every gradient."""
        if self._grad_params is None:
            order = list(self._interval) or list(self.modules)
            names, params, owner = [], [], []
            for name in reversed(order):
                own = [p for p in self.modules[name].parameters() if p.requires_grad]
                if own:
                    names.append(name)
                    params += own
                    owner += [len(names) - 1] * len(own)
            self._grad_params = (names, params, owner)
        names, params, owner = self._grad_params
        present = [i for i, p in enumerate(params) if p.grad is not None]
        if not present:
            return [], None
        grads = [params[i].grad.detach() for i in present]  # type: ignore[union-attr]
        norms = torch.stack(torch._foreach_norm(grads))  # one device: see _read
        squares = norms.to(_F64)
        squares = squares * squares
        groups = sorted({owner[i] for i in present})
        if len(present) == len(params):
            seg = self._segments(grads[0].device, owner)
        else:
            where = {g: k for k, g in enumerate(groups)}
            seg = torch.tensor([where[owner[i]] for i in present], device=grads[0].device)
        norms = torch.zeros(len(groups), dtype=_F64, device=grads[0].device)
        return [names[g] for g in groups], norms.index_add_(0, seg, squares).sqrt_()

    def _exact_norm(self, name: str) -> float:
        grads = [p.grad.detach().to(_F64) for p in self.modules[name].parameters()
                 if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))

    def _segments(self, device: torch.device, owner: list[int]) -> torch.Tensor:
        cached = getattr(self, "_seg", None)
        if cached is None or cached.device != device:
            cached = self._seg = torch.tensor(owner, device=device)
        return cached

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
        self._drain()
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
        run.log_artifact(json.dumps(snap, allow_nan=False).encode(), name="probe/stats.json")
        run.log_artifact(json.dumps(snap["events"], allow_nan=False).encode(),
                         name="probe/events.json")

    def detach(self) -> None:
        """Remove every hook this probe put on the model and stop its worker thread (after
        folding in what it was computing; its error, if any, is raised)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        try:
            self._drain()
        finally:
            if self._worker is not None:
                self._worker.close()


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


def attach(model: nn.Module, layers: str | list[str] = "auto", run: Any = None,
           every: int = 50, histogram_channels: int = 8, bins: int = 64,
           gradients: bool = False, rules: Any = "default", saturation: float = 100.0,
           histogram_range: tuple[float, float] | None = None,
           attention: str | list[str] = "auto", background: bool = True) -> Probe:
    """Hook ``model``'s blocks (``"auto"`` or module names) and return the ``Probe``.

    Statistics are logged to ``run`` every ``every`` steps; histograms of
    ``histogram_channels`` sampled channels (``bins`` bins, edges from the first batch or
    ``histogram_range``) are updated on those steps; ``gradients`` adds output-gradient
    statistics; ``rules``: "default", None, a list of rules or {name: settings}.
    ``saturation``: |x| threshold for unbounded outputs; ``attention``: the attention
    modules to watch ("auto": every ``nn.MultiheadAttention``); ``background``: compute
    the statistics of CPU outputs on a worker thread while training goes on (``step()``,
    ``snapshot()`` and ``detach()`` wait for it: results are the same as with False).
    """
    return Probe(model, layers, run, every, histogram_channels, bins, gradients, rules,
                 saturation, histogram_range, attention, background)
