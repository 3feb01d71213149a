"""Each health rule fires on a real tiny model broken on purpose; a healthy run fires none."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import tympan.probe
from tympan.probe.health import (
    AttentionAlignment,
    DeadUnits,
    ExplodingGradients,
    LossNotDecreasing,
    NonFinite,
    SaturatedUnits,
    StepView,
    VanishingGradients,
)


def _task(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, :1] - 0.5 * x[:, 1:2])


def _mlp(act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 1))


def _train(model: nn.Module, probe, steps: int, lr: float) -> None:
    x, y = _task()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        probe.step(step, loss=loss)


def _rules(probe) -> set[tuple[str, str | None]]:
    return {(e.rule, e.layer) for e in probe.events}


def test_healthy_run_fires_nothing(caplog) -> None:
    model = _mlp()
    probe = tympan.probe.attach(model, gradients=True)
    with caplog.at_level(logging.WARNING, logger="tympan"):
        _train(model, probe, 60, lr=0.05)
    assert probe.events == [] and not caplog.records


def test_huge_lr_explodes_then_goes_non_finite(caplog) -> None:
    model = _mlp()
    probe = tympan.probe.attach(model, rules=[ExplodingGradients(window=5), NonFinite()])
    with caplog.at_level(logging.WARNING, logger="tympan"):
        _train(model, probe, 40, lr=5.0)
    rules = {e.rule for e in probe.events}
    assert rules == {"exploding_gradients", "non_finite"}
    first_bad = next(e for e in probe.events if e.rule == "non_finite")
    first_big = next(e for e in probe.events if e.rule == "exploding_gradients")
    assert first_big.step <= first_bad.step
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == len(set(_rules(probe)) | {("non_finite", e.layer)
                                                   for e in probe.events
                                                   if e.rule == "non_finite"})


def test_first_non_finite_names_the_first_layer_in_forward_order() -> None:
    model = _mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    probe = tympan.probe.attach(model, rules=[NonFinite()])
    x, _ = _task()
    model(x)
    (event,) = probe.step(7)
    assert (event.layer, event.step, event.phase) == ("2", 7, "forward")


def test_dead_units_after_a_broken_relu_init() -> None:
    model = _mlp()
    with torch.no_grad():
        model[0].bias.fill_(-10.0)
    probe = tympan.probe.attach(model, rules=[DeadUnits(window=5)])
    _train(model, probe, 5, lr=0.0)
    assert ("dead_units", "0") in _rules(probe)


def test_tanh_with_huge_weights_saturates() -> None:
    model = _mlp(nn.Tanh)
    with torch.no_grad():
        model[0].weight.mul_(1000.0)
    probe = tympan.probe.attach(model, rules=[SaturatedUnits(window=5)])
    _train(model, probe, 5, lr=0.0)
    assert ("saturated_units", "0") in _rules(probe)


def test_a_near_zero_output_layer_makes_gradients_vanish() -> None:
    model = _mlp(nn.Tanh)
    with torch.no_grad():
        model[4].weight.mul_(1e-9)
    probe = tympan.probe.attach(model, rules=[VanishingGradients(window=5)])
    _train(model, probe, 5, lr=0.0)
    assert ("vanishing_gradients", "0") in _rules(probe)


def test_zero_lr_loss_not_decreasing_and_logged_to_the_run(tmp_path) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    model = _mlp()
    probe = tympan.probe.attach(model, run=run, rules=[LossNotDecreasing(window=10)])
    _train(model, probe, 15, lr=0.0)
    probe.save()
    run.finish()
    assert ("loss_not_decreasing", None) in _rules(probe)
    record = tympan.load_run(run.id, store=store)
    assert record.history("health/loss_not_decreasing").values.tolist()[0] == 1.0
    assert b"loss_not_decreasing" in record.read_artifact("probe/events.json")


def test_attention_forced_uniform_fires_alignment() -> None:
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        attn.in_proj_weight[:16].zero_()  # queries and keys all zero -> uniform weights
        attn.in_proj_bias.zero_()
    model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True))
    model[0].self_attn = attn
    probe = tympan.probe.attach(model, rules=[AttentionAlignment(window=3)])
    x = torch.randn(2, 12, 8)
    for step in range(3):
        model(x)
        probe.step(step)
    assert ("attention_alignment", "0.self_attn") in _rules(probe)


def test_passes_inside_paused_are_not_seen() -> None:
    """An evaluation between training steps (a TTS model's free-running synthesis) adds
    nothing to the statistics, nor to the next step's attention maps."""
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        attn.in_proj_weight[:16].zero_()  # uniform weights: the rule fires on any step it sees
        attn.in_proj_bias.zero_()
    model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True))
    model[0].self_attn = attn
    probe = tympan.probe.attach(model, rules=[AttentionAlignment(window=1)])
    with probe.paused():
        model(torch.randn(2, 12, 8))
    assert probe.step(0) == [] and probe.snapshot()["forward"] == {}
    model(torch.randn(2, 12, 8))
    assert [e.rule for e in probe.step(1)] == ["attention_alignment"]
    assert set(probe.snapshot()["forward"]["0"]["count"]) == {2 * 12}  # per channel


