"""Argument checks shared by the augmentations: one place for the messages users see."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tympan.errors import AudioError, InvalidInputError


def checked_audio(wav: Any, name: str = "wav") -> np.ndarray:
    """``wav`` as a float ndarray of shape (frames,) or (channels, frames), finite, non-empty."""
    if not isinstance(wav, np.ndarray):
        raise AudioError(f"{name} must be a numpy array, got {type(wav).__name__}")
    if wav.ndim not in (1, 2):
        raise AudioError(f"{name} must be (frames,) or (channels, frames), got shape {wav.shape}")
    if wav.dtype.kind != "f":
        raise AudioError(f"{name} must hold floats (convert ints with wav / 32768.0), got "
                         f"dtype {wav.dtype}")
    if wav.size == 0:
        raise AudioError(f"{name} is empty (shape {wav.shape}): there is no audio to augment")
    if not np.isfinite(wav).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    return wav


def as_channels(wav: np.ndarray) -> np.ndarray:
    """float64 (channels, frames) view/copy, so every transform handles one layout."""
    return np.atleast_2d(wav).astype(np.float64, copy=False)


def like(out: np.ndarray, wav: np.ndarray) -> np.ndarray:
    """``out`` (channels, frames') back in ``wav``'s layout and dtype."""
    out = out[0] if wav.ndim == 1 else out
    return np.ascontiguousarray(out, dtype=wav.dtype)


def checked_rate(sr: Any, name: str = "sr") -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"{name} must be a positive integer number of Hz, got {sr!r}")
    return int(sr)


def checked_number(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if positive and v <= 0:
        raise InvalidInputError(f"{name} must be positive, got {value!r}")
    return v


def generator(rng: Any) -> np.random.Generator:
    """A Generator passes through; an int seeds a new one. Nothing else: every augmentation
    must be reproducible, so there is no unseeded default."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise InvalidInputError(f"rng must be a numpy Generator or a non-negative int seed, "
                            f"got {rng!r}")
