"""The shared learning-rate schedules and feature padding the recipes use."""

from __future__ import annotations

import pytest
import torch

from tympan.audio.features import pad_features
from tympan.errors import InvalidInputError
from tympan.schedules import warmup_schedule


def test_warmup_then_cosine_or_constant() -> None:
    cosine = warmup_schedule("cosine", warmup_steps=4, total_steps=14)
    assert [cosine(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine(4) == 1.0 and cosine(9) == pytest.approx(0.5) and cosine(14) == 0.0
    assert cosine(100) == 0.0  # past the end it stays at 0
    constant = warmup_schedule("constant", warmup_steps=2, total_steps=10)
    assert [constant(s) for s in (0, 1, 2, 50)] == [0.5, 1.0, 1.0, 1.0]
    assert warmup_schedule("cosine", 0, 10)(0) == 1.0  # no warmup


@pytest.mark.parametrize(("args", "message"), [
    (("linear", 1, 10), "schedule must be one of constant, cosine"),
    (("cosine", -1, 10), "warmup_steps must be 0 or more"),
])
def test_bad_schedules_are_named(args: tuple, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        warmup_schedule(*args)


def test_pad_features_zero_pads_and_counts_frames() -> None:
    x, lengths = pad_features([torch.ones(3, 2), torch.full((5, 2), 2.0)])
    assert x.shape == (2, 5, 2) and lengths.tolist() == [3, 5]
    assert x[0, 3:].abs().sum() == 0 and x[1].eq(2.0).all()
    with pytest.raises(InvalidInputError, match="at least one"):
        pad_features([])
