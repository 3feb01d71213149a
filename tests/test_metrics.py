"""Speech metrics: error rates with bootstrap CIs, EER/minDCF, MCD with DTW, SI-SDR."""

from __future__ import annotations

import math

import jiwer
import librosa
import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq

from speech import speech
from tympan.audio.metrics import (
    character_error_rate,
    eer,
    mcd_from_audio,
    mel_cepstral_distortion,
    mel_cepstrum,
    min_dcf,
    si_sdr,
    word_error_rate,
)
from tympan.audio.metrics.mcd import dtw_path
from tympan.errors import AudioError, InvalidInputError

DB = 10.0 / math.log(10.0)


def _corpus(n: int, rng: np.random.Generator, error_p: float = 0.1) -> tuple[list, list]:
    vocab = ["turn", "the", "lights", "on", "off", "play", "music", "stop", "now", "please"]
    refs, hyps = [], []
    for _ in range(n):
        words = list(rng.choice(vocab, size=int(rng.integers(4, 12))))
        hyp = [w if rng.random() > error_p else "uh" for w in words]
        refs.append(" ".join(words))
        hyps.append(" ".join(hyp))
    return refs, hyps


# --- word / character error rate -------------------------------------------------------

def test_wer_counts_one_substitution_deletion_and_insertion() -> None:
    ref = "the cat sat on the mat"
    hyp = "the dog sat the mat today"  # cat->dog, 'on' deleted, 'today' inserted
    report = word_error_rate([ref], [hyp], n_boot=100)
    assert (report.substitutions, report.deletions, report.insertions) == (1, 1, 1)
    assert report.hits == 4 and report.reference_length == 6
    assert report.rate == pytest.approx(3 / 6)
    (utt,) = report.utterances
    assert (utt.reference, utt.hypothesis, utt.errors, utt.reference_length) == (ref, hyp, 3, 6)
    assert utt.rate == pytest.approx(0.5)


def test_character_error_rate_counts_characters_and_spaces() -> None:
    report = character_error_rate(["ab cd"], ["abd"], n_boot=100)  # ' ' and 'c' deleted
    assert report.unit == "character"
    assert report.deletions == 2 and report.reference_length == 5
    assert report.rate == pytest.approx(2 / 5)


def test_corpus_rate_is_pooled_and_agrees_with_jiwer() -> None:
    refs, hyps = _corpus(200, np.random.default_rng(1))
    hyps[3] = ""  # an empty hypothesis: all deletions
    wer = word_error_rate(refs, hyps, n_boot=200)
    cer = character_error_rate(refs, hyps, n_boot=200)
    assert wer.rate == pytest.approx(jiwer.wer(refs, hyps))
    assert cer.rate == pytest.approx(jiwer.cer(refs, hyps))
    assert wer.errors == sum(u.errors for u in wer.utterances)
    assert wer.rate == pytest.approx(wer.errors / sum(u.reference_length for u in wer.utterances))
    assert wer.utterances[3].rate == 1.0


def test_bootstrap_ci_contains_estimate_narrows_and_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    small = word_error_rate(*_corpus(30, rng), n_boot=2000)
    large = word_error_rate(*_corpus(600, rng), n_boot=2000)
    for report in (small, large):
        assert report.rate in report.ci
        assert report.ci.low < report.rate < report.ci.high
        assert report.ci.level == 0.95 and report.ci.resampled == "utterances"
    assert large.ci.high - large.ci.low < 0.5 * (small.ci.high - small.ci.low)
    refs, hyps = _corpus(50, np.random.default_rng(3))
    a = word_error_rate(refs, hyps, n_boot=500, seed=7)
    assert a == word_error_rate(refs, hyps, n_boot=500, seed=7)
    assert a.ci != word_error_rate(refs, hyps, n_boot=500, seed=8).ci
    narrow = word_error_rate(refs, hyps, n_boot=500, seed=7, ci=0.5)
    assert a.ci.low <= narrow.ci.low < narrow.ci.high <= a.ci.high


