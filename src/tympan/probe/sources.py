"""The audio that ``tympan probe`` feeds a model: a split of the run's data, or audio files,
optionally shifted (noise, clipping, speed, reverb) to see how the model's layers react.

Data: ``split:NAME[,NAME...]`` (the recipe's splits, e.g. ``split:valid,test``), an audio
file, or a folder of audio files (.wav, .flac, .ogg; sorted by name; ids are file names).
Shifts (applied in order, seeded): ``white:SNR_DB``, ``pink:SNR_DB``, ``babble:SNR_DB``
(the other inputs of the set as talkers), ``clip:LEVEL`` (hard clipping at that amplitude),
``speed:FACTOR``, ``reverb:RT60_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")
SHIFTS = ("white", "pink", "babble", "clip", "speed", "reverb")


@dataclass
class Inputs:
    """Named mono waveforms at the target's sample rate, and what they are (``label``)."""

    label: str
    ids: list[str]
    waves: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def read_inputs(data: str, target: Any, record: Any, *, shifts: list[str] | tuple = (),
                limit: int | None = None, seed: int = 0) -> Inputs:
    """The inputs ``data`` names (see the module docstring), shifted by ``shifts``."""
    if data.startswith("split:"):
        names = [n.strip() for n in data.removeprefix("split:").split(",") if n.strip()]
        pairs = [pair for name in names for pair in target.split(record, name)]
        ids = [str(i) for i, _ in pairs]
        waves = [np.asarray(w, dtype=np.float32) for _, w in pairs]
    else:
        ids, waves = _read_files(data, target.sample_rate)
    if not waves:
        raise InvalidInputError(f"data {data!r} holds no inputs")
    if limit is not None:
        ids, waves = ids[:limit], waves[:limit]
    parsed = [parse_shift(s) for s in shifts]
    waves = apply_shifts(waves, parsed, target.sample_rate, seed)
    label = " + ".join([data, *shifts])
    return Inputs(label, ids, waves)


def _read_files(data: str, sample_rate: int) -> tuple[list[str], list[np.ndarray]]:
    from tympan.audio.io import load

    path = Path(data)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise InvalidInputError(f"folder {data} holds no audio files "
                                    f"({', '.join(AUDIO_SUFFIXES)})")
    elif path.is_file():
        files = [path]
    else:
        raise InvalidInputError(f"data {data!r} is neither split:NAME nor an audio file or "
                                "folder that exists")
    waves = [load(f, sample_rate=sample_rate, mono=True)[0].astype(np.float32) for f in files]
    return [f.name for f in files], waves


def parse_shift(spec: str) -> tuple[str, float]:
    """``"white:5"`` -> ``("white", 5.0)``; an InvalidInputError naming the accepted forms."""
    kind, _, value = spec.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = None
    if kind not in SHIFTS or number is None:
        raise InvalidInputError(
            f"shift {spec!r}: expected KIND:VALUE with KIND one of {', '.join(SHIFTS)} "
            "(e.g. white:5 for white noise at 5 dB SNR, speed:1.5, clip:0.05)"
        )
    if kind in ("clip", "speed", "reverb") and number <= 0:
        raise InvalidInputError(f"shift {spec!r}: the value must be positive")
    return kind, number


def apply_shifts(waves: list[np.ndarray], shifts: list[tuple[str, float]], sample_rate: int,
                 seed: int) -> list[np.ndarray]:
    from tympan.audio.augment import add_noise, clip, reverb, speed_perturb

    rng = np.random.default_rng(seed)
    for kind, value in shifts:
        if kind in ("white", "pink"):
            waves = [add_noise(w, value, kind, rng=rng) for w in waves]
        elif kind == "babble":
            if len(waves) < 2:
                raise InvalidInputError("shift babble needs at least 2 inputs (the others "
                                        "are the talkers)")
            waves = [add_noise(w, value, "babble", rng=rng, sr=sample_rate,
                               babble_sources=(waves[:i] + waves[i + 1:])[:5])
                     for i, w in enumerate(waves)]
        elif kind == "clip":
            waves = [clip(w, value) for w in waves]
        elif kind == "speed":
            waves = [speed_perturb(w, sample_rate, value) for w in waves]
        else:
            waves = [reverb(w, sample_rate, value, rng) for w in waves]
    return [np.asarray(w, dtype=np.float32) for w in waves]
