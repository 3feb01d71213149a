"""How run writes travel between a client and a tympan server as JSON.

Metric arrays go as base64 of their little-endian bytes (int64 steps, float64 values and
times), exactly the bytes a chunk row stores. JSON has no NaN or infinity, so non-finite
numbers go as the strings ``"nan"``, ``"inf"`` and ``"-inf"``. The client encodes with these
functions and the server decodes with them, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import asdict
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError
from tympan.store.metrics import Chunk
from tympan.store.summaries import Summary

STEP = np.dtype("<i8")
F64 = np.dtype("<f8")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "nan" if value != value else ("inf" if value > 0 else "-inf")


def unnumber(value: float | int | str | None) -> float | None:
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    if value.lower() in _NON_FINITE:
        return _NON_FINITE[value.lower()]
    raise InvalidInputError(f"{value!r} is not a number (non-finite numbers are "
                            "\"nan\", \"inf\" or \"-inf\")")


def array(values: np.ndarray, dtype: np.dtype) -> str:
    return base64.b64encode(values.astype(dtype, copy=False).tobytes()).decode("ascii")


def unarray(text: str, dtype: np.dtype, what: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{what} is not base64") from None
    if len(raw) % dtype.itemsize:
        raise InvalidInputError(f"{what} holds {len(raw)} bytes, not a whole number of "
                                f"{dtype.itemsize}-byte values")
    return np.frombuffer(raw, dtype=dtype)


def summary(s: Summary) -> dict[str, Any]:
    out = asdict(s)
    for name in ("last", "min", "max"):
        out[name] = number(out[name])
    return out


def unsummary(data: dict[str, Any]) -> Summary:
    values = dict(data)
    for name in ("last", "min", "max"):
        values[name] = unnumber(values.get(name))
    return Summary(**values)


def chunk(c: Chunk) -> dict[str, Any]:
    return {"key": c.key, "seq": c.seq, "steps": array(c.steps, STEP),
            "values": array(c.values, F64), "times": array(c.times, F64)}


def unchunk(run_id: str, key: str, seq: int, steps: str, values: str, times: str) -> Chunk:
    what = f"metric {key!r} chunk {seq}"
    step_array = unarray(steps, STEP, f"{what}: steps")
    value_array = unarray(values, F64, f"{what}: values")
    time_array = unarray(times, F64, f"{what}: times")
    n = len(step_array)
    if n == 0 or len(value_array) != n or len(time_array) != n:
        raise InvalidInputError(
            f"{what}: steps, values and times must hold the same number (>= 1) of points, "
            f"got {n}, {len(value_array)} and {len(time_array)}"
        )
    if step_array.min() < 0 or step_array.max() >= 2**62:
        raise InvalidInputError(f"{what}: steps must be between 0 and 2**62")
    return Chunk(run_id, key, seq, step_array, value_array, time_array)
