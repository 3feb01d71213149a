"""A request's audio: WAV, FLAC or OGG bytes decoded to mono float32 at the model's rate.

Every way a client can get this wrong (no bytes, a format libsndfile cannot read, no frames,
non-finite samples, too long) raises ``AudioError`` with the reason, which the server answers
as a 4xx. Any sample rate is accepted and resampled (``tympan.audio.io.resample``).

A PCM or float WAV is read by ``scipy.io.wavfile`` (the same samples as libsndfile's), the rest
by soundfile. Reading from memory, libsndfile calls back into Python for every read and seek,
and each call-back takes the GIL: on a server under load the batch worker holds it often, so
one clip's decoding waited on it again and again (40% of the event loop's time at 16 clients,
sampled, against 5 to 12 us for scipy's few numpy reads).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from scipy.io import wavfile

from tympan.audio.io import resample
from tympan.errors import AudioError

QUICK_BYTES = 1 << 20  # a WAV this small at the model's rate decodes in well under 1 ms
# soundfile writes a PEAK chunk into float WAVs; scipy skips it, and would warn on every one
warnings.filterwarnings("ignore", message=r"Chunk \(non-data\) not understood",
                        category=wavfile.WavFileWarning)


def decodes_quickly(data: bytes, sample_rate: int) -> bool:
    """Whether ``data`` is a small WAV file at ``sample_rate`` (no resampling, no codec): one
    the server decodes on its event loop, where a worker thread's hand-off would cost more
    than the decoding (about 0.1 ms against 0.01 ms for a 3 s clip)."""
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
    got = _wav(data)
    if got is None:
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                rate, frames = f.samplerate, f.frames
                if frames > 0 and frames / rate > max_seconds:  # before decoding it all
                    raise AudioTooLongError(f"the clip lasts {frames / rate:.1f} s; this server "
                                            f"takes at most {max_seconds:g} s "
                                            "(--max-audio-seconds)")
                got = f.samplerate, f.read(dtype="float32", always_2d=True)
        except AudioError:
            raise
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            # ValueError: soundfile's own refusals (a GSM WAV reads as unseekable)
            reason = str(exc).rpartition(": ")[2] or "unreadable"  # libsndfile's words
            raise AudioError(f"cannot decode the request's audio ({reason}): send a WAV, FLAC "
                             "or OGG file") from None
    rate, samples = got
    if samples.shape[0] == 0:
        raise AudioError("the audio file holds no frames")
    if samples.shape[0] / rate > max_seconds:  # formats that do not say their length up front
        raise AudioTooLongError(f"the clip lasts {samples.shape[0] / rate:.1f} s; this server "
                                f"takes at most {max_seconds:g} s (--max-audio-seconds)")
    channels = samples.shape[1]  # mixed down by a product: numpy's mean over rows of 2 is slow
    wave = samples @ np.full(channels, 1 / channels, np.float32) if channels > 1 else samples[:, 0]
    if not np.isfinite(wave).all():
        raise AudioError("the audio holds NaN or infinite samples")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if rate != sample_rate:
        wave = resample(wave, int(rate), int(sample_rate))
    if len(wave) == 0:
        raise AudioError("the audio is too short to resample to the model's rate")
    return wave


def _wav(data: bytes) -> tuple[int, np.ndarray] | None:
    """(rate, (frames, channels) float32) of a PCM or float WAV, scaled as libsndfile scales
    it; None for any other file, or one scipy cannot read (soundfile then says why)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        rate, samples = wavfile.read(io.BytesIO(data))
    except Exception:  # a malformed header fails in many ways inside scipy
        return None
    kind, size = samples.dtype.kind, samples.dtype.itemsize
    if rate <= 0 or kind not in "uif" or (kind == "u" and size != 1):
        return None
    if kind == "u":  # 8-bit PCM is unsigned, centred on 128
        samples = (samples.astype(np.float32) - 128) / 128
    elif kind == "i":  # full scale as libsndfile reads it (scipy left-justifies 24-bit PCM)
        samples = samples.astype(np.float32) / np.float32(2.0 ** (8 * size - 1))
    samples = samples[:, None] if samples.ndim == 1 else samples
    return int(rate), samples.astype(np.float32, copy=False)


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    """``wave`` as WAV bytes (float32): what a client sends, for tests and benchmarks."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, dtype=np.float32), int(sample_rate), format="WAV",
             subtype="FLOAT")
    return buffer.getvalue()
