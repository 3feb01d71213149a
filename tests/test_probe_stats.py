"""Probe statistics on real tiny torch models: exact against direct computation, merges,
padding, hooks removed, logging cadence into a real store."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import tympan
import tympan.probe
from tympan.errors import InvalidInputError
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
    probe = tympan.probe.attach(model, rules=None)
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
    probe = tympan.probe.attach(model, run=run, every=3, gradients=True, rules=None)
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