def test_speaker_bootstrap_is_wider_when_speakers_differ() -> None:
    rng = np.random.default_rng(4)
    refs, hyps, speakers = [], [], []
    for spk, error_p in enumerate([0.02, 0.05, 0.3, 0.5, 0.1, 0.6, 0.01, 0.4]):
        r, h = _corpus(40, rng, error_p)
        refs += r
        hyps += h
        speakers += [f"spk{spk}"] * 40
    report = word_error_rate(refs, hyps, speakers, n_boot=3000)
    assert report.speaker_ci is not None and report.speaker_ci.resampled == "speakers"
    assert report.rate in report.speaker_ci
    utt_width = report.ci.high - report.ci.low
    assert report.speaker_ci.high - report.speaker_ci.low > 2 * utt_width
    assert word_error_rate(refs, hyps, n_boot=10).speaker_ci is None


def test_error_rate_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="no references"):
        word_error_rate([], [])
    with pytest.raises(InvalidInputError, match="2 references but 1 hypotheses"):
        word_error_rate(["a b", "c"], ["a b"])
    with pytest.raises(InvalidInputError, match="2 references but 3 speakers"):
        character_error_rate(["a", "b"], ["a", "b"], ["s1", "s2", "s3"])
    with pytest.raises(InvalidInputError, match="single string"):
        word_error_rate("a b", "a b")
    with pytest.raises(InvalidInputError, match="all 1 references are empty"):
        word_error_rate([""], ["a"])
    with pytest.raises(InvalidInputError, match="ci must be"):
        word_error_rate(["a"], ["a"], ci=95)
    with pytest.raises(InvalidInputError, match="n_boot"):
        word_error_rate(["a"], ["a"], n_boot=0)


# --- verification: EER and minDCF ------------------------------------------------------

def test_eer_separable_scores_is_zero() -> None:
    result = eer([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 1, 1])
    assert result.eer == 0.0
    assert 0.3 < result.threshold <= 0.8


def test_eer_of_indistinguishable_scores_is_half() -> None:
    assert eer([0.5] * 6, [1, 0, 1, 0, 1, 0]).eer == pytest.approx(0.5)
    rng = np.random.default_rng(5)
    scores = rng.standard_normal(20_000)
    labels = rng.integers(0, 2, size=20_000)
    assert eer(scores, labels).eer == pytest.approx(0.5, abs=0.02)


def test_eer_hand_computed_with_interpolation() -> None:
    # targets 0.9, 0.6, 0.4; non-targets 0.5, 0.3, 0.2, 0.1. Accepting >= 0.4: miss 0,
    # false alarm 1/4; accepting >= 0.5: miss 1/3, false alarm 1/4. The rates cross 3/4 of
    # the way along that segment: EER 1/4 at threshold 0.4 + 0.75 * 0.1.
    result = eer([0.9, 0.6, 0.4, 0.5, 0.3, 0.2, 0.1], [1, 1, 1, 0, 0, 0, 0])
    assert result.eer == pytest.approx(0.25)
    assert result.threshold == pytest.approx(0.475)


def test_eer_matches_roc_interpolation_with_brentq() -> None:
    rng = np.random.default_rng(6)
    target, nontarget = rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 500)
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(300), np.zeros(500)])
    # The ROC as sklearn.metrics.roc_curve builds it: one point per distinct threshold.
    order = np.argsort(-scores, kind="stable")
    tpr = np.concatenate([[0.0], np.cumsum(labels[order]) / 300])
    fpr = np.concatenate([[0.0], np.cumsum(1 - labels[order]) / 500])
    expected = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert eer(scores, labels).eer == pytest.approx(expected, abs=1e-9)


def test_eer_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    result = eer(torch.tensor([0.9, 0.6, 0.4, 0.5, 0.3, 0.2, 0.1]),
                 torch.tensor([1, 1, 1, 0, 0, 0, 0]))
    assert result.eer == pytest.approx(0.25)


