"""Voice activity detection: where in a clip someone speaks.

    segments = speech_segments(waveform, sample_rate)          # [Segment(start=0.97, end=2.3), ...]
    trimmed = trim_silence(waveform, sample_rate)              # leading/trailing silence gone

Two detectors sit behind one function:

- ``"silero"``: the Silero VAD network (the ``silero-vad`` package, whose model ships in its
  wheel, so it works offline). It runs at 8 or 16 kHz; other rates are resampled to 16 kHz
  with :func:`tympan.audio.io.resample` and the times mapped back to the input's rate.
- ``"energy"``: frame energy against the clip's own noise floor (see :func:`_energy_probs`);
  no torch needed, a fallback for installs without the ``audio``/``torch`` extras. It is
  fooled by loud non-speech (music, slamming doors), which silero is not.

``"auto"`` (the default) takes silero when it can be imported, else energy. Both share the
same meaning for the parameters: ``threshold`` in (0, 1) is the decision level (silero: a
speech probability; energy: how far a stretch of sound must rise from the noise floor
towards the speech level somewhere to count as speech), ``min_speech`` drops shorter
segments, ``min_silence`` bridges shorter pauses, and ``pad`` widens every segment on both
sides. All times are seconds.

Standalone like the rest of ``tympan.audio``: numpy at import, torch and silero only when
the silero detector first runs.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tympan.audio.arrays import from_tensor
from tympan.errors import AudioError, InvalidInputError, MissingDependencyError

__all__ = ["Segment", "speech_ratio", "speech_segments", "trim_silence"]

Method = Literal["silero", "energy", "auto"]
_METHODS = ("silero", "energy", "auto")
_MIN_RATE = 4000  # below this there is no speech band left to detect in

# Energy detector. 30 ms windows every 10 ms: long enough to span a pitch period, short
# enough to place a boundary within ~10 ms.
_FRAME_S = 0.030
_HOP_S = 0.010
_FLOOR_PERCENTILE = 10.0  # the quietest 10% of frames: pauses, even in a busy clip
_LOUD_PERCENTILE = 95.0  # not the max, so one click does not set the speech level
_MIN_RISE_DB = 9.0  # a frame must beat the floor by this much, so steady noise never counts
_GATE_DBFS = -70.0  # frames quieter than this are silence whatever the floor says
_BLOCK = 4096  # frames per block of energy computation (about 40 s)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech from ``start`` to ``end`` seconds (padding included)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_segments(wav: Any, sr: int, *, method: Method = "auto", threshold: float = 0.5,
                    min_speech: float = 0.25, min_silence: float = 0.1,
                    pad: float = 0.03) -> list[Segment]:
    """The speech in ``wav``, as time-ordered, non-overlapping segments in seconds.

    ``wav`` is a numpy array or torch tensor, ``(frames,)`` or ``(channels, frames)``
    (channels are averaged), float in [-1, 1] or signed integer PCM, at any rate
    ``sr`` >= 4000 Hz. A clip with no speech gives ``[]``. See the module docstring for
    ``method`` and the other parameters. Raises :class:`~tympan.errors.AudioError` for a
    waveform or rate that cannot be used and ``InvalidInputError`` for bad parameters.
    """
    mono = _mono(wav, sr)
    _check_params(method, threshold, min_speech, min_silence, pad)
    if method == "silero" or (method == "auto" and _silero_importable()):
        return _silero_segments(mono, sr, threshold, min_speech, min_silence, pad)
    return _energy_segments(mono, sr, threshold, min_speech, min_silence, pad)


def trim_silence(wav: Any, sr: int, **kw: Any) -> np.ndarray:
    """``wav`` without the non-speech before the first and after the last segment (each
    segment keeps its ``pad``). Channels and dtype are kept; a torch tensor comes back as a
    numpy array. A clip with no speech comes back with zero frames. ``kw`` goes to
    :func:`speech_segments`."""
    segments = speech_segments(wav, sr, **kw)
    arr = _as_array(wav)
    if not segments:
        return arr[..., :0].copy()
    a = round(segments[0].start * sr)
    b = round(segments[-1].end * sr)
    return arr[..., a:b].copy()


def speech_ratio(wav: Any, sr: int, **kw: Any) -> float:
    """The fraction of the clip's duration inside speech segments (0.0 to 1.0). ``kw`` goes
    to :func:`speech_segments`."""
    segments = speech_segments(wav, sr, **kw)
    total = _as_array(wav).shape[-1] / sr
    return min(1.0, sum(s.duration for s in segments) / total)


# --- input checks ------------------------------------------------------------------------


def _as_array(wav: Any) -> np.ndarray:
    return np.asarray(from_tensor(wav))


def _mono(wav: Any, sr: int) -> np.ndarray:
    """``wav`` checked and mixed down to float32 mono (float32: an hour of audio stays small)."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < _MIN_RATE:
        raise AudioError(f"sample rate must be an integer number of Hz >= {_MIN_RATE}, "
                         f"got {sr!r}")
    arr = _as_array(wav)
    if arr.ndim not in (1, 2):
        raise AudioError(f"a waveform must be (frames,) or (channels, frames), got shape "
                         f"{arr.shape}")
    if arr.dtype.kind not in "fi":
        raise AudioError(f"a waveform must hold float or signed integer samples, got dtype "
                         f"{arr.dtype}")
    if arr.size == 0:
        raise AudioError(f"the waveform is empty (shape {arr.shape}): there is nothing to "
                         f"detect speech in")
    if arr.ndim == 2 and arr.shape[0] > arr.shape[1]:
        raise AudioError(f"a waveform must be (channels, frames), got shape {arr.shape}: "
                         f"more channels than frames; transpose a (frames, channels) array")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise AudioError("the waveform contains NaN or infinite samples")
    x = arr.astype(np.float32)
    if arr.dtype.kind == "i":  # PCM: scale to [-1, 1] so absolute levels mean the same
        x /= -float(np.iinfo(arr.dtype).min)
    return x if x.ndim == 1 else x.mean(axis=0, dtype=np.float32)


