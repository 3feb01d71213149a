"""Learning-rate schedules as step -> factor functions, for ``torch.optim.lr_scheduler.LambdaLR``.

Pure arithmetic (no torch), shared by the recipes so that a study varying ``schedule``
compares the same curves in every recipe.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tympan.errors import InvalidInputError

SCHEDULES = ("constant", "cosine")


def warmup_schedule(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Linear warmup over ``warmup_steps``, then ``constant`` (factor 1) or ``cosine`` decay
    to 0 at ``total_steps``."""
    if schedule not in SCHEDULES:
        raise InvalidInputError(f"schedule must be one of {', '.join(SCHEDULES)}, "
                                f"got {schedule!r}")
    if warmup_steps < 0:
        raise InvalidInputError(f"warmup_steps must be 0 or more, got {warmup_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
