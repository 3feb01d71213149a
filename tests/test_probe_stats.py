"""Probe statistics on real tiny torch models: exact against direct computation, merges,
padding, hooks removed, logging cadence into a real store."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import torch
from torch import nn

import tympan
import tympan.probe
from tympan.errors import InvalidInputError
from tympan.probe.health import NonFinite
from tympan.probe.stats import Histogram, LayerStats


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.out = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 4, T)
        h = torch.relu(self.conv(x)).transpose(1, 2)
        return self.out(self.gru(h)[0])


def _batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, 4, 10, generator=g), torch.tensor([10, 7, 4])) for _ in range(n)]


def test_statistics_equal_direct_computation_with_padding_excluded() -> None:
    torch.manual_seed(0)
    model = Tagger()
    probe = tympan.probe.attach(model, rules=None, stats_every=1)
    outs: list[torch.Tensor] = []
    model.out.register_forward_hook(lambda m, i, o: outs.append(o.detach()))
    for step, (x, lengths) in enumerate(_batches(2)):
        with probe.batch(lengths=lengths):
            model(x)
        probe.step(step)
    valid = torch.cat([o[b, :n] for o in outs for b, n in enumerate([10, 7, 4])]).double()
    s = probe.snapshot()["forward"]["out"]
    assert s["count"] == [float(len(valid))] * 3
    f64 = torch.float64
    assert torch.allclose(torch.tensor(s["mean"], dtype=f64), valid.mean(0), atol=1e-6)
    assert torch.allclose(torch.tensor(s["var"], dtype=f64), valid.var(0, correction=0),
                          atol=1e-6)
    assert s["min"] == pytest.approx(valid.amin(0).tolist())
    assert s["max"] == pytest.approx(valid.amax(0).tolist())
    conv = probe.snapshot()["forward"]["conv"]  # (B, C, T) output, channels first
    assert conv["channels"] == 6 and conv["count"][0] == 2 * (10 + 7 + 4)
    probe.detach()


class Encoder(nn.Module):
    """Returns (batch, time, channels) views of a channels-first buffer (like a conv
    block's residual stream), with a far-from-zero channel and NaN in the padding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 5, 3, padding=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (B, C, T), contiguous
        h = h + torch.tensor([0.0, 0.0, 1000.0, 0.0, 0.0])[:, None]
        pad = torch.arange(h.shape[2])[None, :] >= lengths[:, None]
        return h.masked_fill(pad[:, None, :], float("nan")).transpose(1, 2)


def test_statistics_of_strided_outputs_are_exact_and_padding_never_counts() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(Encoder())
    outs: list[torch.Tensor] = []
    model[0].register_forward_hook(lambda m, i, o: outs.append(o.detach()))
    probe = tympan.probe.attach(model, layers=["0"], rules=None, every=2, stats_every=1)

    lengths_seen = []
    for step, (x, lengths) in enumerate(_batches(5, seed=4)):
        with probe.batch(lengths=lengths):
            model[0](x, lengths)
        lengths_seen.append(lengths)
        probe.step(step)
    valid = torch.cat([o[b, :n] for o, ls in zip(outs, lengths_seen, strict=True)
                       for b, n in enumerate(ls.tolist())]).double()
    assert outs[0].stride()[1] == 1  # a channels-last view of a channels-first buffer
    s = probe.snapshot()["forward"]["0"]
    assert s["nan"] == 0 and s["count"] == [float(len(valid))] * 5
    assert torch.allclose(torch.tensor(s["mean"], dtype=torch.float64), valid.mean(0),
                          rtol=1e-9, atol=1e-6)
    var = valid.var(0, correction=0)
    assert torch.allclose(torch.tensor(s["var"], dtype=torch.float64), var, rtol=1e-5)
    assert s["min"] == pytest.approx(valid.amin(0).tolist())
    assert s["max"] == pytest.approx(valid.amax(0).tolist())
    assert s["positive"] == (valid > 0).sum(0).double().tolist()


def test_statistics_come_from_every_kth_step_and_non_finite_values_from_every_step() -> None:
    """stats_every=3: the statistics are exactly those of steps 0, 3, 6 (and the logging
    steps); a NaN in a real frame of step 4 is still counted, and named at step 4, while a
    NaN in the padding is not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    g = torch.Generator().manual_seed(2)
    lengths = torch.tensor([10, 7, 4])
    data = [torch.randn(3, 10, 4, generator=g) for _ in range(8)]
    data[4][1, 2, 0] = float("nan")  # a real frame of input 1
    data[4][2, 8, :] = float("nan")  # padding of input 2 (length 4)
    data[5][2, 8, :] = float("nan")  # padding only: nothing to count
    sampled = tympan.probe.attach(model, rules=[NonFinite()], every=50, stats_every=3,
                                  histogram_range=(-3.0, 3.0))
    fired = []
    for step, x in enumerate(data):
        with sampled.batch(lengths=lengths):
            model(x)
        fired += sampled.step(step)
    reference = tympan.probe.attach(model, rules=None, every=50, stats_every=1,
                                    histogram_range=(-3.0, 3.0))
    for step in (0, 3, 6):
        with reference.batch(lengths=lengths):
            model(data[step])
        reference.step(step)
    got, want = sampled.snapshot()["forward"]["0"], reference.snapshot()["forward"]["0"]
    sampled.detach()
    reference.detach()
    assert got["nan"] == 3 and want["nan"] == 0  # one real frame, 3 channels; not the padding
    assert got["count"] == [3 * 21.0] * 3
    assert {k: v for k, v in got.items() if k != "nan"} == {
        k: v for k, v in want.items() if k != "nan"}
    assert [(e.rule, e.layer, e.step) for e in fired] == [("non_finite", "0", 4)]
    with pytest.raises(InvalidInputError, match="stats_every must be an integer >= 1"):
        tympan.probe.attach(model, stats_every=0)


def test_zero_fraction_nan_counts_and_saturation() -> None:
    s = LayerStats(2)
    x = torch.tensor([[0.0, 1.0], [0.0, float("nan")], [2.0, float("inf")], [-3.0, 0.5]])
    s.update(x)
    assert s.count.tolist() == [4.0, 2.0]
    assert s.zeros.tolist() == [2.0, 0.0]
    assert float(s.nan) == 1 and float(s.inf) == 1
    assert s.mean.tolist() == pytest.approx([-0.25, 0.75])
    assert s.min.tolist() == [-3.0, 0.5] and s.max.tolist() == [2.0, 1.0]


def test_two_probes_merged_equal_one_probe_over_both() -> None:
    torch.manual_seed(1)
    model = Tagger()
    data = _batches(4, seed=3)
    kw = dict(rules=None, every=1, histogram_range=(-3.0, 3.0))
    one = tympan.probe.attach(model, **kw)
    for step, (x, lengths) in enumerate(data):
        with one.batch(lengths=lengths):
            model(x)
        one.step(step)
    one.detach()
    parts = []
    for half in (data[:2], data[2:]):
        p = tympan.probe.attach(model, **kw)
        for step, (x, lengths) in enumerate(half):
            with p.batch(lengths=lengths):
                model(x)
            p.step(step)
        p.detach()
        parts.append(p)
    for layer in ("conv", "gru", "out"):
        merged = parts[0].stats[layer].merge(parts[1].stats[layer])
        ref = one.stats[layer]
        for name in ("count", "mean", "var", "min", "max", "zeros", "positive", "saturated"):
            assert torch.allclose(getattr(merged, name), getattr(ref, name), atol=1e-6), name
        assert merged.hist is not None and ref.hist is not None
        assert torch.equal(merged.hist.counts, ref.hist.counts)
        assert int(ref.hist.counts.sum()) == len(ref.hist.channels) * int(ref.count[0])


def test_histograms_merge_and_refuse_other_edges() -> None:
    x = torch.randn(200, 4)
    h = Histogram.from_first_batch(x, [0, 3], bins=8)
    a, b = h.empty_like(), h.empty_like()
    a.update(x[:100])
    b.update(x[100:])
    h.update(x)
    a.merge(b)
    assert torch.equal(a.counts, h.counts) and int(h.counts.sum()) == 400
    other = Histogram.from_first_batch(x * 10, [0, 3], bins=8)
    with pytest.raises(InvalidInputError, match="histogram_range"):
        a.merge(other)


def test_detach_removes_every_hook() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.MultiheadAttention(4, 1))
    probe = tympan.probe.attach(model, layers=["0"], gradients=True)
    assert model[0]._forward_hooks and model[2]._forward_pre_hooks
    probe.detach()
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not m._backward_hooks and not m._backward_pre_hooks


def test_bad_lengths_and_unknown_layer_are_user_errors() -> None:
    model = Tagger()
    with pytest.raises(InvalidInputError, match="no module named"):
        tympan.probe.attach(model, layers=["nope"])
    probe = tympan.probe.attach(model, rules=None)
    with pytest.raises(InvalidInputError, match="lengths has 2 entries"), \
            probe.batch(lengths=[10, 5]):
        model(torch.randn(3, 4, 10))
    probe.detach()


def test_logging_cadence_writes_metrics_and_snapshot_to_a_real_run(tmp_path) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    model = Tagger()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = tympan.probe.attach(model, run=run, every=3, gradients=True, rules=None,
                                stats_every=1)
    for step, (x, lengths) in enumerate(_batches(7)):
        opt.zero_grad()
        with probe.batch(lengths=lengths):
            loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        probe.step(step, loss=loss)  # after backward, before the next zero_grad
    probe.save()
    probe.detach()
    run.finish()
    record = tympan.load_run(run.id, store=store)
    assert record.history("probe/gru/mean").steps.tolist() == [0, 3, 6]
    assert record.history("probe/out/grad_norm").steps.tolist() == [0, 3, 6]
    assert "probe/conv/zero_frac" in record.summary and "probe/out/grad_std" in record.summary
    snap = json.loads(record.read_artifact("probe/stats.json"))
    assert snap["layers"] == ["conv", "gru", "out"]
    assert snap["forward"]["out"]["count"][0] == 7 * 21


def _run(probe, model: nn.Module, data, start: int = 0) -> None:
    for step, (x, lengths) in enumerate(data, start):
        with probe.batch(lengths=lengths):
            model(x).pow(2).mean().backward()
        probe.step(step)


def test_background_statistics_equal_synchronous_with_padding() -> None:
    torch.manual_seed(0)
    model = Tagger()
    data = _batches(6, seed=5)
    snaps, logged = [], []
    for background in (True, False):
        probe = tympan.probe.attach(model, every=2, gradients=True, background=background,
                                    stats_every=1)
        _run(probe, model, data)
        snaps.append(probe.snapshot())
        logged.append({n: s.summary() for n, s in probe.stats.items()})
        probe.detach()
    assert snaps[0] == snaps[1]
    assert logged[0] == logged[1]
    assert snaps[0]["forward"]["out"]["count"] == [6 * 21.0] * 3
    assert snaps[0]["gradients"]["gru"]["count"] == [6 * 21.0] * 5
    assert snaps[0]["skipped"] == {"forward": {}, "gradients": {}}


def test_an_output_modified_in_place_is_detected_and_its_layer_goes_synchronous(
        caplog) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(3, 5, 4, generator=g), torch.tensor([5, 3, 2])) for _ in range(4)]
    probe = tympan.probe.attach(model, rules=None, every=1, background=True)
    with caplog.at_level(logging.WARNING, logger="tympan"):
        _run(probe, model, data)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'0' was modified in place" in warned[0]
    assert probe.skipped == {"0": 1} and probe.snapshot()["skipped"]["forward"] == {"0": 1}
    got = probe.snapshot()["forward"]
    probe.detach()
    # the layer's other batches, computed synchronously before the in-place ReLU, are exact
    reference = tympan.probe.attach(model, rules=None, every=1, background=False)
    _run(reference, model, data[1:], start=1)
    want = reference.snapshot()["forward"]
    reference.detach()
    assert got["0"] == want["0"] and got["0"]["count"] == [3 * 10.0] * 6
    assert min(got["0"]["min"]) < 0  # pre-ReLU values: nothing read after the ReLU
    assert got["2"]["count"] == [4 * 10.0] * 3  # the other layer: every batch


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


def test_a_worker_error_surfaces_at_step_and_detach_stops_the_thread() -> None:
    model = nn.Sequential(_Scale())
    probe = tympan.probe.attach(model, rules=None, background=True, stats_every=1)
    model(torch.randn(2, 4))
    probe.step(0)
    thread = probe._worker._thread
    assert thread is not None and thread.is_alive()
    model(torch.randn(2, 5))  # a different channel count: the worker's update fails
    with pytest.raises(InvalidInputError, match="expected 4 channels, got 5"):
        probe.step(1)
    model(torch.randn(2, 4))  # the probe goes on afterwards
    probe.step(2)
    assert probe.snapshot()["forward"]["0"]["count"] == [4.0] * 4
    probe.detach()
    assert not thread.is_alive() and not probe._worker.running
    assert thread not in threading.enumerate()


def test_forward_passes_without_step_hold_a_bounded_number_of_outputs() -> None:
    from tympan.probe.hooks import HELD_LIMIT

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    probe = tympan.probe.attach(model, rules=None)
    x = torch.randn(2, 4)
    with torch.no_grad():
        for _ in range(HELD_LIMIT + 6):  # an evaluation loop: no probe.step()
            model(x)
            assert len(probe._items) <= HELD_LIMIT
    with torch.inference_mode():  # no version counter: computed in the hook
        model(x)
    assert probe.snapshot()["forward"]["0"]["count"] == [2.0 * (HELD_LIMIT + 7)] * 3
    probe.detach()


def test_the_worker_pauses_when_step_waits_for_it_and_results_stay_the_same(
        monkeypatch) -> None:
    from tympan.probe import hooks

    monkeypatch.setattr(hooks, "JUDGE_STEPS", 2)
    monkeypatch.setattr(hooks, "WAIT_RATIO", -1.0)  # any wait at all counts as too long
    torch.manual_seed(0)
    model = Tagger()
    data = _batches(6, seed=2)
    snaps = []
    for background in (True, False):
        probe = tympan.probe.attach(model, every=2, gradients=True, background=background,
                                    stats_every=1)
        _run(probe, model, data)
        snaps.append(probe.snapshot())
        if background:
            assert probe.background_steps == 2  # judged after 2 steps, then paused
        probe.detach()
    assert snaps[0] == snaps[1]


def test_the_background_worker_is_used_only_when_torch_leaves_a_core_free() -> None:
    """background="auto" (the default): a worker thread beside torch's intra-op threads on
    every core slows training down instead of hiding the statistics' cost (issue 12)."""
    from tympan.probe.hooks import free_cores, resolve_background

    model = nn.Sequential(nn.Linear(4, 4))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, free_cores() + threads))  # every core busy with torch
        assert resolve_background("auto") is False
        probe = tympan.probe.attach(model, rules=None)
        assert probe._worker is None
        probe.detach()
        if free_cores() + torch.get_num_threads() > 1:
            torch.set_num_threads(1)  # a core left free
            assert resolve_background("auto") is True
            probe = tympan.probe.attach(model, rules=None)
            assert probe._worker is not None
            probe.detach()
        assert resolve_background(True) is True and resolve_background(False) is False
        with pytest.raises(InvalidInputError, match="background must be"):
            tympan.probe.attach(model, background="sometimes")
    finally:
        torch.set_num_threads(threads)
