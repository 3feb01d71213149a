"""Which requests of a batch share a forward pass.

A padded batch costs its longest member times its size. Where a model's cost grows with the
frames it is given (a transformer: every linear layer runs on the padded frames too, and
attention on their square), a batch of speech clips from 1 to 3 s pays for a third of padding
or more; where its cost is mostly per call (small convolution stacks, packed RNNs, which
skip the padding anyway), splitting a batch only adds calls. So the engine measures it once
at load (``splitting_pays``): it runs a spread of clip lengths as one padded batch and as
groups of similar lengths (``similar_lengths``: sorted, a new group where a clip is shorter
than ``SIMILAR`` of its group's longest, so no group pads more than a fifth), compares the
CPU time of both, and serves batches the cheaper way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

SIMILAR = 0.8  # a group's shortest clip is at least this share of its longest
GAIN = 0.85  # split batches only when the groups take at most this share of the padded pass
_TRIES = 3  # the least CPU time of this many runs of each way (a shared machine is noisy)


def equal_lengths(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped by equal length (shortest first): unpadded forward passes."""
    return [[i for i, n in enumerate(lengths) if n == length]
            for length in sorted(set(lengths))]


def similar_lengths(lengths: Sequence[int], similar: float = SIMILAR) -> list[list[int]]:
    """Indices grouped so that each group's shortest is at least ``similar`` of its longest
    (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] >= similar * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def splitting_pays(run: Callable[[list[int]], object], lengths: Sequence[int],
                   clock: Callable[[], float] = time.process_time) -> bool:
    """Whether running ``lengths`` as ``similar_lengths`` groups costs at most ``GAIN`` of
    running them as one padded batch; ``run(indices)`` runs those clips as one batch.
    ``clock``: the process's CPU time (other processes on the machine do not count)."""
    everything = list(range(len(lengths)))
    groups = similar_lengths(lengths)
    if len(groups) < 2:
        return False

    def cost(parts: list[list[int]]) -> float:
        started = clock()
        for part in parts:
            run(part)
        return clock() - started

    run(everything)  # warm up both ways (allocator, kernels' first calls)
    for part in groups:
        run(part)
    padded = min(cost([everything]) for _ in range(_TRIES))
    split = min(cost(groups) for _ in range(_TRIES))
    return split <= GAIN * padded
