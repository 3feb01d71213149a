"""seed_everything makes random, numpy and torch draws repeatable and rejects bad seeds."""

from __future__ import annotations

import enum
import random

import numpy as np
import pytest

from tympan.errors import InvalidInputError, TympanError
from tympan.track.seeding import MAX_SEED, seed_everything


def _draws() -> tuple[list[float], list[float]]:
    return [random.random() for _ in range(5)], np.random.rand(5).tolist()


def test_same_seed_same_draws() -> None:
    assert seed_everything(1234) == 1234
    first = _draws()
    seed_everything(1234)
    assert _draws() == first


def test_different_seeds_differ() -> None:
    seed_everything(1)
    one = _draws()
    seed_everything(2)
    two = _draws()
    assert one[0] != two[0]
    assert one[1] != two[1]


@pytest.mark.parametrize("seed", [0, MAX_SEED])
def test_range_ends_are_accepted(seed: int) -> None:
    assert seed_everything(seed) == seed
    assert MAX_SEED == 2**32 - 1


def test_torch_is_seeded() -> None:
    torch = pytest.importorskip("torch")
    seed_everything(7)
    first = torch.rand(5)
    seed_everything(7)
    assert torch.equal(torch.rand(5), first)
    seed_everything(8)
    assert not torch.equal(torch.rand(5), first)


def test_int_subclass_returns_plain_int() -> None:
    class Seed(enum.IntEnum):
        BASELINE = 42

    result = seed_everything(Seed.BASELINE)
    assert result == 42
    assert type(result) is int


@pytest.mark.parametrize("bad", [-1, 2**32, "3", True, False, 1.5, None, np.float64(3.0)])
def test_bad_seeds_raise(bad: object) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        seed_everything(bad)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert repr(bad) in message or str(bad) in message  # names the value
    assert f"[0, {MAX_SEED}]" in message  # and the allowed range
    assert isinstance(excinfo.value, TympanError)
    assert isinstance(excinfo.value, ValueError)
