"""Drift between data sets and between checkpoints, per layer (tympan.probe.drift)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from tests.test_probe_profile import SpecNet, spectrograms

from tympan.errors import InvalidInputError
from tympan.probe.drift import drift, drift_between_checkpoints


def test_drift_is_found_between_shifted_and_clean_data() -> None:
    model = SpecNet()
    clean = list(spectrograms(200, seed=1).split(50))
    noisy = list(spectrograms(200, seed=2, noise=0.4).split(50))
    report = drift(model, clean, noisy, permutations=200)
    print("drift:", report.rows())
    assert report.layers == ["front", "blocks.0", "blocks.2", "head"]
    assert report.drifted.all()
    assert (report.p_values <= 1 / 201 + 1e-12).all()
    assert (report.effect > 0).all()


def test_two_clean_halves_do_not_drift() -> None:
    model = SpecNet()
    a, b = spectrograms(200, seed=3), spectrograms(200, seed=4)
    report = drift(model, a, b, permutations=200)
    assert not report.drifted.any()
    assert report.p_values.min() > 0.05


def test_drift_between_checkpoints_names_the_perturbed_layer_onwards() -> None:
    model = SpecNet()
    changed = copy.deepcopy(model)
    with torch.no_grad():
        w = changed.blocks[2].weight
        w.add_(0.5 * w.std() * torch.randn(w.shape, generator=torch.Generator().manual_seed(0)))
    data = iter(spectrograms(150, seed=5).split(50))  # a one-shot iterator is fine
    report = drift_between_checkpoints(model, changed, data, permutations=200)
    assert report.drifted_layers == ["blocks.2", "head"]
    assert report.p_values[0] == 1.0 and report.mmd2[0] < 1e-12  # identical front ends
    same = drift_between_checkpoints(model, copy.deepcopy(model), spectrograms(50, seed=5),
                                     permutations=50)
    assert not same.drifted.any()


def test_drift_caps_inputs_and_rejects_bad_input() -> None:
    model = SpecNet()
    report = drift(model, spectrograms(80, seed=1), spectrograms(80, seed=2), max_inputs=30,
                   permutations=20)
    assert report.n_a == report.n_b == 30
    assert np.all((report.p_values > 0) & (report.p_values <= 1))
    with pytest.raises(InvalidInputError, match="no inputs"):
        drift(model, [], spectrograms(10, seed=1))
    with pytest.raises(InvalidInputError, match="no module named"):
        drift(model, spectrograms(10, seed=1), spectrograms(10, seed=2), layers=["x"])
    with pytest.raises(InvalidInputError, match="permutations"):
        drift(model, spectrograms(10, seed=1), spectrograms(10, seed=2), permutations=0)
