"""How an audio sample is shown and played: log-mel spectrogram PNG, waveform peaks, WAV.

numpy only (no torch, no matplotlib): the STFT is a strided view, the mel filters come from
``tympan.audio.mel`` and the PNG is written by ``tympan.track.image.png``. Spectrograms
are cached by the sample's content hash, so a page showing one clip twice renders it once.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from tympan.audio.mel import mel_weights
from tympan.track.image import png

__all__ = [
    "HOP_SECONDS",
    "MEL_BANDS",
    "Clip",
    "colour_scale",
    "decode",
    "log_mel_db",
    "spectrogram_png",
    "wav_bytes",
    "waveform_peaks",
]

HOP_SECONDS = 0.010
WINDOW_SECONDS = 0.025
MEL_BANDS = 80
FLOOR_DB = -80.0
CACHE_SIZE = 256

# A perceptually uniform dark-to-bright map (magma's anchor colours), interpolated to 256.
_ANCHORS = np.array([
    (0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
    (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)),
                           _ANCHORS[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


@dataclass(frozen=True)
class Clip:
    """A decoded sample: float32 ``(frames, channels)`` as logged (gain undone)."""

    data: np.ndarray
    sample_rate: int
    subtype: str  # of the stored FLAC: PCM_16 or PCM_24
    gain: float

    @property
    def mono(self) -> np.ndarray:
        return self.data.mean(axis=1) if self.data.shape[1] > 1 else self.data[:, 0]


def decode(flac: bytes, gain: float) -> Clip:
    import soundfile

    with soundfile.SoundFile(io.BytesIO(flac)) as f:
        subtype, rate = f.subtype, f.samplerate
        data = f.read(dtype="float32", always_2d=True)
    if gain != 1.0:
        data = data * np.float32(gain)
    return Clip(data, rate, subtype, gain)


def wav_bytes(clip: Clip) -> bytes:
    """The clip as WAV: the stored PCM depth when it fits in [-1, 1], else 32-bit float."""
    import soundfile

    subtype = clip.subtype if clip.gain == 1.0 and clip.subtype in ("PCM_16", "PCM_24") \
        else "FLOAT"
    out = io.BytesIO()
    soundfile.write(out, clip.data, clip.sample_rate, format="WAV", subtype=subtype)
    return out.getvalue()


def waveform_peaks(clip: Clip, points: int = 1000) -> dict:
    """The mono mix in ``points`` buckets of equal length, each with its min and max."""
    y = clip.mono.astype(np.float64)
    frames = len(y)
    points = max(1, min(points, frames))
    if frames == 0:
        low = high = np.zeros(0)
    else:
        size = -(-frames // points)
        points = -(-frames // size)
        padded = np.empty(points * size)
        padded[:frames] = y
        padded[frames:] = y[-1]
        grid = padded.reshape(points, size)
        low, high = grid.min(axis=1), grid.max(axis=1)
    return {"sample_rate": clip.sample_rate, "duration": frames / clip.sample_rate,
            "frames": frames, "channels": int(clip.data.shape[1]), "points": len(low),
            "min": np.round(low, 5).tolist(), "max": np.round(high, 5).tolist()}


def log_mel_db(y: np.ndarray, sample_rate: int, bands: int = MEL_BANDS) -> np.ndarray:
    """``(bands, frames)`` mel power in dB relative to the loudest cell, floored at -80 dB:
    25 ms Hann windows every 10 ms, filters from 0 Hz to half the sample rate."""
    hop = max(1, round(HOP_SECONDS * sample_rate))
    win = max(2, round(WINDOW_SECONDS * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    y = np.asarray(y, dtype=np.float64)
    padded = np.pad(y, (n_fft // 2, n_fft // 2))
    if len(padded) < n_fft:
        padded = np.pad(padded, (0, n_fft - len(padded)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = np.hanning(win)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    weights = mel_weights(sample_rate, n_fft, bands, 0.0, sample_rate / 2, False, "slaney")
    mel = weights @ power.T
    db = 10.0 * np.log10(np.maximum(mel, 1e-12))
    return np.maximum(db - db.max(), FLOOR_DB)


def colour_scale() -> dict:
    """How to read the spectrogram's colours: the map's anchors from the floor (quiet) to
    0 dB (the clip's loudest cell), evenly spaced; the map between them is linear in RGB,
    as a CSS linear-gradient draws it, so a page's colour bar is the image's own scale."""
    return {"floor_db": FLOOR_DB, "top_db": 0.0,
            "colours": ["#" + "".join(f"{int(c):02x}" for c in a) for a in _ANCHORS]}


_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cache_lock = threading.Lock()


def spectrogram_png(content_id: str, clip: Clip) -> bytes:
    """The clip's log-mel spectrogram as PNG (low bands at the bottom), cached by
    ``content_id`` (the stored FLAC's sha256)."""
    key = (content_id, clip.sample_rate, MEL_BANDS)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    db = log_mel_db(clip.mono, clip.sample_rate)
    levels = np.round((db - FLOOR_DB) / -FLOOR_DB * 255).astype(np.uint8)
    image = _LUT[levels[::-1]]  # (bands, frames, 3), highest band first (top row)
    data = png(image)
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


