"""Reference profiles and per-input anomaly scoring (tympan.probe.profile).

The main tests run the ASR recipe's conv CTC model (small, untrained: what matters is that its
layers see real speech) on log-mel crops of espeak-ng speech. The reference, the clean
held-out inputs and the shifted inputs are random crops of the same utterances, so clean
held-out inputs are exchangeable with the calibration inputs, as conformal p-values assume.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from torch import nn

import tympan
from speech import speech
from tympan.audio.augment import add_noise
from tympan.errors import InvalidInputError, TympanError
from tympan.probe.features import collect
from tympan.probe.profile import Profile, fit, fit_features

FEATS, FRAMES = 16, 24


class SpecNet(nn.Module):
    """A tiny conv net over (batch, frames, bands) "spectrograms"."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.front = nn.Conv1d(FEATS, 24, 3, padding=1)
        self.blocks = nn.Sequential(nn.Conv1d(24, 24, 3, padding=1), nn.ReLU(),
                                    nn.Conv1d(24, 24, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(24, 8)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.front(x.transpose(1, 2)))
        return self.head(self.blocks(h).transpose(1, 2))


def spectrograms(n: int, seed: int, noise: float = 0.0) -> torch.Tensor:
    """Smooth random spectral envelopes with a little texture; ``noise`` adds white noise."""
    g = torch.Generator().manual_seed(seed)
    bands = torch.linspace(0, 1, FEATS)
    centre = torch.rand(n, 1, 1, generator=g)
    level = 1 + 0.3 * torch.randn(n, 1, 1, generator=g)
    envelope = level * torch.exp(-((bands[None, None, :] - centre) ** 2) / 0.05)
    x = envelope + 0.3 * torch.randn(n, FRAMES, FEATS, generator=g)
    return x + noise * torch.randn(n, FRAMES, FEATS, generator=g)


def batches(x: torch.Tensor, size: int = 100) -> list[torch.Tensor]:
    return list(x.split(size))


def auroc(shifted: np.ndarray, clean: np.ndarray) -> float:
    """P(score of a shifted input > score of a clean one), ties counted half."""
    ranks = rankdata(np.concatenate([shifted, clean]))
    n1, n0 = len(shifted), len(clean)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# -- real speech through the recipe's model ----------------------------------------------------

TEXTS = ("four one nine two", "seven seven three", "zero eight five six one", "two nine four",
         "one three three eight", "six zero two", "nine five seven one four", "eight two six")
VOICES = (("m1", 50, 150), ("f2", 60, 175), ("m3", 40, 200))
CROP = 48  # frames per input: equal lengths, so batches need no padding


Inputs = tuple[torch.Tensor, torch.Tensor]


def _speech_inputs(n: int, seed: int, snr_db: float | None = None) -> Inputs:
    """A batch (x, lengths) of ``n`` random (CROP, 40) log-mel crops of the test utterances,
    optionally with white noise at ``snr_db`` added to the waveforms first."""
    from recipes.asr_ctc.train import Config, features

    cfg = Config()
    rng = np.random.default_rng(seed)
    utterances = []
    for text in TEXTS:
        for variant, pitch, rate in VOICES:
            wav = speech(text, "en", variant=variant, pitch=pitch, rate=rate)[0].copy()
            if snr_db is not None:
                wav = add_noise(wav, snr_db, "white", rng=rng)
            utterances.append(features(cfg, wav))
    picks = rng.integers(0, len(utterances), n)
    crops = []
    for i in picks:
        u = utterances[i]
        start = int(rng.integers(0, len(u) - CROP + 1))
        crops.append(u[start:start + CROP])
    return torch.stack(crops), torch.full((n,), CROP)


def part(inputs: Inputs, start: int, stop: int) -> Inputs:
    return inputs[0][start:stop], inputs[1][start:stop]


def split(inputs: Inputs, size: int = 100) -> list[Inputs]:
    return [part(inputs, i, i + size) for i in range(0, len(inputs[0]), size)]


@pytest.fixture(scope="module")
def asr_model() -> nn.Module:
    from recipes.asr_ctc.train import Config, CTCModel

    torch.manual_seed(0)
    return CTCModel(Config(hidden=32, layers=3), dims=40).eval()


@pytest.fixture(scope="module")
def reference() -> Inputs:
    return _speech_inputs(1000, seed=1)


@pytest.fixture(scope="module")
def speech_profile(asr_model, reference) -> Profile:
    return fit(asr_model, split(reference), calibration=0.3, seed=0)


def test_fit_builds_a_profile_of_the_auto_layers(asr_model, speech_profile) -> None:
    profile = speech_profile
    assert profile.layer_names == ["subsample", "encoder.0", "encoder.1", "encoder.2", "out"]
    assert profile.n_calibration == 300 and profile.meta["n_fit"] == 700
    assert profile.meta["detector"] == "mahalanobis" and profile.meta["pooling"] == "mean+std"
    front = profile.layers[0]
    assert front.channels == 32 and front.detector.precision.shape == (64, 64)
    assert front.channel_mean.shape == (32,) and (front.channel_std > 0).all()
    assert 0 <= front.detector.shrinkage <= 1
    assert not asr_model.training


def test_calibration_holds_on_clean_held_out_speech(asr_model, reference) -> None:
    names, ref = collect(asr_model, split(reference))
    _, held_out = collect(asr_model, _speech_inputs(1000, seed=2))
    kinds = {n: type(dict(asr_model.named_modules())[n]).__name__ for n in names}
    rates = []
    for seed in range(6):  # six fit/calibration splits of the same reference
        report = fit_features(ref, kinds, seed=seed).score_features(held_out)
        rates.append([report.flagged(0.05).mean(), report.flagged(0.01).mean()])
        # a clean input's per-layer p-values are calibrated too
        assert ((report.p_values <= 0.05).mean(0) <= 0.09).all()
    rates_ = np.array(rates)
    print("clean flag rates per split (alpha 0.05, 0.01):", rates_.round(3).tolist())
    # conformal p-values are exactly valid on average over calibration sets; a single split
    # with 300 calibration inputs still varies by about +-1.3 points at alpha = 0.05
    assert (rates_[:, 0] <= 0.085).all() and (rates_[:, 1] <= 0.025).all()
    assert rates_[:, 0].mean() <= 0.065 and rates_[:, 1].mean() <= 0.015


def test_noise_in_the_waveform_diverges_at_the_front_end(asr_model, speech_profile) -> None:
    clean = speech_profile.score(asr_model, _speech_inputs(200, seed=3))
    noisy = speech_profile.score(asr_model, _speech_inputs(200, seed=4, snr_db=10))
    assert auroc(noisy.anomaly_score, clean.anomaly_score) >= 0.99
    assert noisy.flagged(0.01).mean() >= 0.95
    named = [layer for layer in noisy.entry_layer if layer is not None]
    assert len(named) == noisy.flagged(0.01).sum()  # flagged <=> where it enters is named
    assert np.mean([layer == "subsample" for layer in named]) >= 0.95
    # the z profile jumps at the front end: that is where a channel shift enters
    assert (noisy.profile[:, 0] > 3).mean() >= 0.95


def test_a_shift_injected_at_a_middle_layer_is_named_there(asr_model, speech_profile) -> None:
    def perturb(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor,
                                                                               ...]:
        h, *rest = inputs  # a conv block takes (h, valid frames)
        g = torch.Generator().manual_seed(0)
        return (h + h.std() * torch.randn(h.shape, generator=g), *rest)

    x = _speech_inputs(200, seed=5)
    handle = asr_model.encoder[1].register_forward_pre_hook(perturb)
    try:
        report = speech_profile.score(asr_model, x)
    finally:
        handle.remove()
    assert report.flagged(0.01).mean() >= 0.9
    named = [layer for layer in report.first_divergent_layer if layer is not None]
    assert np.mean([layer == "encoder.1" for layer in named]) >= 0.95
    entered = [layer for layer in report.entry_layer if layer is not None]
    assert np.mean([layer == "encoder.1" for layer in entered]) >= 0.95
    # the layers before the injection saw clean speech: they stay within calibration
    assert (report.p_values[:, :2] <= 0.05).mean() <= 0.1
    assert (report.adjusted[:, :2] <= 0.01).mean() <= 0.02


def test_single_inputs_score_as_in_a_batch(asr_model, speech_profile) -> None:
    x = _speech_inputs(6, seed=6, snr_db=20)
    batch = speech_profile.score(asr_model, x)
    for i in range(6):
        one = speech_profile.score(asr_model, part(x, i, i + 1))
        assert len(one) == 1 and one.layers == speech_profile.layer_names
        np.testing.assert_allclose(one.scores[0], batch.scores[i], rtol=1e-6)
        assert one.p_value[0] == batch.p_value[i]
        np.testing.assert_array_equal(one.adjusted[0], batch.adjusted[i])
        assert one.first_divergent_layer[0] == batch.first_divergent_layer[i]


def test_knn_and_mean_pooling_detectors(asr_model, reference) -> None:
    names, ref = collect(asr_model, split(reference))
    kinds = {n: type(dict(asr_model.named_modules())[n]).__name__ for n in names}
    _, held_out = collect(asr_model, _speech_inputs(300, seed=7))
    _, noisy = collect(asr_model, _speech_inputs(200, seed=8, snr_db=10))
    for kw in ({"detector": "knn", "detector_options": {"k": 3, "metric": "cosine"}},
               {"pooling": "mean"}):
        profile = fit_features(ref, kinds, **kw)
        clean, shifted = profile.score_features(held_out), profile.score_features(noisy)
        assert auroc(shifted.anomaly_score, clean.anomaly_score) >= 0.95
        assert clean.flagged(0.01).mean() <= 0.03
        loaded = Profile.load(profile.save())
        assert loaded.meta == profile.meta
        assert np.array_equal(loaded.score_features(noisy).anomaly_score, shifted.anomaly_score)
    with pytest.raises(InvalidInputError, match="unknown detector 'lof'"):
        fit(asr_model, split(reference), detector="lof")
    with pytest.raises(InvalidInputError, match="takes k, metric; got bandwidth"):
        fit_features(ref, kinds, detector="knn", detector_options={"bandwidth": 1})
    with pytest.raises(InvalidInputError, match="pooling must be one of"):
        fit(asr_model, split(reference), pooling="max")


def test_save_load_round_trips_exactly(asr_model, speech_profile, tmp_path) -> None:
    profile = speech_profile
    x = _speech_inputs(50, seed=9, snr_db=15)
    before = profile.score(asr_model, x)
    data = profile.save()
    assert isinstance(data, bytes)
    profile.save(tmp_path / "p.npz")
    for loaded in (Profile.load(data), Profile.load(tmp_path / "p.npz")):
        assert loaded.layer_names == profile.layer_names and loaded.meta == profile.meta
        for a, b in zip(loaded.layers, profile.layers, strict=True):
            assert np.array_equal(a.detector.precision, b.detector.precision)
            assert np.array_equal(a.calibration, b.calibration)
        after = loaded.score(asr_model, x)
        assert np.array_equal(after.scores, before.scores)
        assert np.array_equal(after.p_value, before.p_value)
        assert after.first_divergent_layer == before.first_divergent_layer
    with np.load(tmp_path / "p.npz", allow_pickle=False) as npz:  # plain arrays, no pickles
        assert "meta" in npz.files


def test_profile_logs_to_a_run_and_loads_back(asr_model, speech_profile, tmp_path) -> None:
    run = tympan.init(project="probe", store=str(tmp_path / "store"))
    speech_profile.log(run)
    run.finish()
    loaded = Profile.from_run(tympan.load_run(run.id, store=str(tmp_path / "store")))
    x = _speech_inputs(20, seed=10)
    assert np.array_equal(loaded.score(asr_model, x).p_value,
                          speech_profile.score(asr_model, x).p_value)


def test_a_profile_refuses_a_model_whose_layers_differ(asr_model, speech_profile) -> None:
    from recipes.asr_ctc.train import Config, CTCModel

    loaded = Profile.load(speech_profile.save())
    x = _speech_inputs(2, seed=11)
    gru = CTCModel(Config(hidden=32, layers=3, encoder="gru"), dims=40)
    with pytest.raises(TympanError, match="no layer 'encoder.0'.*another architecture"):
        loaded.score(gru, x)
    wider = CTCModel(Config(hidden=48, layers=3), dims=40)
    with pytest.raises(InvalidInputError, match="'subsample' has 48 channels but 32"):
        loaded.score(wider, x)
    swapped = copy.deepcopy(asr_model)
    swapped.encoder[0] = nn.Identity()
    with pytest.raises(InvalidInputError, match="'encoder.0' is a Identity in this model but "
                                                "a ConvBlock in the profile"):
        loaded.score(swapped, x)


class FrameNet(nn.Module):
    """Frame-wise layers only (no mixing across time), taking (x, lengths)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(FEATS, 12)
        self.out = nn.Linear(12, 6)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.inp(x)))


def test_padding_beyond_the_length_never_changes_a_score() -> None:
    model = FrameNet()
    x = spectrograms(200, seed=10)
    lengths = torch.randint(8, FRAMES + 1, (200,), generator=torch.Generator().manual_seed(0))
    profile = fit(model, [(x[i:i + 50], lengths[i:i + 50]) for i in range(0, 200, 50)])
    short = x[:1, :10]
    padded = torch.cat([short, 1e3 * torch.randn(1, 30, FEATS)], dim=1)
    alone = profile.score(model, (short, torch.tensor([10])), alpha=0.05)
    with_garbage = profile.score(model, (padded, torch.tensor([10])), alpha=0.05)
    np.testing.assert_allclose(with_garbage.scores, alone.scores, rtol=1e-6)
    assert np.array_equal(with_garbage.p_value, alone.p_value)
    # and the garbage would have shown had it counted
    counted = profile.score(model, (padded, torch.tensor([40])), alpha=0.05)
    assert (counted.scores > 5 * alone.scores).all()


def test_the_recipe_ctc_model_is_profiled_with_lengths() -> None:
    from recipes.asr_ctc.train import Config, CTCModel

    model = CTCModel(Config(hidden=32, layers=2), dims=FEATS)
    x = spectrograms(120, seed=11)
    lengths = torch.randint(12, FRAMES + 1, (120,), generator=torch.Generator().manual_seed(1))
    profile = fit(model, [(x[i:i + 40], lengths[i:i + 40]) for i in range(0, 120, 40)])
    assert profile.layer_names == ["subsample", "encoder.0", "encoder.1", "out"]
    report = profile.score(model, (x[:3], lengths[:3]), alpha=0.05)
    assert report.scores.shape == (3, 4) and np.isfinite(report.scores).all()


def test_bad_input_is_rejected_with_clear_errors(asr_model, speech_profile) -> None:
    model, profile = asr_model, speech_profile
    with pytest.raises(InvalidInputError, match="no inputs"):
        fit(model, [])
    with pytest.raises(InvalidInputError, match="no module named 'nope'"):
        fit(model, _speech_inputs(100, seed=1), layers=["nope"])
    with pytest.raises(InvalidInputError, match="at least 10"):
        fit(model, _speech_inputs(12, seed=1))
    with pytest.raises(InvalidInputError, match=r"shaped \(batch, time"):
        profile.score(model, (torch.zeros(3), torch.tensor([1, 1, 1])))
    with pytest.raises(InvalidInputError, match="lengths must lie"):
        profile.score(model, (_speech_inputs(2, seed=1)[0], torch.tensor([5, 99])))
    with pytest.raises(InvalidInputError, match="alpha must lie"):
        profile.score(model, _speech_inputs(2, seed=1), alpha=0)
    with pytest.raises(InvalidInputError, match="not a tympan probe profile"):
        Profile.load(b"not a profile")
    with pytest.raises(InvalidInputError, match="calibration must be a fraction"):
        fit_features({"a": np.zeros((50, 4))}, {"a": "Linear"}, calibration=1.5)


def test_the_compiled_scoring_matches_each_detector(asr_model, reference) -> None:
    """The kernel's distances (each Mahalanobis layer through the low-rank form of a
    precision fitted on fewer inputs than features, or the dense one) are each layer's own
    detector distances; a non-finite feature still makes that input's distance inf, and k-NN
    layers score alone."""
    from tympan.probe.kernel import Scoring, low_rank

    names, ref = collect(asr_model, split(reference))
    kinds = {n: type(dict(asr_model.named_modules())[n]).__name__ for n in names}
    _, noisy = collect(asr_model, _speech_inputs(40, seed=8, snr_db=10))
    few = fit_features({n: v[:26] for n, v in ref.items()}, kinds, calibration=0.5)  # 13 fit
    wide = [lay for lay in few.layers if lay.dims >= 64]
    assert wide and all(low_rank(lay.detector.precision) is not None for lay in wide)
    many = fit_features(ref, kinds, detector="knn")
    dense = fit_features(ref, kinds)
    assert any(low_rank(lay.detector.precision) is None for lay in dense.layers)
    for profile in (few, many, dense):
        expected = np.stack([lay.distance(noisy[lay.name]) for lay in profile.layers], 1)
        got = Scoring(profile.layers, None)(noisy, None).distances
        np.testing.assert_allclose(got, expected, rtol=1e-9)
    broken = {n: v.copy() for n, v in noisy.items()}
    broken[names[1]][3, 0] = np.nan
    got = Scoring(few.layers, None)(broken, None).distances
    assert np.isinf(got[3, 1]) and np.isfinite(np.delete(got, 3, 0)).all()
    precision = few.layers[1].detector.precision
    c, v, e = low_rank(precision)
    np.testing.assert_allclose(c * np.eye(len(precision)) + (v * e) @ v.T, precision, atol=1e-9)
    assert low_rank(np.diag(np.arange(1.0, 41.0))) is None  # full rank: the dense product


def test_the_guards_scoring_gives_the_reports_numbers(asr_model, speech_profile) -> None:
    """``combine_features`` (the serving guard's scoring, without the per-layer tests) says
    exactly what ``score_features`` says of each input's combined score."""
    from tympan.probe.scorer import verdicts

    head = speech_profile.output.head if speech_profile.output else None
    for snr in (None, 5):
        _, feats = collect(asr_model, _speech_inputs(30, seed=11, snr_db=snr),
                           speech_profile.layer_names, head=head)
        full = speech_profile.score_features(feats, alpha=0.05)
        part = speech_profile.combine_features(feats, alpha=0.05)
        for name in ("anomaly_score", "p_value", "z", "outputs", "output_z", "profile",
                     "entry"):
            np.testing.assert_array_equal(getattr(part, name), getattr(full, name))
        assert part.stages == full.stages and part.entry_layer == full.entry_layer
        assert verdicts(part) == verdicts(full)
    assert part.flagged().any()  # the noisy inputs exercise the entry stages
