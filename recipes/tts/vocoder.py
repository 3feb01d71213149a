"""The vocoder seam: log-mel frames -> waveform, the same for every arm of a study.

A vocoder is anything with ``sample_rate`` and ``__call__(log_mel) -> waveform`` (a
``(frames, n_mels)`` tensor of the recipe's normalized log-mel in, a float32 numpy array
out). ``GriffinLim`` is the one built in: no pretrained neural vocoder can be downloaded
here, and a vocoder with no parameters judges every acoustic model by the same ears. A
neural vocoder (HiFi-GAN, WaveRNN...) plugs in as another entry of ``VOCODERS``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from tympan.audio.features import mel_filterbank


class Vocoder(Protocol):
    sample_rate: int

    def __call__(self, log_mel: torch.Tensor) -> np.ndarray:
        """A mono waveform for ``(frames, n_mels)`` normalized log-mel frames."""


class MelScale:
    """The recipe's spectrogram: log of the mel-weighted STFT magnitude, normalized with
    the training set's mean and standard deviation (so that 0 is an average frame)."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int,
                 mean: float = 0.0, std: float = 1.0) -> None:
        self.sample_rate, self.n_fft, self.hop, self.n_mels = sample_rate, n_fft, hop, n_mels
        self.mean, self.std = mean, std
        self.basis = mel_filterbank(sample_rate, n_fft, n_mels, fmin=0.0, htk=False)
        self.window = torch.hann_window(n_fft)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """``(1 + n_fft // 2, frames)`` STFT magnitude of a mono waveform."""
        return torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True).abs()

    def log_mel(self, wav: np.ndarray) -> torch.Tensor:
        """``(frames, n_mels)`` log-mel of a waveform, before normalization."""
        mel = self.basis @ self.magnitude(torch.as_tensor(wav, dtype=torch.float32))
        return torch.log(mel.clamp(min=1e-5)).T

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.mean) / self.std

    def denormalize(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.std + self.mean


class GriffinLim:
    """Mel -> linear magnitude by non-negative least squares (the filterbank's pseudo-inverse,
    clamped at 0), then ``iterations`` of fast Griffin-Lim (Perraudin et al. 2013:
    ``momentum`` 0.99) with torch's STFT; a fixed random phase to start, so the same frames
    always give the same samples."""

    def __init__(self, scale: MelScale, iterations: int = 32, momentum: float = 0.99,
                 power: float = 1.2) -> None:
        self.scale, self.iterations, self.momentum, self.power = scale, iterations, momentum, power
        self.sample_rate = scale.sample_rate
        self.inverse = torch.linalg.pinv(scale.basis)

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> np.ndarray:
        s = self.scale
        mel = torch.exp(s.denormalize(log_mel.detach().float().cpu())).T  # (n_mels, frames)
        # power > 1 sharpens the smeared harmonics a little, as Tacotron did.
        magnitude = (self.inverse @ mel).clamp(min=0.0) ** self.power
        generator = torch.Generator().manual_seed(0)
        phase = torch.rand(magnitude.shape, generator=generator) * 2 * torch.pi
        spec = magnitude * torch.exp(1j * phase)
        length = (magnitude.shape[1] - 1) * s.hop
        previous = torch.zeros_like(spec)
        for _ in range(self.iterations):
            wav = torch.istft(spec, s.n_fft, s.hop, window=s.window, center=True, length=length)
            rebuilt = torch.stft(wav, s.n_fft, s.hop, window=s.window, center=True,
                                 return_complex=True)
            accelerated = rebuilt + self.momentum * (rebuilt - previous)
            previous = rebuilt
            spec = magnitude * torch.exp(1j * torch.angle(accelerated))
        wav = torch.istft(spec, s.n_fft, s.hop, window=s.window, center=True, length=length)
        peak = float(wav.abs().max())
        return (wav / peak * 0.9 if peak > 0 else wav).numpy().astype(np.float32)


VOCODERS = {"griffin_lim": GriffinLim}
