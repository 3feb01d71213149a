"""The embedded server's choice of torch threads, batch by batch (serve/threads.py)."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from types import SimpleNamespace

import numpy as np
import pytest

from tympan.serve.batching import Batcher
from tympan.serve.config import Batching, ServingConfig
from tympan.serve.threads import ThreadTuner, size_class


def _run(tuner: ThreadTuner, size: int, cost: dict[int, float], batches: int) -> list[int]:
    """``batches`` batches of ``size`` one-second clips, each costing ``cost[count]``."""
    counts = []
    for _ in range(batches):
        count = tuner.pick(size)
        tuner.observe(size, count, cost[count] * size, float(size))
        counts.append(count)
    return counts


def test_size_classes():
    assert [size_class(n) for n in (0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 64)] == [
        1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 16]


def test_each_count_is_tried_then_the_cheaper_runs_and_the_other_is_rechecked():
    applied: list[int] = []
    tuner = ThreadTuner([2, 1], trials=3, recheck=10, apply=applied.append)
    counts = _run(tuner, 1, {1: 0.5, 2: 0.3}, 60)
    assert sorted(counts[:6]) == [1, 1, 1, 2, 2, 2]
    later = counts[6:]
    assert later.count(1) == sum(1 for n in range(7, 61) if n % 10 == 0) == 6
    assert later.count(2) == len(later) - 6
    # torch's count is set only when it changes: once per switch
    assert len(applied) == 1 + sum(a != b for a, b in pairwise(counts))
    assert tuner.chosen() == {1: 2}
    assert tuner.describe() == {"choose_from": [1, 2], "chosen_by_batch_size": {"1": 2}}


def test_larger_batches_take_fewer_trials():
    """A batch's cost averages over its clips: 8 trials of each count for lone requests, 2
    for batches of 4 and more."""
    tuner = ThreadTuner([1, 2], trials=8, recheck=1000, apply=lambda count: None)
    assert sorted(_run(tuner, 1, {1: 0.5, 2: 0.3}, 16)) == [1] * 8 + [2] * 8
    assert sorted(_run(tuner, 2, {1: 0.5, 2: 0.3}, 8)) == [1] * 4 + [2] * 4
    assert sorted(_run(tuner, 20, {1: 0.5, 2: 0.3}, 4)) == [1, 1, 2, 2]
    assert _run(tuner, 20, {1: 0.5, 2: 0.3}, 3) == [2, 2, 2]


def test_batch_sizes_choose_apart_and_a_change_of_load_moves_the_choice():
    tuner = ThreadTuner([1, 2], trials=2, recheck=5, apply=lambda count: None)
    _run(tuner, 1, {1: 0.2, 2: 0.3}, 20)
    _run(tuner, 12, {1: 0.5, 2: 0.3}, 20)
    assert tuner.chosen() == {1: 1, 8: 2}
    # a neighbour takes a core: the rechecks of one thread find it cheaper now
    _run(tuner, 12, {1: 0.5, 2: 0.9}, 60)
    assert tuner.chosen() == {1: 1, 8: 1}


def test_one_slow_batch_does_not_move_the_choice():
    tuner = ThreadTuner([1, 2], trials=4, recheck=1000, apply=lambda count: None)
    _run(tuner, 8, {1: 0.5, 2: 0.3}, 20)
    _run(tuner, 8, {1: 0.5, 2: 5.0}, 1)  # a neighbour took the core for one batch
    assert _run(tuner, 8, {1: 0.5, 2: 0.3}, 5) == [2] * 5


def test_counts_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        ThreadTuner([0, 2])


def test_the_batcher_runs_on_the_count_that_makes_its_batches_faster():
    """A real batcher and worker thread: batches on two threads take half as long here."""
    now = {"count": None}
    tuner = ThreadTuner([1, 2], trials=2, recheck=1000,
                        apply=lambda count: now.update(count=count))
    ran: list[int] = []

    def handle(waves):
        ran.append(now["count"])
        time.sleep(0.004 if now["count"] == 1 else 0.002)
        return [len(w) for w in waves]

    batcher = Batcher(handle, Batching(max_size=1), threads=tuner)
    try:
        for _ in range(12):
            assert batcher.submit(np.zeros(16000, np.float32), 1.0).result(5) == 16000
    finally:
        batcher.close()
    assert sorted(ran[:4]) == [1, 1, 2, 2]
    assert ran[4:] == [2] * 8
    assert tuner.chosen() == {1: 2}


@pytest.mark.parametrize(("config", "runtime", "cores", "counts"), [
    ({}, "torch", 2, (1, 2)), ({}, "torch", 8, (7, 8)), ({}, "torch", 1, None),
    ({"threads": 2}, "torch", 2, None), ({"runtime": "onnx", "threads": 1}, "onnx", 2, None)])
def test_only_a_torch_engine_without_threads_chooses(monkeypatch, config, runtime, cores,
                                                     counts):
    import torch

    from tympan.serve.service import thread_tuner

    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    tuner = thread_tuner(ServingConfig(model="models:/m/1", **config),
                         SimpleNamespace(runtime=runtime))
    assert (tuner.counts if tuner is not None else None) == counts


def test_torch_threads_are_the_calling_threads_own():
    """What the tuner relies on: the worker's count leaves other threads' alone."""
    import torch

    from tympan.serve.threads import _set_torch_threads

    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    seen = {}

    def worker():
        _set_torch_threads(other)
        seen["worker"] = torch.get_num_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["worker"] == other
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("threads", "cores", "want"), [(None, 2, "auto"), (3, 2, 3),
                                                        (None, 1, 1)])
def test_the_serving_settings_say_whether_the_count_is_chosen(monkeypatch, threads, cores,
                                                              want):
    import torch

    from tympan.serve.service import Service

    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    version = SimpleNamespace(model="m", version=1, uri="models:/m/1")
    engine = SimpleNamespace(version=version, runtime="torch", guard=None,
                             answer=lambda waves: waves)
    service = Service(ServingConfig(model="models:/m/1", threads=threads, record=False), engine)
    try:
        settings = service.settings()
    finally:
        service.batcher.close()
    assert settings["threads"] == want
    assert ("thread_choice" in settings) == (want == "auto")
    if want == "auto":
        assert settings["thread_choice"] == {"choose_from": [1, 2], "chosen_by_batch_size": {}}
