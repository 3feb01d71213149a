"""Audio samples: validate in the caller (clear errors at the call site), encode FLAC later.

Accepted shapes: (frames,) mono, (channels, frames) as torch uses, or (frames, channels) as
soundfile uses; the channel axis is the short one (at most 8, FLAC's limit). Float audio
louder than full scale is stored scaled down with its gain kept, so nothing is clipped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.audio.arrays import from_tensor
from tympan.errors import AudioError

MAX_CHANNELS = 8
MAX_RATE = 655_350  # FLAC's largest sample rate


@dataclass(frozen=True)
class PreparedAudio:
    data: np.ndarray  # (frames, channels), float32 in [-1, 1] or int16
    sample_rate: int
    peak: float  # largest |sample| of the audio as logged (full scale = 1.0)
    gain: float  # stored audio * gain == the audio as logged

    @property
    def frames(self) -> int:
        return self.data.shape[0]

    @property
    def channels(self) -> int:
        return self.data.shape[1]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def flac(self) -> bytes:
        import soundfile

        subtype = "PCM_16" if self.data.dtype == np.int16 else "PCM_24"
        buf = io.BytesIO()
        soundfile.write(buf, self.data, self.sample_rate, format="FLAC", subtype=subtype)
        return buf.getvalue()


def prepare(key: str, waveform: Any, sample_rate: Any) -> PreparedAudio:
    rate = _check_rate(key, sample_rate)
    array = _to_numpy(key, waveform)
    array = _frames_by_channels(key, array)
    if array.dtype == np.int16:
        peak = float(np.abs(array.astype(np.int32)).max()) / 32768.0
        return PreparedAudio(np.ascontiguousarray(array), rate, peak, 1.0)
    if array.dtype == np.int32:
        array = array.astype(np.float64) / 2**31
    elif array.dtype.kind != "f":
        raise AudioError(
            f"audio {key!r} has dtype {array.dtype}: use float (in [-1, 1]), int16 or int32"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise AudioError(f"audio {key!r} has NaN or Inf samples (first at frame {frame})")
    peak = float(np.abs(array).max())
    gain = peak if peak > 1.0 else 1.0
    data = (array / gain).astype(np.float32)
    return PreparedAudio(np.ascontiguousarray(data), rate, peak, gain)


def _check_rate(key: str, sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float | np.integer):
        raise AudioError(f"audio {key!r}: sample_rate must be an int, got {sample_rate!r}")
    if sample_rate != int(sample_rate) or not 1 <= int(sample_rate) <= MAX_RATE:
        raise AudioError(
            f"audio {key!r}: sample_rate must be a whole number of Hz in 1..{MAX_RATE}, "
            f"got {sample_rate!r}"
        )
    return int(sample_rate)


def _to_numpy(key: str, waveform: Any) -> np.ndarray:
    waveform = from_tensor(waveform)
    try:
        # A copy: the caller may reuse its buffer right after log_audio() returns.
        array = np.array(waveform, copy=True)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"audio {key!r} is not an array of samples: {exc}") from None
    if array.dtype == object or array.dtype.kind in "bcUSV":
        raise AudioError(
            f"audio {key!r} has dtype {array.dtype}: use float (in [-1, 1]), int16 or int32"
        )
    if array.dtype.kind == "f" and array.dtype != np.float64:
        array = array.astype(np.float64)
    return array


def _frames_by_channels(key: str, array: np.ndarray) -> np.ndarray:
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim == 2:
        rows, cols = array.shape
        if rows <= MAX_CHANNELS and cols > rows:
            array = array.T  # (channels, frames)
        elif not (cols <= MAX_CHANNELS and rows >= cols):
            raise AudioError(
                f"audio {key!r} has shape {array.shape}: expected (frames,), "
                f"(channels, frames) or (frames, channels) with at most {MAX_CHANNELS} channels"
            )
    else:
        raise AudioError(
            f"audio {key!r} has shape {array.shape}: expected (frames,) or (channels, frames); "
            "log a batch one item at a time"
        )
    if array.shape[0] == 0:
        raise AudioError(f"audio {key!r} is empty (0 frames)")
    return array
