"""A request's audio: WAV, FLAC or OGG bytes decoded to mono float32 at the model's rate.

Every way a client can get this wrong (no bytes, a format libsndfile cannot read, no frames,
non-finite samples, too long) raises ``AudioError`` with the reason, which the server answers
as a 4xx. Any sample rate is accepted and resampled (``tympan.audio.io.resample``).
"""

from __future__ import annotations

import io

import numpy as np

from tympan.audio.io import resample
from tympan.errors import AudioError

QUICK_BYTES = 1 << 20  # a WAV this small at the model's rate decodes in well under 1 ms


def decodes_quickly(data: bytes, sample_rate: int) -> bool:
    """Whether ``data`` is a small WAV file at ``sample_rate`` (no resampling, no codec): one
    the server decodes on its event loop, where a worker thread's hand-off would cost more
    than the decoding (about 0.1 ms against 0.03 ms for a 3 s clip)."""
    return (len(data) <= QUICK_BYTES and data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
            and int.from_bytes(data[24:28], "little") == sample_rate)


class AudioTooLongError(AudioError):
    """The clip is longer than the server takes (answered 413)."""


def decode(data: bytes, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 samples of the audio file ``data``, at ``sample_rate``."""
    import soundfile as sf

    if not data:
        raise AudioError("the request holds no audio: send WAV, FLAC or OGG bytes as the body "
                         "(Content-Type: audio/wav...) or as the multipart field 'audio'")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, frames = f.samplerate, f.frames
            if frames > 0 and frames / rate > max_seconds:  # before decoding it all
                raise AudioTooLongError(f"the clip lasts {frames / rate:.1f} s; this server "
                                        f"takes at most {max_seconds:g} s (--max-audio-seconds)")
            samples = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc).rpartition(": ")[2] or "unreadable"  # libsndfile's words, no repr
        raise AudioError(f"cannot decode the request's audio ({reason}): send a WAV, FLAC or "
                         "OGG file") from None
    if samples.shape[0] == 0:
        raise AudioError("the audio file holds no frames")
    if samples.shape[0] / rate > max_seconds:  # formats that do not say their length up front
        raise AudioTooLongError(f"the clip lasts {samples.shape[0] / rate:.1f} s; this server "
                                f"takes at most {max_seconds:g} s (--max-audio-seconds)")
    wave = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(wave).all():
        raise AudioError("the audio holds NaN or infinite samples")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if rate != sample_rate:
        wave = resample(wave, int(rate), int(sample_rate))
    if len(wave) == 0:
        raise AudioError("the audio is too short to resample to the model's rate")
    return wave


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    """``wave`` as WAV bytes (float32): what a client sends, for tests and benchmarks."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, dtype=np.float32), int(sample_rate), format="WAV",
             subtype="FLOAT")
    return buffer.getvalue()