def test_rules_from_a_dict_override_defaults() -> None:
    model = _mlp()
    probe = tympan.probe.attach(model, rules={"exploding_gradients": {"threshold": 5.0},
                                              "attention_alignment": None})
    names = [r.name for r in probe.rules]
    assert "attention_alignment" not in names
    assert next(r for r in probe.rules if r.name == "exploding_gradients").threshold == 5.0


class _Root(nn.Module):
    """sqrt(h * h): finite forward; where h is exactly 0 its gradient is inf * 0 = NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return torch.sqrt(h * h)


@pytest.mark.parametrize("gradients", [True, False])
def test_first_non_finite_gradient_names_the_layer_whose_backward_made_it(gradients) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), _Root(), nn.Linear(16, 1))
    probe = tympan.probe.attach(model, gradients=gradients, rules=[NonFinite()])
    x, y = _task()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    fired = []
    for step in range(6):
        if step == 4:  # one unit of the root's input becomes exactly 0 from here on
            with torch.no_grad():
                model[2].lin.weight[3].zero_()
                model[2].lin.bias[3] = 0.0
        opt.zero_grad()
        out = model(x)
        assert torch.isfinite(out).all()  # the forward pass stays finite
        (out - y).pow(2).mean().backward()
        fired += probe.step(step)
    (event,) = fired
    assert (event.rule, event.layer, event.step, event.phase) == ("non_finite", "2", 4,
                                                                  "backward")
    assert "'2'" in event.message and "step 4" in event.message
    if gradients:  # the output gradients say where it arose: inside '2', reaching '0'
        assert "backward of '2'" in event.message and "'0'" in event.message


class _Attend(nn.Module):
    def __init__(self, attn: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attn = attn
        self.out = nn.Linear(attn.embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.attn(x, x, x)[0])


def _attention(query_weight: torch.Tensor, query_bias: torch.Tensor,
               key_weight: torch.Tensor) -> nn.MultiheadAttention:
    attn = nn.MultiheadAttention(16, 1, batch_first=True)
    with torch.no_grad():
        attn.in_proj_weight.zero_()
        attn.in_proj_bias.zero_()
        attn.in_proj_weight[:16] = query_weight
        attn.in_proj_bias[:16] = query_bias
        attn.in_proj_weight[16:32] = key_weight
        attn.in_proj_weight[32:] = torch.eye(16)
    return attn


def _alignment_events(attn: nn.MultiheadAttention, x: torch.Tensor) -> list:
    model = _Attend(attn)
    probe = tympan.probe.attach(model, rules=[AttentionAlignment(window=3,
                                                                 min_diagonality=0.5)])
    for step in range(3):
        model(x)
        probe.step(step)
    return probe.events


def test_attention_collapsed_onto_one_frame_fires_and_a_diagonal_one_does_not() -> None:
    frames = 12
    positions = torch.zeros(2, frames, 16)
    positions[:, torch.arange(frames), torch.arange(frames)] = 1.0  # one-hot frame index
    # Healthy: query i and key j are frame i's and frame j's one-hot codes -> diagonal.
    diagonal = _attention(5 * torch.eye(16), torch.zeros(16), 5 * torch.eye(16))
    assert _alignment_events(diagonal, positions) == []
    # Collapsed: every query is the same, and only frame 0 has a key that matches it.
    marked = torch.randn(2, frames, 16, generator=torch.Generator().manual_seed(0))
    marked[:, :, 0] = 0.0
    marked[:, 0, 0] = 1.0
    key = torch.zeros(16, 16)
    key[:, 0] = 3.0  # key = 3 * (channel 0): large for frame 0 only
    collapsed = _attention(torch.zeros(16, 16), torch.full((16,), 3.0), key)
    (event,) = _alignment_events(collapsed, marked)
    assert (event.rule, event.layer) == ("attention_alignment", "attn")
    assert "collapsed onto one key" in event.message and event.value > 0.9


def test_attention_alignment_waits_for_its_warmup() -> None:
    """An attention that must learn to align is judged only from step ``warmup`` on."""
    rule = AttentionAlignment(window=2, min_diagonality=0.5, warmup=4)
    uniform = {"attn": {"entropy": 1.0, "focus": 0.1, "key_share": 0.1, "diagonality": 0.1}}
    fired = [e.step for step in range(8)
             for e in rule.check(StepView(step, None, attention=uniform))]
    assert fired == [5, 7]  # steps 4-5 make the first window judged, 6-7 the next


def test_background_statistics_fire_the_same_events_as_synchronous() -> None:
    """Huge learning rate: the events (and the exact first non-finite step and layer) and
    every statistic are the same whether the worker thread or the hooks compute them."""
    runs = []
    for background in (True, False):
        model = _mlp()
        probe = tympan.probe.attach(model, gradients=True, every=5, background=background,
                                    rules={"dead_units": {"window": 5},
                                           "exploding_gradients": {"window": 5}})
        _train(model, probe, 30, lr=5.0)
        runs.append((probe.events, probe.snapshot()))
        probe.detach()
    (bg_events, bg_snap), (sync_events, sync_snap) = runs
    assert any(e.rule == "non_finite" for e in sync_events)
    assert bg_events == sync_events
    assert bg_snap == sync_snap
