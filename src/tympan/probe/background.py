"""Background statistics: the statistics of CPU outputs computed on a worker thread while
training goes on, with the same results as computing them in the hooks.

The worker fills per-step accumulators, which ``drain()`` folds into the interval's once it
has checked that no output the worker read was modified in place (an output that was: its
layer's batches of that step are left out, counted in ``skipped``, and the layer is computed
synchronously from then on). The worker pays off only with a core to itself, so ``judge()``
pauses it when ``step()`` mostly waited for it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from tympan.probe.frames import Batch, real_frames, time_axis
from tympan.probe.histogram import HistogramSettings
from tympan.probe.stats import LayerStats, Scratch
from tympan.probe.worker import Worker

log = logging.getLogger("tympan")


@dataclass
class Item:
    """One layer output (or output gradient) handed to the background worker."""

    name: str
    grad: bool
    tensor: torch.Tensor  # detached: shares the output's storage and version counter
    version: int  # its ``_version`` when the hook ran
    dim: int
    batch: Batch | None
    histogram: bool


@dataclass(frozen=True)
class Pacing:
    """How far the worker may fall behind, and when it is paused: judged every
    ``judge_steps`` steps, it is paused for ``pause_steps`` steps when step() waited for it
    for more than ``wait_ratio`` of the CPU time it spent (then it mostly ran while the
    training thread waited)."""

    queue: int  # batches the worker may be behind before a hook waits
    held: int  # outputs held for their step's _version check before a hook drains
    judge_steps: int
    pause_steps: int
    wait_ratio: float


class BackgroundStats:
    """The probe's worker thread and what it has computed but not yet folded in.

    ``interval`` and ``interval_grad`` are the probe's accumulators since its last log (per
    layer; the hooks create each layer's before its first item); ``worker`` is None when
    the probe computes everything in its hooks."""

    def __init__(self, interval: dict[str, LayerStats], interval_grad: dict[str, LayerStats],
                 histograms: HistogramSettings, pacing: Pacing, enabled: bool) -> None:
        self._interval, self._interval_grad = interval, interval_grad
        self._histograms, self._pacing = histograms, pacing
        self.worker = Worker(self._work, pacing.queue) if enabled else None
        self.items: list[Item] = []  # handed to the worker since the last drain
        self._pending: dict[tuple[bool, str], LayerStats] = {}  # the worker's, this step
        self._scratch, self._rows_buf = Scratch(), Scratch()  # the worker's own buffers
        self._synchronous: set[tuple[bool, str]] = set()
        self._waited, self._judged, self._paused_until = 0.0, 0, -1
        self.skipped: dict[str, int] = {}  # forward batches left out, per layer
        self.skipped_grad: dict[str, int] = {}  # output-gradient batches left out

    def takes(self, x: torch.Tensor, grad: bool, name: str, step: int) -> bool:
        """Whether this output goes to the worker (GPU statistics are device kernels that do
        not hold up the training thread: no worker; inference-mode tensors have no
        ``_version`` to check: computed in the hook)."""
        return (self.worker is not None and x.device.type == "cpu" and not x.is_inference()
                and step >= self._paused_until and (grad, name) not in self._synchronous)

    def submit(self, item: Item, step: int) -> None:
        x, batch = item.tensor, item.batch
        if batch is not None and x.dim() > 2:  # a wrong batch size is an error here, now
            batch.keep(x.shape[0], x.shape[time_axis(x.dim(), item.dim % x.dim())])
        if len(self.items) >= self._pacing.held:  # many passes without step() (an eval loop)
            self.drain(step)
        self.items.append(item)
        self.worker.submit(item)  # type: ignore[union-attr]

    def _work(self, item: Item) -> None:
        """On the worker: add one output to its layer's accumulator for this step."""
        x = item.tensor
        if x._version != item.version:  # modified in place already: drain() leaves it out
            return
        key = (item.grad, item.name)
        base = (self._interval_grad if item.grad else self._interval)[item.name]
        pend = self._pending.get(key)
        if pend is None:
            pend = self._pending[key] = base.pending()
        rows, rdim, owned = real_frames(x, item.dim, item.batch, self._rows_buf)
        if (item.histogram and not item.grad and self._histograms.channels
                and pend.hist is None):
            pend.hist = (base.hist.empty_like() if base.hist is not None
                         else self._histograms.first(rows, rdim, pend.channels))
        pend.update(rows, rdim, self._scratch, histogram=item.histogram, owned=owned)

    def drain(self, step: int) -> None:
        """Wait for the worker, then fold its per-step accumulators into the interval's,
        leaving out every layer whose output changed (``_version``) after its hook ran."""
        if self.worker is None:
            return
        items, self.items = self.items, []
        started = time.perf_counter()
        try:
            self.worker.drain()  # raises the worker's error (this step's batches are lost)
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
                        step, n, "skipped_grad" if grad else "skipped")

    def judge(self, step: int) -> None:
        """Every ``judge_steps`` steps: pause the worker when step() mostly waited for it
        (no free core: computing in the hooks is then cheaper)."""
        worker, pacing = self.worker, self._pacing
        if worker is None or step < self._paused_until:
            return
        self._judged += 1
        if self._judged < pacing.judge_steps:
            return
        busy, waited = worker.busy, self._waited
        worker.busy, self._waited, self._judged = 0.0, 0.0, 0
        if busy > 0 and waited > pacing.wait_ratio * busy:
            self._paused_until = step + 1 + pacing.pause_steps
            log.info("tympan.probe: step() waited %.0f%% of the worker's CPU time over the "
                     "last %d steps (no free core?); statistics are computed in the hooks "
                     "for the next %d steps", 100 * waited / busy, pacing.judge_steps,
                     pacing.pause_steps)

    def close(self, step: int) -> None:
        """Fold in what the worker was computing (its error, if any, is raised), then stop
        its thread."""
        try:
            self.drain(step)
        finally:
            if self.worker is not None:
                self.worker.close()