def _check_params(method: str, threshold: float, min_speech: float, min_silence: float,
                  pad: float) -> None:
    if method not in _METHODS:
        raise InvalidInputError(f"VAD method must be one of {', '.join(_METHODS)}, "
                                f"got {method!r}")
    if not 0.0 < threshold < 1.0:
        raise InvalidInputError(f"VAD threshold must be between 0 and 1, got {threshold!r}")
    for name, value in (("min_speech", min_speech), ("min_silence", min_silence),
                        ("pad", pad)):
        if not (np.isfinite(value) and value >= 0):
            raise InvalidInputError(f"{name} must be a non-negative number of seconds, "
                                    f"got {value!r}")


# --- silero --------------------------------------------------------------------------------

_model_lock = threading.Lock()  # guards the load; lru_cache alone could load twice
_run_lock = threading.Lock()  # the model carries recurrent state between chunks
_MISSING_SILERO = ("the silero VAD needs torch and silero-vad: pip install "
                   "'tympan[torch,audio]', or pass method='energy'")


@functools.lru_cache(maxsize=1)
def _silero_importable() -> bool:
    # find_spec, not import: importing silero_vad has side effects (see _load_silero).
    from importlib.util import find_spec

    return find_spec("torch") is not None and find_spec("silero_vad") is not None


def _silero_model() -> Any:
    with _model_lock:
        return _load_silero()


@functools.lru_cache(maxsize=1)
def _load_silero() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(_MISSING_SILERO) from exc
    threads = torch.get_num_threads()
    try:
        import silero_vad
    except ImportError as exc:
        raise MissingDependencyError(_MISSING_SILERO) from exc
    finally:
        # Importing silero_vad calls torch.set_num_threads(1) for the whole process; a user
        # training in the same process should not lose their threads to a VAD call.
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        # silero ships a TorchScript model, and recent torch deprecates torch.jit.load; the
        # ONNX alternative needs onnxruntime. Nothing the caller can act on, so hide that one.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated",
                                category=DeprecationWarning)
        return silero_vad.load_silero_vad()


