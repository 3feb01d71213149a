"""tympan.audio.features against librosa on real (espeak-ng) speech: same parameters, same
numbers; plus batching, autograd, dtypes and devices."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from speech import speech
from tympan.audio import features as F
from tympan.errors import InvalidInputError

SR = 16000

# A covering set rather than the cross product: every value of every parameter appears at
# least once, in varied combinations (n_fft, hop, win_length, n_mels, fmin, fmax, htk, norm,
# center, pad_mode).
CASES = [
    (512, 160, 400, 80, 0.0, None, False, "slaney", True, "constant"),
    (512, 128, None, 40, 20.0, 7600.0, True, None, True, "reflect"),
    (512, 256, 400, 40, 0.0, 7600.0, False, None, False, "constant"),
    (1024, 256, None, 80, 0.0, 7600.0, False, None, False, "constant"),
    (1024, 160, 400, 128, 20.0, None, True, "slaney", True, "constant"),
    (1024, 512, None, 40, 0.0, None, True, None, True, "reflect"),
    (2048, 512, None, 128, 0.0, None, False, "slaney", True, "reflect"),
    (2048, 256, 400, 80, 20.0, 7600.0, True, "slaney", False, "constant"),
    (2048, 128, None, 128, 20.0, 7600.0, False, None, True, "constant"),
]
KEYS = ("n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax", "htk", "norm",
        "center", "pad_mode")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    wav, sr = speech("the quick brown fox jumps over the lazy dog", sample_rate=SR)
    assert sr == SR
    return wav.astype(np.float64)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_log_mel_and_mfcc_match_librosa(clip: np.ndarray, case: tuple) -> None:
    kw = dict(zip(KEYS, case, strict=True))
    ref_mel = librosa.feature.melspectrogram(y=clip, sr=SR, dtype=np.float64, **kw)
    ours = F.log_mel(clip, SR, **kw)
    assert ours.dtype == torch.float64 and ours.shape == ref_mel.shape
    np.testing.assert_allclose(ours.numpy(), librosa.power_to_db(ref_mel), rtol=0, atol=1e-3)

    mel_kw = {k: v for k, v in kw.items() if k != "norm"}  # mfcc's `norm` is the DCT's
    for lifter in (0, 22):
        ref = librosa.feature.mfcc(y=clip, sr=SR, n_mfcc=20, lifter=lifter, dtype=np.float64,
                                   norm="ortho", **mel_kw) if kw["norm"] == "slaney" else None
        if ref is None:  # librosa's mfcc cannot pass the filterbank norm: build it by hand
            db = librosa.power_to_db(ref_mel)
            ref = librosa.feature.mfcc(S=db, n_mfcc=20, lifter=lifter)
        got = F.mfcc(clip, SR, n_mfcc=20, lifter=lifter, mel_norm=kw["norm"], **mel_kw)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("center", "pad_mode", "win_length", "window"), [
    (True, "constant", None, "hann"), (True, "reflect", 400, "hamming"),
    (False, "constant", 300, "blackman"),
])
def test_stft_matches_librosa(clip: np.ndarray, center: bool, pad_mode: str,
                              win_length: int | None, window: str) -> None:
    ref = librosa.stft(clip, n_fft=512, hop_length=160, win_length=win_length, window=window,
                       center=center, pad_mode=pad_mode)
    got = F.stft(clip, 512, 160, win_length, window, center, pad_mode)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(F.spectrogram(clip, 512, 160, win_length, window, center,
                                             pad_mode, power=1.0).numpy(), np.abs(ref),
                               atol=1e-9)


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None, 1.0])
@pytest.mark.parametrize(("n_fft", "n_mels", "fmin", "fmax"),
                         [(512, 40, 0.0, None), (1024, 80, 20.0, 7600.0), (2048, 128, 0.0, None)])
def test_mel_filterbank_equals_librosa(htk: bool, norm: str | float | None, n_fft: int,
                                       n_mels: int, fmin: float, fmax: float | None) -> None:
    ref = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                              norm=norm, dtype=np.float64)
    got = F.mel_filterbank(SR, n_fft, n_mels, fmin, fmax, htk, norm, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-15)


def test_power_to_db_matches_librosa_options(clip: np.ndarray) -> None:
    S = np.abs(librosa.stft(clip, n_fft=512, hop_length=160)) ** 2
    for kw in ({}, {"ref": 1e-3, "amin": 1e-6}, {"top_db": None}, {"top_db": 40.0}):
        np.testing.assert_allclose(F.power_to_db(S, **kw).numpy(), librosa.power_to_db(S, **kw),
                                   atol=1e-9)
    np.testing.assert_allclose(F.power_to_db(S, ref=torch.amax).numpy(),
                               librosa.power_to_db(S, ref=np.max), atol=1e-9)


def _batch() -> np.ndarray:
    texts = ("turn the lights on", "what time is it", "play some music")
    clips = [speech(t, sample_rate=SR)[0] for t in texts]
    n = min(len(c) for c in clips)
    # Different levels, so a batch-wide top_db floor would show up.
    levels = (1.0, 0.01, 0.3)
    return np.stack([c[:n] * g for c, g in zip(clips, levels, strict=True)]).astype(np.float64)


def test_batched_input_equals_per_item() -> None:
    batch = _batch()
    kw = {"n_fft": 512, "hop_length": 160, "n_mels": 80}
    together = F.log_mel(batch, SR, **kw)
    nested = F.mfcc(batch.reshape(3, 1, -1), SR, **kw)
    assert together.shape[0] == 3 and nested.shape[:2] == (3, 1)
    for i, item in enumerate(batch):
        np.testing.assert_allclose(together[i].numpy(), F.log_mel(item, SR, **kw).numpy(),
                                   atol=1e-9)
        np.testing.assert_allclose(nested[i, 0].numpy(), F.mfcc(item, SR, **kw).numpy(),
                                   atol=1e-9)
        ref = librosa.feature.mfcc(y=item, sr=SR, dtype=np.float64, **kw)
        np.testing.assert_allclose(nested[i, 0].numpy(), ref, rtol=1e-4, atol=1e-6)


def test_gradients_flow_to_the_waveform(clip: np.ndarray) -> None:
    y = torch.tensor(clip[:4000], requires_grad=True)
    F.mfcc(y, SR, n_fft=512, hop_length=160, n_mels=40).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0

    small = torch.tensor(clip[1000:1200], requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: F.melspectrogram(x, SR, n_fft=64, hop_length=32, n_mels=8), (small,))
    assert torch.autograd.gradcheck(
        lambda x: F.log_mel(x, SR, n_fft=64, hop_length=32, n_mels=8, top_db=None), (small,))


def test_float32_is_close_to_float64(clip: np.ndarray) -> None:
    kw = {"n_fft": 512, "hop_length": 160, "n_mels": 80}
    hi = F.log_mel(clip, SR, **kw)
    lo = F.log_mel(clip.astype(np.float32), SR, **kw)
    assert lo.dtype == torch.float32
    np.testing.assert_allclose(lo.double().numpy(), hi.numpy(), atol=0.05)
    np.testing.assert_allclose(F.mfcc(clip.astype(np.float32), SR, **kw).double().numpy(),
                               F.mfcc(clip, SR, **kw).numpy(), rtol=1e-3, atol=0.05)


def test_numpy_torch_and_integer_inputs(clip: np.ndarray) -> None:
    from_numpy = F.log_mel(clip.astype(np.float32), SR, n_fft=512)
    from_torch = F.log_mel(torch.from_numpy(clip.astype(np.float32)), SR, n_fft=512)
    assert isinstance(from_numpy, torch.Tensor)
    assert torch.equal(from_numpy, from_torch)
    pcm = (clip * 32767).astype(np.int16)
    assert F.melspectrogram(pcm, SR, n_fft=512).dtype == torch.float32


def test_constants_are_cached_per_device_and_dtype() -> None:
    a = F.mel_filterbank(SR, 512, 80)
    assert F.mel_filterbank(SR, 512, 80) is a
    assert F.mel_filterbank(SR, 512, 80, dtype=torch.float64).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(clip: np.ndarray) -> None:
    y = torch.from_numpy(clip.astype(np.float32))
    kw = {"n_fft": 512, "hop_length": 160, "n_mels": 80}
    got = F.mfcc(y.cuda(), SR, **kw)
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), F.mfcc(y, SR, **kw).numpy(), rtol=1e-3,
                               atol=0.05)


def test_bad_arguments_raise_invalid_input() -> None:
    y = np.zeros(300)
    with pytest.raises(InvalidInputError, match="shorter than n_fft"):
        F.stft(y, n_fft=512, center=False)
    with pytest.raises(InvalidInputError, match="reflect"):
        F.stft(y[:100], n_fft=512, pad_mode="reflect")
    with pytest.raises(InvalidInputError, match="win_length"):
        F.stft(y, n_fft=256, win_length=400)
    with pytest.raises(InvalidInputError, match="norm"):
        F.mel_filterbank(SR, 512, norm="l2")
    with pytest.raises(InvalidInputError, match="n_mfcc"):
        F.mfcc(np.ones(4000), SR, n_mfcc=50, n_mels=40, n_fft=512)
    with pytest.raises(InvalidInputError, match="amin"):
        F.power_to_db(np.ones(3), amin=0)
    with pytest.raises(InvalidInputError, match="window"):
        F.stft(y, n_fft=256, window="no-such-window")


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", ("kaiser", 8.0), "bohman"])
@pytest.mark.parametrize("length", [1, 2, 7, 400, 512])
def test_named_windows_are_scipys_periodic_windows(window: str | tuple, length: int) -> None:
    from scipy.signal import get_window

    got = F._named_window(window, length, length, torch.device("cpu"), torch.float64)
    np.testing.assert_allclose(got.numpy(), get_window(window, length, fftbins=True),
                               rtol=0, atol=1e-12)


def test_log_mel_does_not_import_scipy_signal() -> None:
    """scipy.signal imports scipy.stats: 2 s more to start every process that computes
    features (a training run, a server), for three cosine windows."""
    import subprocess
    import sys

    code = ("import sys, torch; from tympan.audio.features import log_mel; "
            "log_mel(torch.zeros(4000), 16000, n_fft=512, hop_length=160, n_mels=40); "
            "print('scipy.signal' in sys.modules, 'scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


def _clips(lengths: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(n) * rng.uniform(0.01, 1.0) for n in lengths]
    # A quiet clip ending in a click: the frame past its last one (within its padding) holds
    # the click at the window's peak, 20 dB above any of its own frames, so a top_db floor
    # taken over the padding too would cut its quiet frames.
    if len(clips) > 1:
        clips[0] = 1e-5 * rng.standard_normal(lengths[0])
        clips[0][-1] = 1.0
    return clips


@pytest.mark.parametrize("lengths", [(50 * 160 + 159, 16000, 400, 28800, 161),
                                     (12345,), (28800, 1, 159, 160)])
@pytest.mark.parametrize("front_end", ["log_mel", "mfcc"])
def test_a_padded_batch_with_lengths_gives_each_clip_its_features_alone(
        lengths: tuple[int, ...], front_end: str) -> None:
    clips = _clips(lengths)
    waves, counts = F.pad_waves(clips)
    kw = {"n_fft": 400, "hop_length": 160, "n_mels": 40}
    func = getattr(F, front_end)
    batched = func(waves.double(), SR, lengths=counts, **kw)
    frames = F.stft_frames(counts, n_fft=400, hop_length=160)
    assert batched.shape[-1] == int(frames.max())
    for i, clip in enumerate(clips):
        alone = func(clip, SR, **kw)
        assert alone.shape[-1] == frames[i]
        np.testing.assert_allclose(batched[i, :, :frames[i]].numpy(), alone.numpy(),
                                   atol=1e-6)


def test_pad_waves_gives_the_same_batch_from_arrays_and_tensors() -> None:
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n) for n in (300, 1, 120)]
    arrays = [clips[0], clips[1].astype(np.float32), clips[2].reshape(-1, 1)]  # any float
    tensors = [torch.from_numpy(np.asarray(c)) for c in clips]
    got, counts = F.pad_waves(arrays)
    want, want_counts = F.pad_waves(tensors)
    assert got.dtype == torch.float32 and tuple(got.shape) == (3, 300)
    assert torch.equal(got, want) and torch.equal(counts, want_counts)
    assert counts.tolist() == [300, 1, 120] and got[1, 1:].abs().sum() == 0
    mixed, _ = F.pad_waves([clips[0], tensors[2], [0.5, 0.25]])  # lists and tensors too
    assert torch.equal(mixed[1, :120], want[2, :120]) and mixed[2, :2].tolist() == [0.5, 0.25]


@pytest.mark.parametrize(("center", "scale"), [(True, True), (True, False), (False, False)])
def test_normalize_frames_normalizes_each_utterance_over_its_own_frames(
        center: bool, scale: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(n, 5, generator=gen) * 3 + 1 for n in (7, 2, 12)]
    x, frames = F.pad_features(feats)
    got = F.normalize_frames(x, frames, center=center, scale=scale)
    for i, f in enumerate(feats):
        want = f - f.mean(0) if center else f
        want = want / (want.std(0) + 1e-5) if scale else want
        torch.testing.assert_close(got[i, :len(f)], want)
        assert got[i, len(f):].abs().sum() == 0
    alone = F.normalize_frames(feats[2][None], frames[2:], center=center, scale=scale)
    torch.testing.assert_close(alone[0], got[2])


def test_lengths_that_cannot_hold_raise_invalid_input() -> None:
    waves, counts = F.pad_waves([np.ones(800), np.ones(500)])
    with pytest.raises(InvalidInputError, match="pad_mode='constant'"):
        F.log_mel(waves, SR, n_fft=400, pad_mode="reflect", lengths=counts)
    with pytest.raises(InvalidInputError, match="one length per clip"):
        F.log_mel(waves, SR, n_fft=400, lengths=counts[:1])
    with pytest.raises(InvalidInputError, match="lengths must be in"):
        F.mfcc(waves, SR, n_fft=400, n_mels=40, lengths=torch.tensor([800, 900]))
    with pytest.raises(InvalidInputError, match="lengths must be in"):
        F.log_mel(waves, SR, n_fft=600, center=False, lengths=counts)
    with pytest.raises(InvalidInputError, match="one frame count per item"):
        F.normalize_frames(torch.zeros(2, 3), torch.tensor([3, 3]))
