"""Reading, writing and conditioning waveforms: load/save (WAV, FLAC, OGG), resample, mono,
normalization, trimming.

Waveforms are numpy arrays shaped ``(frames,)`` (mono) or ``(channels, frames)``, the
librosa convention. Every function returns a new array and leaves its input alone.
Problems a user can cause (a missing, empty or malformed file, a wrong shape, a bad rate)
raise :class:`~tympan.errors.AudioError` with a message that names the file or the value.
"""

from __future__ import annotations

import functools
from math import gcd
from os import PathLike
from pathlib import Path

import numpy as np

from tympan.errors import AudioError

__all__ = ["load", "normalize_loudness", "normalize_peak", "resample", "save", "to_mono", "trim"]

_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG"}
_DTYPES = ("float32", "float64", "int16", "int32")
# Below this RMS (about -200 dBFS) a signal is treated as silence: no gain can make it -23 dBFS.
_SILENCE_RMS = 1e-10


def load(path: str | PathLike[str], *, sample_rate: int | None = None, mono: bool = False,
         dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Read an audio file; returns ``(waveform, sample_rate)``.

    The waveform is ``(frames,)`` for a single-channel file or when ``mono`` is true (channels
    averaged), else ``(channels, frames)``. ``sample_rate`` resamples to that rate (see
    :func:`resample`; float dtypes only). Float samples are in [-1, 1].
    """
    import soundfile as sf  # imported here so `import tympan.audio` stays cheap

    p = Path(path)
    if dtype not in _DTYPES:
        raise AudioError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if sample_rate is not None and not dtype.startswith("float"):
        raise AudioError(f"resampling {p} needs a float dtype, got {dtype!r}")
    if not p.exists():
        raise AudioError(f"cannot load audio: {p} does not exist")
    if p.is_dir():
        raise AudioError(f"cannot load audio: {p} is a directory, not an audio file")
    try:
        data, sr = sf.read(str(p), dtype=dtype, always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"cannot load audio from {p}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"cannot load audio from {p}: the file holds no audio frames")
    waveform = np.ascontiguousarray(data.T)  # (channels, frames)
    if mono or waveform.shape[0] == 1:
        waveform = waveform.mean(axis=0).astype(dtype) if waveform.shape[0] > 1 else waveform[0]
    if dtype.startswith("float") and not np.isfinite(waveform).all():
        raise AudioError(f"cannot load audio from {p}: it contains NaN or infinite samples")
    if sample_rate is not None and sample_rate != sr:
        waveform = resample(waveform, sr, sample_rate)
        sr = sample_rate
    return waveform, int(sr)


def save(path: str | PathLike[str], waveform: np.ndarray, sample_rate: int, *,
         subtype: str | None = None) -> None:
    """Write ``waveform`` (``(frames,)`` or ``(channels, frames)``) to ``path``.

    The format comes from the suffix: ``.wav``, ``.flac``, ``.ogg``/``.oga`` (Vorbis).
    ``subtype`` is a libsndfile subtype (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...);
    the default is soundfile's (16-bit PCM for WAV and FLAC). Float samples outside [-1, 1]
    are clipped for integer subtypes, where they would otherwise wrap around.
    """
    import soundfile as sf

    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(f"cannot save {p}: unknown audio suffix {p.suffix!r}; "
                         f"use one of {', '.join(sorted(_FORMATS))}")
    wav = _checked(waveform)
    _check_rate(sample_rate, "sample_rate")
    if wav.shape[-1] == 0:
        raise AudioError(f"cannot save {p}: the waveform has no frames")
    if wav.dtype.kind == "f":
        chosen = subtype or sf.default_subtype(fmt)
        if chosen not in ("FLOAT", "DOUBLE", "VORBIS", "OPUS"):
            wav = np.clip(wav, -1.0, 1.0)
    try:
        sf.write(str(p), wav.T, int(sample_rate), subtype=subtype, format=fmt)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"cannot save {p} as {fmt} (subtype {subtype}): {exc}") from exc


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (``scipy.signal.resample_poly``,
    up/down reduced by their gcd). The anti-aliasing FIR is a Kaiser design flat to 90% of
    the lower Nyquist frequency and at least 80 dB down from it on, so speech up to 7.2 kHz
    survives 16 kHz intact and nothing folds back. Float input keeps its dtype."""
    from scipy.signal import resample_poly

    wav = _checked(waveform)
    _check_rate(orig_sr, "orig_sr")
    _check_rate(target_sr, "target_sr")
    if orig_sr == target_sr:
        return wav.copy()
    g = gcd(int(orig_sr), int(target_sr))
    up, down = int(target_sr) // g, int(orig_sr) // g
    out = resample_poly(wav, up, down, axis=-1, window=_lowpass(up, down))
    return out.astype(wav.dtype if wav.dtype.kind == "f" else np.float32, copy=False)


@functools.lru_cache(maxsize=16)
def _lowpass(up: int, down: int) -> np.ndarray:
    # scipy's default (Kaiser beta=5, 10*max(up, down) taps each side) cuts at the Nyquist
    # frequency with a wide transition: -1.7 dB at 7 kHz for 16 kHz output, aliases ~55 dB down.
    from scipy.signal import firwin, kaiserord

    band = 1.0 / max(up, down)  # the lower Nyquist, relative to the upsampled one
    numtaps, beta = kaiserord(80.0, 0.1 * band)
    return firwin(numtaps | 1, 0.95 * band, window=("kaiser", beta))


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """Average the channels of ``(channels, frames)``; ``(frames,)`` comes back as a copy."""
    wav = _checked(waveform)
    return wav.copy() if wav.ndim == 1 else wav.mean(axis=0).astype(wav.dtype, copy=False)


def normalize_peak(waveform: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale so the largest absolute sample equals ``peak`` (over all channels, so their
    balance is kept). Silence comes back unchanged."""
    wav = _float(_checked(waveform))
    if peak <= 0.0:
        raise AudioError(f"peak must be positive, got {peak}")
    current = float(np.max(np.abs(wav)))
    if current == 0.0:
        return wav.copy()
    return (wav * (peak / current)).astype(wav.dtype, copy=False)


def normalize_loudness(waveform: np.ndarray, sample_rate: int,
                       target_dbfs: float = -23.0) -> np.ndarray:
    """Scale so the RMS level is ``target_dbfs`` (dB relative to a full-scale square wave).

    This is plain RMS, not ITU-R BS.1770 / EBU R128 LUFS (no K-weighting, no gating): close
    enough to equalize speech clips, not a broadcast loudness meter. The result can exceed
    [-1, 1] for peaky signals at high targets; follow with :func:`normalize_peak` if needed.
    Silence (RMS below 1e-10) comes back unchanged.
    """
    wav = _float(_checked(waveform))
    _check_rate(sample_rate, "sample_rate")
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms < _SILENCE_RMS:
        return wav.copy()
    gain = 10.0 ** ((target_dbfs - 20.0 * np.log10(rms)) / 20.0)
    return (wav * gain).astype(wav.dtype, copy=False)


def trim(waveform: np.ndarray, sample_rate: int, start: float | None = None,
         end: float | None = None) -> np.ndarray:
    """The part between ``start`` and ``end`` seconds (None: the beginning / the end).
    Times past the end are clamped; a negative time or ``start > end`` is an error."""
    wav = _checked(waveform)
    _check_rate(sample_rate, "sample_rate")
    for name, t in (("start", start), ("end", end)):
        if t is not None and not (np.isfinite(t) and t >= 0):
            raise AudioError(f"trim {name} must be a non-negative number of seconds, got {t}")
    if start is not None and end is not None and start > end:
        raise AudioError(f"trim start ({start} s) is after end ({end} s)")
    a = 0 if start is None else round(start * sample_rate)
    b = wav.shape[-1] if end is None else round(end * sample_rate)
    return wav[..., a:b].copy()


def _checked(waveform: np.ndarray) -> np.ndarray:
    wav = np.asarray(waveform)
    if wav.ndim not in (1, 2):
        raise AudioError(f"a waveform must be (frames,) or (channels, frames), got shape "
                         f"{wav.shape}")
    if wav.dtype.kind not in "fiu":
        raise AudioError(f"a waveform must hold numbers, got dtype {wav.dtype}")
    if wav.dtype.kind == "f" and not np.isfinite(wav).all():
        raise AudioError("the waveform contains NaN or infinite samples")
    return wav


def _float(wav: np.ndarray) -> np.ndarray:
    return wav if wav.dtype.kind == "f" else wav.astype(np.float32)


def _check_rate(rate: object, name: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise AudioError(f"{name} must be a positive integer number of Hz, got {rate!r}")