def test_min_dcf_known_cases() -> None:
    scores = [0.9, 0.6, 0.4, 0.5, 0.3, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0, 0]
    # p_target 0.01: DCF/C_default = P_miss + 99 P_fa; best is rejecting all but 0.9
    # (P_miss 1/3, P_fa 0).
    assert min_dcf(scores, labels) == pytest.approx(1 / 3)
    # p_target 0.5: P_miss + P_fa, best at threshold 0.4 (0 + 1/4).
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(0.25)
    assert min_dcf([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    # No better than a trivial system: normalized cost 1.
    assert min_dcf([0.5] * 4, [1, 0, 1, 0], p_target=0.05) == pytest.approx(1.0)


def test_verification_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="both target and non-target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(InvalidInputError, match="equal length"):
        eer([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(InvalidInputError, match="labels must be 1"):
        eer([0.1, 0.2], [2, 0])
    with pytest.raises(InvalidInputError, match="NaN"):
        min_dcf([0.1, float("nan")], [1, 0])
    with pytest.raises(InvalidInputError, match="p_target"):
        min_dcf([0.1, 0.2], [1, 0], p_target=1.0)


# --- mel cepstral distortion -----------------------------------------------------------

def test_mcd_identical_is_zero_and_known_offset() -> None:
    rng = np.random.default_rng(7)
    a = rng.standard_normal((50, 25))
    assert mel_cepstral_distortion(a, a) == 0.0
    b = a.copy()
    b[:, 3] += 0.1  # one coefficient off by 0.1 on every frame
    assert mel_cepstral_distortion(a, b, dtw=False) == pytest.approx(DB * math.sqrt(2) * 0.1)
    c = a.copy()
    c[:, 0] += 5.0  # c0 (level) is ignored unless asked for
    assert mel_cepstral_distortion(a, c) == 0.0
    assert mel_cepstral_distortion(a, c, dtw=False, exclude_c0=False) == pytest.approx(
        DB * math.sqrt(2) * 5.0)


def test_mcd_is_symmetric_and_positive_for_different_sequences() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((40, 13)), rng.standard_normal((55, 13))
    ab, ba = mel_cepstral_distortion(a, b), mel_cepstral_distortion(b, a)
    assert ab > 1.0
    assert ab == pytest.approx(ba, rel=0.05)


def test_dtw_aligns_a_time_stretched_copy() -> None:
    rng = np.random.default_rng(9)
    a = np.cumsum(rng.standard_normal((60, 13)), axis=0)  # smooth-ish trajectories
    stretched = np.repeat(a, 2, axis=0)  # every frame twice: half speed
    assert mel_cepstral_distortion(a, stretched) == pytest.approx(0.0, abs=1e-9)
    i, j = dtw_path(a, stretched)
    assert (i[0], j[0], i[-1], j[-1]) == (0, 0, 59, 119)
    assert np.all(np.diff(i) >= 0) and np.all(np.diff(j) >= 0)
    with pytest.raises(InvalidInputError, match="60 frames but syn_mcep has 120"):
        mel_cepstral_distortion(a, stretched, dtw=False)


def test_dtw_cost_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((12, 3)), rng.standard_normal((17, 3))
    cost = np.linalg.norm(x[:, None] - y[None], axis=2)
    acc = np.full((13, 18), np.inf)
    acc[0, 0] = 0.0
    for a in range(1, 13):
        for b in range(1, 18):
            acc[a, b] = cost[a - 1, b - 1] + min(acc[a - 1, b], acc[a, b - 1], acc[a - 1, b - 1])
    i, j = dtw_path(x, y)
    assert cost[i, j].sum() == pytest.approx(acc[12, 17])


def test_mcd_from_speech_tolerates_timing_but_not_content() -> None:
    ref, sr = speech("turn the lights on in the kitchen")
    slow, _ = speech("turn the lights on in the kitchen", rate=130)
    other, _ = speech("play some music by the river")
    assert mcd_from_audio(ref, ref, sr) == 0.0
    same_words = mcd_from_audio(ref, slow, sr)
    different = mcd_from_audio(ref, other, sr)
    assert 0.0 < same_words < 0.3 * different
    cep = mel_cepstrum(ref, sr, n_mfcc=13)
    assert cep.shape[1] == 13 and cep.shape[0] == pytest.approx(ref.size / (sr * 0.005), abs=6)
    with pytest.raises(AudioError, match="mono"):
        mcd_from_audio(np.stack([ref, ref]), ref, sr)


def _log_mel_db(wav: np.ndarray, sr: int, n_mels: int = 40) -> np.ndarray:
    """20 log10 of the mel amplitude per frame, computed independently of tympan: librosa's
    HTK filterbank on a framed, Hann-windowed power spectrum, floored at -100 dB."""
    win, hop = round(sr * 0.025), round(sr * 0.005)
    n_fft = 1 << (win - 1).bit_length()
    frames = librosa.util.frame(np.asarray(wav, dtype=np.float64), frame_length=win,
                                hop_length=hop, axis=0) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2,
                             htk=True, norm=None)
    return 10.0 * np.log10(np.maximum(power @ fb.T, 1e-10))


def test_mcd_from_audio_is_the_rms_log_spectral_distance_in_db() -> None:
    # With every coefficient kept, (10/ln 10) sqrt(2 sum_{d>=1} (c_d - c'_d)^2) on the SPTK
    # scale (log|H| = c0 + sum c_m cos(m w)) is, by Parseval, the RMS over mel bands of the dB
    # difference of the two log spectra, their mean difference (c0) removed.
    ref, sr = speech("turn the lights on in the kitchen")
    other, _ = speech("turn the lights on in the kitchen", voice="en-us", pitch=70)
    n = min(ref.size, other.size)
    a, b = _log_mel_db(ref[:n], sr), _log_mel_db(other[:n], sr)
    expected = np.std(a - b, axis=1).mean()
    assert expected > 3.0  # a real difference, not a rounding artefact
    got = mcd_from_audio(ref[:n], other[:n], sr, n_mfcc=40, dtw=False)
    assert got == pytest.approx(expected, rel=1e-9)
    # Fewer coefficients compare cepstrally smoothed spectra: a little less, same scale.
    smooth = mcd_from_audio(ref[:n], other[:n], sr, dtw=False)
    assert 0.6 * expected < smooth < expected


# --- SI-SDR ----------------------------------------------------------------------------

def test_si_sdr_scaled_copy_is_very_high() -> None:
    ref, _ = speech("the quick brown fox")
    assert si_sdr(0.3 * ref, ref) > 60.0
    assert si_sdr(-2.0 * ref.astype(np.float64) + 0.01, ref) > 60.0  # sign, scale and offset


def test_si_sdr_with_known_noise_level() -> None:
    rng = np.random.default_rng(11)
    ref = rng.standard_normal(16000)
    ref -= ref.mean()
    noise = rng.standard_normal(16000)
    noise -= noise.mean()
    noise -= (noise @ ref) / (ref @ ref) * ref  # orthogonal to the reference
    noise *= np.sqrt((ref @ ref) / (noise @ noise)) * 10 ** (-10 / 20)  # exactly 10 dB down
    assert si_sdr(ref + noise, ref) == pytest.approx(10.0, abs=0.1)
    assert si_sdr(2.0 * (ref + noise), ref) == pytest.approx(10.0, abs=0.1)


def test_si_sdr_batches_over_leading_axes() -> None:
    rng = np.random.default_rng(12)
    ref = rng.standard_normal((2, 3, 800))
    est = ref + 0.1 * rng.standard_normal((2, 3, 800))
    batch = si_sdr(est, ref)
    assert isinstance(batch, np.ndarray) and batch.shape == (2, 3)
    assert batch[1, 2] == pytest.approx(si_sdr(est[1, 2], ref[1, 2]))
    with pytest.raises(AudioError, match="same non-empty shape"):
        si_sdr(est, ref[..., :-1])
    with pytest.raises(AudioError, match="silent"):
        si_sdr(np.ones(10), np.ones(10))  # constant: silent once the mean is removed
