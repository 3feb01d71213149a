"""Seed every random number generator a training script is likely to draw from.

``seed_everything`` only seeds; recording the seed with the run is the tracking layer's job.
"""

from __future__ import annotations

import importlib.util
import random

from tympan.errors import InvalidInputError

__all__ = ["MAX_SEED", "seed_everything"]

# numpy's legacy global RNG takes seeds in [0, 2**32 - 1]; one range for all keeps a seed
# valid for every generator.
MAX_SEED = 2**32 - 1


def seed_everything(seed: int) -> int:
    """Seed ``random``, numpy's global RNG and torch (CPU and CUDA) with ``seed``.

    numpy and torch are seeded only when installed. Returns the seed.
    Raises InvalidInputError unless ``seed`` is an int in [0, 2**32 - 1].
    """
    # bool is an int subclass, but seed_everything(True) is almost certainly a mistake.
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidInputError(
            f"seed must be an int in [0, {MAX_SEED}], got {seed!r} ({type(seed).__name__}); "
            "pass a whole number such as 0 or 1234"
        )
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInputError(
            f"seed must be an int in [0, {MAX_SEED}], got {seed}; pick a seed in that range"
        )
    seed = int(seed)  # an int subclass (e.g. an IntEnum) becomes a plain int

    random.seed(seed)
    _seed_numpy(seed)
    _seed_torch(seed)
    return seed


def _seed_numpy(seed: int) -> None:
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(seed)


def _seed_torch(seed: int) -> None:
    # find_spec first, so that a missing torch costs nothing; the user asked for seeding,
    # so importing an installed torch here is expected.
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
