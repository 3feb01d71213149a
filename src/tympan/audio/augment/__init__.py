"""Deterministic augmentations and distribution shifts for speech: noise at an exact SNR,
reverberation, speed perturbation, clipping and band limiting.

Every function takes float audio ``(frames,)`` or ``(channels, frames)`` and returns the
same layout and dtype (speed perturbation changes the number of frames, nothing else).
Random ones take ``rng``, a ``numpy.random.Generator`` or an int seed, and never draw from
global state: the same seed gives the same samples. Bad parameters raise
:class:`~tympan.errors.InvalidInputError` (bad audio: its subclass ``AudioError``) naming
the parameter.
"""

from __future__ import annotations

from tympan.audio.augment.channel import band_limit, clip
from tympan.audio.augment.noise import add_noise, pink_noise
from tympan.audio.augment.reverb import reverb, synthetic_rir
from tympan.audio.augment.speed import speed_perturb

__all__ = [
    "add_noise",
    "band_limit",
    "clip",
    "pink_noise",
    "reverb",
    "speed_perturb",
    "synthetic_rir",
]
