"""Input conversion shared by the metrics: numpy arrays, lists or torch tensors in, float64 out."""

from __future__ import annotations

from typing import Any

import numpy as np

from tympan.audio.arrays import from_tensor
from tympan.errors import InvalidInputError


def as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a float64 array; a torch tensor is detached and copied to the CPU first
    (duck-typed, so torch is never imported here). Non-numeric or non-finite input is an error."""
    try:
        arr = np.asarray(from_tensor(x), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be an array of numbers ({exc})") from exc
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return arr
