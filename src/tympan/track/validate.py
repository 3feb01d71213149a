"""Checks on what users log, run in the caller's thread so mistakes surface at the call site.

The common case (str keys already seen, int/float values) costs a set lookup and a type check
per value; everything else goes through the slower paths below.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any

from tympan.errors import InvalidInputError, MetricKeyError, MetricValueError

KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@\-]{0,199}")
KEY_RULE = (
    "keys are 1-200 characters of letters, digits and _ . : / @ -, "
    "starting with a letter, digit or _"
)


def check_key(key: object, what: str = "metric") -> str:
    if not isinstance(key, str):
        raise MetricKeyError(f"{what} key {key!r} must be a str, got {type(key).__name__}")
    if not KEY_PATTERN.fullmatch(key):
        raise MetricKeyError(f"invalid {what} key {key!r}: {KEY_RULE}")
    return key


def to_number(key: str, value: object) -> float | int:
    """A metric value as a Python number; TypeError (MetricValueError) names the key if not."""
    if isinstance(value, bool | int | float):
        return value  # type: ignore[return-value]
    item = getattr(value, "item", None)  # numpy scalars/0-d arrays, torch tensors
    if item is not None and getattr(value, "ndim", 0) == 0 and _is_numeric_dtype(value):
        result = item()
        if isinstance(result, bool | int | float):
            return result
    shape = getattr(value, "shape", None)
    detail = f" with shape {tuple(shape)}" if shape is not None and len(shape) else ""
    raise MetricValueError(
        f"metric {key!r} must be a number (int, float, numpy scalar or 0-d tensor), "
        f"got {type(value).__name__}{detail}: {_short(value)}"
    )


def _is_numeric_dtype(value: object) -> bool:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return True
    kind = getattr(dtype, "kind", None)
    if kind is not None:  # numpy
        return kind in "biuf"
    return not (getattr(dtype, "is_complex", False))  # torch dtypes


def check_step(step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        index = getattr(step, "__index__", None)
        if index is None or isinstance(step, bool):
            raise InvalidInputError(f"step must be an int, got {type(step).__name__} {step!r}")
        step = index()
    if not 0 <= step < 2**62:
        raise InvalidInputError(f"step must be between 0 and 2**62, got {step}")
    return step  # type: ignore[return-value]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_config(config: object) -> dict[str, Any]:
    """A run's config as a JSON-ready dict (from a dict, dataclass, Namespace or pydantic model)."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif hasattr(config, "model_dump"):
        config = config.model_dump()
    elif not isinstance(config, Mapping) and hasattr(config, "__dict__"):
        config = vars(config)  # argparse.Namespace
    if not isinstance(config, Mapping):
        raise InvalidInputError(
            f"config must be a dict, dataclass, argparse.Namespace or pydantic model, "
            f"got {type(config).__name__}"
        )
    return {str(k): _jsonable(v, str(k)) for k, v in config.items()}


def _jsonable(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v, path) for v in value), key=repr)
    if isinstance(value, Enum):
        return _jsonable(value.value, path)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), path)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return _jsonable(value.item(), path)
    raise InvalidInputError(
        f"config value at {path!r} is a {type(value).__name__}, which cannot be stored as JSON: "
        "use numbers, strings, booleans, lists and dicts"
    )


def check_name(value: object, what: str, limit: int = 200) -> str:
    """A project, run or tag name: a non-blank str of at most ``limit`` characters, no NUL
    (PostgreSQL's text columns cannot hold one, and no name needs it)."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInputError(f"{what} must be a non-empty str (<= {limit} chars), "
                                f"got {_short(value)}")
    return check_text(value, what)


def check_text(value: str, what: str) -> str:
    """Free text (a note, a caption): anything but NUL."""
    if "\x00" in value:
        raise InvalidInputError(f"{what} {_short(value)} contains a NUL character (\\x00), "
                                "which cannot be stored: remove it")
    return value


def check_tags(tags: object) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    out = []
    for tag in tags:  # type: ignore[union-attr]
        check_name(tag, "tag", limit=100)
        if tag not in out:
            out.append(tag)
    return out

