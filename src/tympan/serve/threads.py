"""How many threads torch computes a batch on, chosen by the server from its own batches.

The best count depends on the machine and on the model, and no rule found it ahead of time.
On two cores, one thread per core but one (the HTTP event loop keeps a core) served a conv
model's 16 clients 1.4 times faster than two threads on a Zen 5 EPYC, and two threads served
them 1.3 times faster than one on a Zen 1 EPYC; a GRU's batches were faster on one thread on
both. Timing the model at load picks wrong too: alone in a process two threads win, under load
the loop takes a core from one of them and the other waits for it at every operation.

So without ``--threads`` the embedded server measures. Its batch worker runs each batch on one
of two counts, torch's own (one per core) or one less, and keeps each count's costs, seconds of
compute per second of audio, separately for batches of about the same size (1, 2-3, 4-7, 8-15,
16 and more: a batch's size changes what parallel threads gain): it tries each count on the
first batches of a size (``trials`` for lone requests, fewer for larger batches, whose cost
already averages over their clips: at least 2), then runs the one whose recent batches cost
less (the median of the last ``window``: one batch slowed by a neighbour does not move it) and
tries the other again every ``recheck``-th batch, so that a change of load or of neighbours on
the machine moves the choice. A batch's cost is the worker's wall time, so threads that wait
for a core or for the GIL count against their count. torch's thread count is a setting of the
thread that calls it, so the choice applies to the batch worker alone.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def size_class(size: int) -> int:
    """The batch sizes compared with each other: 1, 2-3, 4-7, 8-15, then 16 and more."""
    return 1 << (min(max(size, 1).bit_length(), 5) - 1)


@dataclass
class _Sizes:
    """One size class: its batches, and each count's recent costs (a window at least as long
    as the trials, so its length says how many trials a count has had until they are done)."""

    size: int  # the class's smallest batch
    batches: int = 0
    costs: dict[int, deque[float]] = field(default_factory=dict)

    def tried(self, count: int) -> int:
        return len(self.costs.get(count, ()))

    def cost(self, count: int) -> float:
        return statistics.median(self.costs[count])


class ThreadTuner:
    """Chooses each batch's thread count among ``counts`` by the costs ``observe`` reports.

    ``apply`` sets the count in the calling thread (``torch.set_num_threads``); it is called
    only when the count changes. ``pick`` and ``observe`` are called by one worker thread;
    ``describe`` may be called from any."""

    def __init__(self, counts: Sequence[int], *, trials: int = 8, recheck: int = 50,
                 window: int = 16, apply: Callable[[int], None] | None = None) -> None:
        counts = sorted(set(counts))
        if not counts or counts[0] < 1:
            raise ValueError(f"thread counts must be at least 1, got {counts}")
        self.counts = tuple(counts)
        self.trials = trials
        self.recheck = recheck
        self.window = max(window, trials)
        self._apply = apply or _set_torch_threads
        self._current: int | None = None
        self._sizes: dict[int, _Sizes] = {}
        self._lock = threading.Lock()

    def pick(self, size: int) -> int:
        """The count for a batch of ``size`` requests, set in the calling thread."""
        with self._lock:
            sizes = self._sizes_of(size)
            sizes.batches += 1
            count = self._choose(sizes)
        if count != self._current:
            self._apply(count)
            self._current = count
        return count

    def _choose(self, sizes: _Sizes) -> int:
        trials = self._trials(sizes)
        untried = [c for c in self.counts if sizes.tried(c) < trials]
        if untried:  # the first batches of a size: each count in turn
            return min(untried, key=sizes.tried)
        best = min(self.counts, key=sizes.cost)
        if sizes.batches % self.recheck == 0:  # now and then the other: loads change
            others = [c for c in self.counts if c != best]
            return others[(sizes.batches // self.recheck) % len(others)]
        return best

    def observe(self, size: int, count: int, seconds: float, audio_seconds: float) -> None:
        """A batch of ``size`` requests and ``audio_seconds`` of audio took ``seconds`` on
        ``count`` threads."""
        with self._lock:
            sizes = self._sizes_of(size)
            sizes.costs.setdefault(count, deque(maxlen=self.window)).append(
                seconds / max(audio_seconds, 1e-3))

    def _sizes_of(self, size: int) -> _Sizes:
        kind = size_class(size)
        return self._sizes.setdefault(kind, _Sizes(kind))

    def _trials(self, sizes: _Sizes) -> int:
        return max(2, self.trials // sizes.size)

    def chosen(self) -> dict[int, int]:
        """For each size class tried on every count: the count it runs on now."""
        with self._lock:
            return {size: min(self.counts, key=s.cost)
                    for size, s in sorted(self._sizes.items())
                    if all(s.tried(c) >= self._trials(s) for c in self.counts)}

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` shows: the counts, and the one each batch size runs on
        (``"16"``: 16 requests and more)."""
        return {"choose_from": list(self.counts),
                "chosen_by_batch_size": {str(k): v for k, v in self.chosen().items()}}


def _set_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)
