"""Array input from users' code: a torch tensor becomes numpy without tympan importing torch."""

from __future__ import annotations

from typing import Any


def from_tensor(x: Any) -> Any:
    """``x`` as a numpy array if it is a torch tensor (detached, on the CPU; dtypes numpy
    lacks, such as bfloat16, as float32), otherwise ``x`` unchanged."""
    if not (hasattr(x, "detach") and hasattr(x, "cpu")):  # duck-typed: torch stays unimported
        return x
    tensor = x.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # bfloat16 and other dtypes numpy lacks
        return tensor.float().numpy()