def _silero_segments(mono: np.ndarray, sr: int, threshold: float, min_speech: float,
                     min_silence: float, pad: float) -> list[Segment]:
    model = _silero_model()  # first: it imports silero_vad with care, or says what is missing
    import torch
    from silero_vad import get_speech_timestamps

    from tympan.audio.io import resample

    # Silero runs at 8 or 16 kHz. Resample everything else ourselves: its own shortcut for
    # multiples of 16 kHz decimates without a low-pass filter (aliasing) and warns.
    vad_sr = sr if sr in (8000, 16000) else 16000
    x = mono if vad_sr == sr else resample(mono, sr, vad_sr)
    audio = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with _run_lock:
        stamps = get_speech_timestamps(
            audio, model, threshold=threshold, sampling_rate=vad_sr,
            min_speech_duration_ms=min_speech * 1000, min_silence_duration_ms=min_silence * 1000,
            speech_pad_ms=pad * 1000)
    duration = mono.shape[0] / sr
    return [Segment(min(s["start"] / vad_sr, duration), min(s["end"] / vad_sr, duration))
            for s in stamps]


# --- energy --------------------------------------------------------------------------------


def _energy_probs(mono: np.ndarray, sr: int) -> np.ndarray:
    """Per 10 ms hop, where the level of the 30 ms frame centred on it lies between the noise
    floor (0) and the speech level (1). The floor is a low percentile of the frame levels and
    the speech level a high one, so the scale follows the clip's gain and noise. Frames less
    than 9 dB above the floor (or below -70 dBFS) score 0, so steady noise never counts."""
    frame, hop = max(1, round(_FRAME_S * sr)), max(1, round(_HOP_S * sr))
    n_hops = max(1, -(-mono.shape[0] // hop))
    lead = (frame - hop) // 2  # centre each frame on its hop
    padded = np.pad(mono, (lead, n_hops * hop + frame - lead - mono.shape[0]))
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:n_hops]
    level = np.empty(n_hops)
    for i in range(0, n_hops, _BLOCK):  # in blocks: all frames at once copy the clip 3 times
        block = windows[i:i + _BLOCK].astype(np.float64)
        block -= block.mean(axis=1, keepdims=True)  # a DC offset is not speech
        level[i:i + _BLOCK] = 10.0 * np.log10(np.mean(block * block, axis=1) + 1e-12)
    floor = float(np.percentile(level, _FLOOR_PERCENTILE))
    loud = float(np.percentile(level, _LOUD_PERCENTILE))
    if loud - floor < _MIN_RISE_DB:
        return np.zeros(n_hops)
    probs = np.clip((level - floor) / (loud - floor), 0.0, 1.0)
    probs[(level < floor + _MIN_RISE_DB) | (level < _GATE_DBFS)] = 0.0
    return probs


def _energy_segments(mono: np.ndarray, sr: int, threshold: float, min_speech: float,
                     min_silence: float, pad: float) -> list[Segment]:
    # Two levels, as in Rabiner & Sambur's endpoint detector: runs of frames above the floor,
    # joined across pauses shorter than min_silence, are speech if they reach ``threshold``
    # somewhere; they then count from their first to their last frame above the floor, so weak
    # onsets and fricative tails (the "x" of "fox") stay in.
    probs = _energy_probs(mono, sr)
    active = np.concatenate([[False], probs > 0.0, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8))).tolist()
    runs: list[list[int]] = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if runs and (a - runs[-1][1]) * _HOP_S < min_silence:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    duration = mono.shape[0] / sr
    raw = [(a * _HOP_S, min(b * _HOP_S, duration)) for a, b in runs
           if probs[a:b].max() >= threshold]
    return _finish(raw, duration, min_speech, min_silence, pad)


def _finish(raw: Sequence[tuple[float, float]], duration: float, min_speech: float,
            min_silence: float, pad: float) -> list[Segment]:
    """Bridge pauses shorter than ``min_silence``, drop segments shorter than ``min_speech``,
    then pad; where two pads would overlap, the pause is split in the middle (as silero)."""
    merged: list[list[float]] = []
    for a, b in raw:
        if merged and a - merged[-1][1] < min_silence:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    kept = [(a, b) for a, b in merged if b - a >= min_speech]
    out: list[Segment] = []
    for i, (a, b) in enumerate(kept):
        start = max(0.0, a - pad)
        if i > 0 and start < kept[i - 1][1] + pad:
            start = (kept[i - 1][1] + a) / 2
        end = min(duration, b + pad)
        if i + 1 < len(kept) and end > kept[i + 1][0] - pad:
            end = (b + kept[i + 1][0]) / 2
        out.append(Segment(round(start, 4), round(end, 4)))
    return out
