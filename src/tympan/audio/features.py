"""Spectral features on torch ops, matching librosa: STFT, (mel) spectrograms, dB, MFCC.

Parameter names, defaults and results follow librosa >= 0.10 (``librosa.stft``,
``librosa.filters.mel``, ``librosa.feature.melspectrogram``, ``librosa.power_to_db``,
``librosa.feature.mfcc``), so a recipe can switch between the two without changing numbers.
What torch adds:

- batches: every function takes ``(..., time)`` (or ``(..., freq, frames)``) and keeps the
  leading axes; item ``i`` of a batch equals the function applied to item ``i`` alone;
- clips of different lengths in one pass: ``log_mel`` and ``mfcc`` take a zero-padded
  ``(batch, samples)`` batch with ``lengths=``; item ``i``'s first ``stft_frames(...)[i]``
  frames equal the function applied to clip ``i`` alone (a serving batch makes its features
  in one STFT instead of one call per clip); ``normalize_frames`` then normalizes each
  utterance over its own frames;
- devices and autograd: CPU or CUDA, and gradients flow back to the waveform;
- input: numpy arrays or torch tensors; the result is always a torch tensor on the input's
  device (numpy input: CPU). Float64 input computes in float64, float32 in float32, integer
  input is converted to float32.

One deliberate difference: ``power_to_db``'s ``top_db`` floor is relative to the maximum of
each item (the last two axes), not of the whole array, so batching never changes a result.
Filterbanks, windows and DCT matrices are built once per (parameters, device, dtype) and
cached; they are built in float64 with numpy/scipy, then cast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tympan.audio.mel import mel_weights
from tympan.errors import InvalidInputError

__all__ = [
    "log_mel",
    "mel_filterbank",
    "melspectrogram",
    "mfcc",
    "normalize_frames",
    "pad_features",
    "pad_waves",
    "power_spectrogram",
    "power_to_db",
    "spectrogram",
    "stft",
    "stft_frames",
]

ArrayLike = Any  # np.ndarray | torch.Tensor: kept loose so numpy input type-checks too
Window = str | tuple | np.ndarray | torch.Tensor


_CACHE_BYTES = 4 << 20  # complex STFT bytes per chunk of a CPU batch (about L2/L3 size)

def stft(y: ArrayLike, n_fft: int = 2048, hop_length: int | None = None,
         win_length: int | None = None, window: Window = "hann", center: bool = True,
         pad_mode: str = "constant") -> torch.Tensor:
    """Complex STFT of ``y`` ``(..., time)`` -> ``(..., 1 + n_fft // 2, frames)``, as
    ``librosa.stft``: ``win_length`` defaults to ``n_fft``, ``hop_length`` to
    ``win_length // 4``; the window (a scipy ``get_window`` spec or an array) is centred in
    ``n_fft``; ``center`` pads ``n_fft // 2`` each side with ``pad_mode``."""
    x = _as_tensor(y)
    win_length, hop_length = _window_and_hop(n_fft, win_length, hop_length)
    if x.ndim == 0:
        raise InvalidInputError("stft needs a signal shaped (..., time), got a scalar")
    lead, n = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, n)
    if center:
        if pad_mode not in ("constant", "reflect", "edge", "replicate", "circular"):
            raise InvalidInputError(f"unsupported pad_mode {pad_mode!r}")
        mode = "replicate" if pad_mode == "edge" else pad_mode
        if mode == "reflect" and n <= n_fft // 2:
            raise InvalidInputError(f"pad_mode='reflect' needs more than n_fft // 2 = "
                                    f"{n_fft // 2} samples, got {n}")
        # F.pad wants (batch, channel, time) for the non-constant modes
        flat = torch.nn.functional.pad(flat[:, None], (n_fft // 2, n_fft // 2), mode=mode)[:, 0]
    if flat.shape[-1] < n_fft:
        raise InvalidInputError(f"the signal ({n} samples) is shorter than n_fft={n_fft}; "
                                "use center=True or a smaller n_fft")
    win = _window(window, win_length, n_fft, x.device, x.dtype)
    spec = torch.stft(flat, n_fft, hop_length=hop_length, win_length=n_fft, window=win,
                      center=False, onesided=True, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def spectrogram(y: ArrayLike, n_fft: int = 2048, hop_length: int | None = None,
                win_length: int | None = None, window: Window = "hann", center: bool = True,
                pad_mode: str = "constant", power: float = 2.0) -> torch.Tensor:
    """``|stft(y)| ** power``: 1.0 for magnitude, 2.0 for power (the default)."""
    spec = stft(y, n_fft, hop_length, win_length, window, center, pad_mode)
    if power == 2.0:  # re² + im² avoids the sqrt and its undefined gradient at 0
        return spec.real.square() + spec.imag.square()
    if power <= 0:
        raise InvalidInputError(f"power must be positive, got {power}")
    return spec.abs().pow(power)


def power_spectrogram(y: ArrayLike, n_fft: int = 2048, hop_length: int | None = None,
                      win_length: int | None = None, window: Window = "hann",
                      center: bool = True, pad_mode: str = "constant") -> torch.Tensor:
    """``|stft(y)| ** 2``, shaped ``(..., 1 + n_fft // 2, frames)``."""
    return spectrogram(y, n_fft, hop_length, win_length, window, center, pad_mode, 2.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False,
                   norm: str | float | None = "slaney", *, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mel filterbank ``(n_mels, 1 + n_fft // 2)``, equal to ``librosa.filters.mel`` with the
    same arguments: triangular filters on the HTK or Slaney mel scale; ``norm="slaney"``
    divides each by its width in Hz (constant energy per band), a number p scales each to
    unit Lp norm, None leaves peaks at 1. Cached; do not modify the returned tensor."""
    if not (norm is None or norm == "slaney" or (not isinstance(norm, str) and norm > 0)):
        raise InvalidInputError(f"norm must be 'slaney', None or a positive number, got {norm!r}")
    return _mel(int(sr), int(n_fft), int(n_mels), float(fmin),
                float(sr) / 2 if fmax is None else float(fmax), bool(htk), norm,
                torch.device(device), dtype)


def melspectrogram(y: ArrayLike, sr: int = 22050, n_fft: int = 2048,
                   hop_length: int | None = None, win_length: int | None = None,
                   window: Window = "hann", center: bool = True, pad_mode: str = "constant",
                   power: float = 2.0, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False,
                   norm: str | float | None = "slaney") -> torch.Tensor:
    """Mel spectrogram ``(..., n_mels, frames)`` as ``librosa.feature.melspectrogram``: the
    filterbank of :func:`mel_filterbank` applied to ``spectrogram(y, ..., power)``.

    On CPU a large batch is processed a few items at a time: the complex STFT of a whole
    batch falls out of cache and made batching 2x slower than a loop over clips."""
    y = _as_tensor(y)
    if y.ndim > 1 and y.device.type == "cpu":
        flat = y.reshape(-1, y.shape[-1])
        hop = hop_length or (win_length or n_fft) // 4
        per_item = (n_fft // 2 + 1) * (y.shape[-1] // max(hop, 1) + 1) * 2 * y.element_size()
        step = max(1, _CACHE_BYTES // per_item)
        if flat.shape[0] > step:
            parts = [melspectrogram(flat[i : i + step], sr, n_fft, hop_length, win_length,
                                    window, center, pad_mode, power, n_mels, fmin, fmax, htk,
                                    norm) for i in range(0, flat.shape[0], step)]
            out = torch.cat(parts)
            return out.reshape(*y.shape[:-1], *out.shape[-2:])
    spec = spectrogram(y, n_fft, hop_length, win_length, window, center, pad_mode, power)
    basis = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm,
                           device=spec.device, dtype=spec.dtype)
    return torch.matmul(basis, spec)


def power_to_db(S: ArrayLike, ref: float | Callable[[torch.Tensor], Any] = 1.0,
                amin: float = 1e-10, top_db: float | None = 80.0, *,
                frames: torch.Tensor | None = None) -> torch.Tensor:
    """``10 * log10(max(S, amin) / max(ref, amin))`` as ``librosa.power_to_db``, then, when
    ``top_db`` is set, floored at ``top_db`` below the maximum of each item (the last two
    axes; librosa takes the maximum of the whole array, which is the same for one item).
    ``ref`` is a number or a callable of the spectrogram (e.g. ``torch.amax``). ``frames``
    (a ``(batch, freq, frames)`` batch of clips of different lengths): each item's number of
    frames of its own; its maximum is taken over those only."""
    s = _as_tensor(S)
    if frames is not None and (s.ndim != 3 or tuple(frames.shape) != (s.shape[0],)):
        raise InvalidInputError(f"frames= needs a (batch, freq, frames) spectrogram and one "
                                f"count per item, got {tuple(s.shape)} and "
                                f"{tuple(frames.shape)}")
    if amin <= 0:
        raise InvalidInputError(f"amin must be strictly positive, got {amin}")
    if s.is_complex():
        s = s.abs()
    log_spec = 10.0 * torch.log10(torch.clamp(s, min=amin))
    if callable(ref):
        r = torch.as_tensor(ref(s), dtype=s.dtype, device=s.device).abs()
        log_spec = log_spec - 10.0 * torch.log10(torch.clamp(r, min=amin))
    else:
        log_spec = log_spec - 10.0 * float(np.log10(max(amin, abs(float(ref)))))
    if top_db is not None:
        if top_db < 0:
            raise InvalidInputError(f"top_db must be non-negative, got {top_db}")
        axes = tuple(range(-min(2, log_spec.ndim), 0))
        valid = log_spec
        if frames is not None and int(frames.min()) < s.shape[-1]:  # another clip's
            # padding is no part of this one's maximum
            past = torch.arange(s.shape[-1], device=s.device) >= frames.to(s.device)[:, None]
            valid = log_spec.masked_fill(past[:, None, :], -torch.inf)
        peak = torch.amax(valid, dim=axes, keepdim=True) if axes else log_spec
        log_spec = torch.maximum(log_spec, peak - top_db)
    return log_spec


def log_mel(y: ArrayLike, sr: int = 22050, n_fft: int = 2048, hop_length: int | None = None,
            win_length: int | None = None, window: Window = "hann", center: bool = True,
            pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128,
            fmin: float = 0.0, fmax: float | None = None, htk: bool = False,
            norm: str | float | None = "slaney", *, ref: float = 1.0, amin: float = 1e-10,
            top_db: float | None = 80.0, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``power_to_db(melspectrogram(y, ...), ref, amin, top_db)`` in dB, ``(..., n_mels,
    frames)``: the usual input of speech models. ``lengths``: ``y`` is a zero-padded
    ``(batch, samples)`` batch (``pad_waves``) and these its clips' samples; item ``i``'s
    first ``stft_frames(lengths, ...)[i]`` frames are clip ``i``'s alone."""
    frames = _batch_frames(y, lengths, n_fft, hop_length, win_length, center, pad_mode)
    mel = melspectrogram(y, sr, n_fft, hop_length, win_length, window, center, pad_mode,
                         power, n_mels, fmin, fmax, htk, norm)
    return power_to_db(mel, ref=ref, amin=amin, top_db=top_db, frames=frames)


def mfcc(y: ArrayLike, sr: int = 22050, n_mfcc: int = 20, dct_type: int = 2,
         norm: str | None = "ortho", lifter: float = 0, *, mel_norm: str | float | None = "slaney",
         top_db: float | None = 80.0, lengths: torch.Tensor | None = None,
         **mel_kwargs: Any) -> torch.Tensor:
    """MFCCs ``(..., n_mfcc, frames)`` as ``librosa.feature.mfcc``: the DCT (``dct_type``
    1-3, ``norm`` "ortho" or None, as ``scipy.fft.dct``) over mel bands of
    ``power_to_db(melspectrogram(y, sr, **mel_kwargs), top_db=top_db)``, then optional
    sinusoidal liftering. ``norm`` is the DCT's, as in librosa; the filterbank's is
    ``mel_norm``. ``lengths``: a zero-padded batch of clips, as for :func:`log_mel`."""
    if n_mfcc <= 0:
        raise InvalidInputError(f"n_mfcc must be positive, got {n_mfcc}")
    if lifter < 0:
        raise InvalidInputError(f"lifter must be non-negative, got {lifter}")
    if dct_type not in (1, 2, 3) or norm not in ("ortho", None):
        raise InvalidInputError(f"dct_type must be 1, 2 or 3 and norm 'ortho' or None, got "
                                f"{dct_type!r} and {norm!r}")
    frames = None
    if lengths is not None:
        keys = ("n_fft", "hop_length", "win_length", "center", "pad_mode")
        given = {k: mel_kwargs[k] for k in keys if k in mel_kwargs}
        frames = _batch_frames(y, lengths, **{"n_fft": 2048, "hop_length": None,
                                              "win_length": None, "center": True,
                                              "pad_mode": "constant", **given})
    S = power_to_db(melspectrogram(y, sr, norm=mel_norm, **mel_kwargs), top_db=top_db,
                    frames=frames)
    n_mels = S.shape[-2]
    if n_mfcc > n_mels:
        raise InvalidInputError(f"n_mfcc ({n_mfcc}) cannot exceed n_mels ({n_mels})")
    dct = _dct(n_mels, n_mfcc, dct_type, norm, S.device, S.dtype)
    M = torch.matmul(dct, S)
    if lifter > 0:
        lift = 1 + (lifter / 2) * torch.sin(
            torch.pi * torch.arange(1, 1 + n_mfcc, device=S.device, dtype=S.dtype) / lifter)
        M = M * lift[:, None]
    return M


def _window_and_hop(n_fft: int, win_length: int | None, hop_length: int | None
                    ) -> tuple[int, int]:
    """:func:`stft`'s window and hop lengths (librosa's defaults), checked."""
    win_length = n_fft if win_length is None else int(win_length)
    hop_length = win_length // 4 if hop_length is None else int(hop_length)
    if not 0 < win_length <= n_fft:
        raise InvalidInputError(f"win_length must be in (0, n_fft={n_fft}], got {win_length}")
    if hop_length <= 0:
        raise InvalidInputError(f"hop_length must be positive, got {hop_length}")
    return win_length, hop_length


def stft_frames(lengths: torch.Tensor, n_fft: int = 2048, hop_length: int | None = None,
                win_length: int | None = None, center: bool = True) -> torch.Tensor:
    """How many frames :func:`stft` gives a clip of each of ``lengths`` samples alone."""
    _, hop = _window_and_hop(n_fft, win_length, hop_length)
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    if center:
        return 1 + lengths // hop
    return 1 + torch.div(lengths - n_fft, hop, rounding_mode="floor")


def normalize_frames(x: torch.Tensor, frames: torch.Tensor, *, center: bool = True,
                     scale: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance normalization of a padded ``(batch, frames, dims)`` batch over each
    utterance's own ``frames``: minus its mean (``center``), then over its standard deviation
    (``scale``: unbiased, plus ``eps``), as ``(f - f.mean(0)) / (f.std(0) + eps)`` on each
    utterance's ``f`` alone; zeros past each one's frames (as ``pad_features`` pads)."""
    if x.ndim != 3 or tuple(frames.shape) != (x.shape[0],):
        raise InvalidInputError(f"normalize_frames needs (batch, frames, dims) features and "
                                f"one frame count per item, got {tuple(x.shape)} and "
                                f"{tuple(frames.shape)}")
    # In float64, so that an utterance's result does not depend on its batch: summed in
    # another order than alone, float32 statistics drifted ~1e-6 (more in a guard's z).
    dtype = x.dtype
    if int(frames.min()) == x.shape[1]:  # no padding (a batch of one): the plain statistics
        y = x.to(torch.float64)
        y = y - y.mean(1, keepdim=True) if center else y
        return (y / (y.std(1, keepdim=True) + eps) if scale else y).to(dtype)
    valid = (torch.arange(x.shape[1], device=x.device) < frames.to(x.device)[:, None])[..., None]
    count = frames.to(device=x.device, dtype=torch.float64)[:, None, None]
    y = x.to(torch.float64) * valid
    if center:
        y = (y - y.sum(1, keepdim=True) / count) * valid
    if scale:
        # a one-frame utterance has no deviation (NaN, as alone): keep it off the padding
        y = (y / ((y.square().sum(1, keepdim=True) / (count - 1)).sqrt() + eps)
             ).masked_fill(~valid, 0.0)
    return y.to(dtype)


def pad_features(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Utterances' ``(frames, dims)`` features as one zero-padded ``(batch, frames, dims)``
    tensor, and each utterance's number of frames (what masks and packing need)."""
    if not feats:
        raise InvalidInputError("pad_features needs at least one utterance's features")
    lengths = torch.tensor([len(f) for f in feats])
    return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), lengths


def pad_waves(waves: list[ArrayLike]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mono waveforms of any lengths as one zero-padded ``(batch, samples)`` float32 tensor,
    and each one's number of samples: the batch a registered model's pre-processing takes."""
    if not waves:
        raise InvalidInputError("pad_waves needs at least one waveform")
    if all(isinstance(w, np.ndarray) and w.dtype.kind == "f" for w in waves):
        # numpy's copies: torch's per-row conversions cost 6x as much for a served batch
        lengths = torch.tensor([w.size for w in waves], dtype=torch.int64)
        out = np.zeros((len(waves), int(lengths.max())), np.float32)
        for row, w in zip(out, waves, strict=True):
            row[:w.size] = w.reshape(-1)
        return torch.from_numpy(out), lengths
    rows = [_as_tensor(w).to(torch.float32).reshape(-1) for w in waves]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths


def _batch_frames(y: ArrayLike, lengths: torch.Tensor | None, n_fft: int,
                  hop_length: int | None, win_length: int | None, center: bool,
                  pad_mode: str) -> torch.Tensor | None:
    """Each clip's frames in a zero-padded batch, checked: only zeros may follow a clip's
    end for its frames to equal its own, which padding with another mode would break."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    shape = tuple(np.shape(y))
    if len(shape) != 2 or tuple(lengths.shape) != (shape[0],):
        raise InvalidInputError(f"lengths= needs a (batch, samples) batch and one length per "
                                f"clip, got {shape} and {tuple(lengths.shape)}")
    if center and pad_mode != "constant":
        raise InvalidInputError(f"lengths= needs pad_mode='constant' (zeros past each clip, "
                                f"as in the padded batch), got {pad_mode!r}")
    shortest = 1 if center else n_fft  # what stft takes for one clip alone
    if len(lengths) and (int(lengths.min()) < shortest or int(lengths.max()) > shape[1]):
        raise InvalidInputError(f"lengths must be in [{shortest}, {shape[1]}] samples, got "
                                f"{lengths.tolist()}")
    return stft_frames(lengths, n_fft, hop_length, win_length, center)


def _as_tensor(y: ArrayLike) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        t = y
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "fiuc" :
            raise InvalidInputError(f"expected a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.float32)
    return t


# ---- cached constants: built in float64 with numpy/scipy (as librosa does), then cast ----

def _window(window: Window, win_length: int, n_fft: int, device: torch.device,
            dtype: torch.dtype) -> torch.Tensor:
    if isinstance(window, (np.ndarray, torch.Tensor)):
        w = torch.as_tensor(window, device=device, dtype=dtype)
        if w.shape != (win_length,):
            raise InvalidInputError(f"window has shape {tuple(w.shape)}, expected "
                                    f"({win_length},)")
        lpad = (n_fft - win_length) // 2
        return torch.nn.functional.pad(w, (lpad, n_fft - win_length - lpad))
    return _named_window(window, win_length, n_fft, device, dtype)


# The cosine-sum windows' coefficients (scipy.signal.windows' hann, hamming, blackman): built
# here because importing scipy.signal (it imports scipy.stats) added 2 s to the cold start of
# every process that computes features; other windows still come from scipy.
_COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.5, 0.08)}


@functools.lru_cache(maxsize=64)
def _named_window(window: str | tuple, win_length: int, n_fft: int, device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
    if isinstance(window, str) and window in _COSINE_WINDOWS:  # periodic, as fftbins=True
        phase = 2 * np.pi * np.arange(win_length) / win_length
        w = sum((-1) ** k * a * np.cos(k * phase)
                for k, a in enumerate(_COSINE_WINDOWS[window])) if win_length > 1 else np.ones(1)
    else:
        from scipy.signal import get_window

        try:  # periodic (fftbins=True), librosa's choice for spectral analysis
            w = get_window(window, win_length, fftbins=True)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"unknown window {window!r}: {exc}") from exc
    lpad = (n_fft - win_length) // 2
    w = np.pad(w, (lpad, n_fft - win_length - lpad))
    return torch.as_tensor(w, dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _mel(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool,
         norm: str | float | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    weights = mel_weights(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    return torch.as_tensor(weights, dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _dct(n: int, n_out: int, dct_type: int, norm: str | None, device: torch.device,
         dtype: torch.dtype) -> torch.Tensor:
    from scipy.fft import dct

    # Column j is the DCT of the j-th unit vector, so matrix @ S is the DCT of S along bands.
    matrix = dct(np.eye(n), type=dct_type, norm=norm, axis=0)[:n_out]
    return torch.as_tensor(matrix, dtype=dtype, device=device)
