"""Reference profiles and per-input anomaly scoring on small real conv nets (tympan.probe)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from torch import nn

import tympan
from tympan.errors import InvalidInputError
from tympan.probe.profile import Profile, fit

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


@pytest.fixture(scope="module")
def fitted() -> tuple[SpecNet, Profile]:
    model = SpecNet()
    return model, fit(model, batches(spectrograms(1000, seed=1)), calibration=0.3, seed=0)


def test_fit_builds_a_profile_of_the_auto_layers(fitted) -> None:
    model, profile = fitted
    assert profile.layer_names == ["front", "blocks.0", "blocks.2", "head"]
    assert profile.n_calibration == 300 and profile.meta["n_fit"] == 700
    front = profile.layers[0]
    assert front.mean.shape == (48,) and front.precision.shape == (48, 48)
    assert front.channel_mean.shape == (24,) and (front.channel_std > 0).all()
    assert 0 <= front.shrinkage <= 1
    assert model.training  # fit restores the model's mode


def test_calibration_holds_on_clean_held_out_inputs(fitted) -> None:
    model, profile = fitted
    report = profile.score(model, spectrograms(600, seed=2))
    rate05, rate01 = report.flagged(0.05).mean(), report.flagged(0.01).mean()
    print(f"clean flag rate: alpha=0.05 -> {rate05:.3f}, alpha=0.01 -> {rate01:.3f}")
    assert 0.02 <= rate05 <= 0.08
    assert rate01 <= 0.02
    per_layer = (report.p_values <= 0.05).mean(0)
    assert (per_layer <= 0.09).all()
    # averaged over five calibration splits, the rates sit at or under alpha
    reference, held_out = batches(spectrograms(1000, seed=1)), spectrograms(600, seed=2)
    rates = np.array([[r.flagged(0.05).mean(), r.flagged(0.01).mean()] for r in (
        fit(model, reference, seed=s).score(model, held_out) for s in range(1, 6))]).mean(0)
    print(f"mean over 5 splits: alpha=0.05 -> {rates[0]:.3f}, alpha=0.01 -> {rates[1]:.3f}")
    assert rates[0] <= 0.065 and rates[1] <= 0.015


def test_shifted_inputs_are_flagged_and_localised_at_the_front(fitted) -> None:
    model, profile = fitted
    clean = profile.score(model, spectrograms(300, seed=3), alpha=0.05)
    noisy = profile.score(model, spectrograms(300, seed=4, noise=0.6), alpha=0.05)
    scaled = profile.score(model, 2.0 * spectrograms(300, seed=5), alpha=0.05)
    for name, shifted in (("noise", noisy), ("scale", scaled)):
        score = auroc(-np.log(shifted.p_value), -np.log(clean.p_value))
        max_layer = auroc(shifted.scores.max(1), clean.scores.max(1))
        print(f"{name}: AUROC combined p {score:.3f}, flagged@0.01 "
              f"{shifted.flagged(0.01).mean():.3f}")
        assert score >= 0.97 and max_layer >= 0.97
        assert shifted.flagged(0.01).mean() >= 0.9
        named = [layer for layer in shifted.first_divergent_layer if layer is not None]
        assert len(named) >= 0.9 * len(shifted)
        assert np.mean([layer == "front" for layer in named]) >= 0.95


def test_a_perturbed_late_layer_is_named_as_where_inputs_diverge(fitted) -> None:
    model, profile = fitted
    changed = copy.deepcopy(model)
    with torch.no_grad():
        w = changed.blocks[2].weight
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * w.std())
    report = profile.score(changed, spectrograms(300, seed=6), alpha=0.05)
    assert report.flagged(0.05).mean() >= 0.8
    named = [layer for layer in report.first_divergent_layer if layer is not None]
    assert len(named) >= 0.7 * len(report)
    assert np.mean([layer in ("blocks.2", "head") for layer in named]) >= 0.95
    # the untouched layers stay within their calibration
    assert (report.p_values[:, :2] <= 0.05).mean() <= 0.1


def test_single_inputs_score_as_in_a_batch(fitted) -> None:
    model, profile = fitted
    x = spectrograms(5, seed=7)
    batch = profile.score(model, x)
    one = profile.score(model, x[2:3])
    assert len(one) == 1 and one.layers == profile.layer_names
    np.testing.assert_allclose(one.scores[0], batch.scores[2], rtol=1e-6)
    assert one.first_divergent_layer[0] == batch.first_divergent_layer[2]


def test_save_load_round_trips_exactly(fitted, tmp_path) -> None:
    model, profile = fitted
    x = spectrograms(50, seed=8, noise=0.3)
    before = profile.score(model, x)
    data = profile.save()
    assert isinstance(data, bytes)
    profile.save(tmp_path / "p.npz")
    for loaded in (Profile.load(data), Profile.load(tmp_path / "p.npz")):
        assert loaded.layer_names == profile.layer_names and loaded.meta == profile.meta
        for a, b in zip(loaded.layers, profile.layers, strict=True):
            assert np.array_equal(a.precision, b.precision)
            assert np.array_equal(a.calibration, b.calibration)
        after = loaded.score(model, x)
        assert np.array_equal(after.scores, before.scores)
        assert np.array_equal(after.p_value, before.p_value)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as npz:  # plain arrays, no pickles
        assert "meta" in npz.files


def test_profile_logs_to_a_run_and_loads_back(fitted, tmp_path) -> None:
    model, profile = fitted
    run = tympan.init(project="probe", store=str(tmp_path / "store"))
    profile.log(run)
    run.finish()
    loaded = Profile.from_run(tympan.load_run(run.id, store=str(tmp_path / "store")))
    x = spectrograms(20, seed=9)
    assert np.array_equal(loaded.score(model, x).p_value, profile.score(model, x).p_value)


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
    alone = profile.score(model, (short, torch.tensor([10])))
    with_garbage = profile.score(model, (padded, torch.tensor([10])))
    np.testing.assert_allclose(with_garbage.scores, alone.scores, rtol=1e-6)
    assert np.array_equal(with_garbage.p_value, alone.p_value)
    # and the garbage would have shown had it counted
    counted = profile.score(model, (padded, torch.tensor([40])))
    assert (counted.scores > 5 * alone.scores).all()


def test_the_recipe_ctc_model_is_profiled_with_lengths() -> None:
    from recipes.asr_ctc.train import Config, CTCModel

    model = CTCModel(Config(hidden=32, layers=2), dims=FEATS)
    x = spectrograms(120, seed=11)
    lengths = torch.randint(12, FRAMES + 1, (120,), generator=torch.Generator().manual_seed(1))
    profile = fit(model, [(x[i:i + 40], lengths[i:i + 40]) for i in range(0, 120, 40)])
    assert profile.layer_names == ["subsample", "encoder.0", "encoder.1", "out"]
    report = profile.score(model, (x[:3], lengths[:3]))
    assert report.scores.shape == (3, 4) and np.isfinite(report.scores).all()


def test_bad_input_is_rejected_with_clear_errors(fitted) -> None:
    model, profile = fitted
    with pytest.raises(InvalidInputError, match="no inputs"):
        fit(model, [])
    with pytest.raises(InvalidInputError, match="no module named 'nope'"):
        fit(model, batches(spectrograms(100, seed=1)), layers=["nope"])
    with pytest.raises(InvalidInputError, match="at least 10"):
        fit(model, spectrograms(12, seed=1))
    with pytest.raises(InvalidInputError, match=r"shaped \(batch, time"):
        profile.score(model, torch.zeros(3))
    with pytest.raises(InvalidInputError, match="lengths must lie"):
        profile.score(model, (spectrograms(2, seed=1), torch.tensor([5, 99])))
    with pytest.raises(InvalidInputError, match="another architecture"):
        profile.score(FrameNet(), spectrograms(2, seed=1))
    wider = SpecNet()
    wider.head = nn.Linear(24, 9)
    with pytest.raises(InvalidInputError, match="'head' has 9 channels but 8"):
        profile.score(wider, spectrograms(2, seed=1))
    with pytest.raises(InvalidInputError, match="not a tympan probe profile"):
        Profile.load(b"not a profile")
