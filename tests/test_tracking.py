"""The tracking API end to end, on both backends: what is logged is what is read back."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

import tympan
from tympan.errors import (
    InvalidInputError,
    MetricKeyError,
    MetricValueError,
    RunNotFoundError,
    RunStateError,
    SettingsError,
)


def test_logged_points_and_summary_read_back(store_url: str) -> None:
    run = tympan.init(project="asr", name="baseline", config={"lr": 1e-3}, store=store_url)
    for i in range(1000):
        run.log({"loss": 1.0 / (i + 1), "wer": 0.5 - i * 1e-4}, step=i)
    run.log({"lr": 0.1}, step=7)
    run.finish()

    record = tympan.load_run(run.id, store=store_url)
    assert record.status == "finished" and record.name == "baseline"
    loss = record.history("loss")
    np.testing.assert_array_equal(loss.steps, np.arange(1000))
    np.testing.assert_allclose(loss.values, 1.0 / np.arange(1, 1001))
    assert np.all(np.diff(loss.times) >= 0)
    s = record.summary["loss"]
    assert (s.last, s.last_step, s.count) == (pytest.approx(1e-3), 999, 1000)
    assert (s.min_step, s.max, s.max_step) == (999, 1.0, 0)
    assert record.summary["lr"].count == 1
    assert sorted(record.metric_keys()) == ["loss", "lr", "wer"]


def test_nan_and_inf_are_kept_and_counted(store_url: str) -> None:
    run = tympan.init(project="p", store=store_url)
    for step, value in enumerate([1.0, float("nan"), float("inf"), -2.0, float("-inf"), 3.0]):
        run.log({"grad_norm": value}, step=step)
    run.log({"diverged": float("nan")}, step=9)
    run.finish()
    record = tympan.load_run(run.id, store=store_url)
    values = record.history("grad_norm").values
    assert math.isnan(values[1]) and values[2] == math.inf and values[4] == -math.inf
    s = record.summary["grad_norm"]
    assert (s.count, s.nan_count, s.inf_count) == (6, 1, 2)
    assert (s.min, s.max, s.last) == (-math.inf, math.inf, 3.0)
    assert math.isnan(record.summary["diverged"].last)
    assert record.summary["diverged"].min is None


def test_default_step_is_one_past_the_highest(store_url: str) -> None:
    run = tympan.init(project="p", store=store_url)
    run.log({"a": 1})
    run.log({"a": 2})
    run.log({"b": 3}, step=10)
    run.log({"a": 4})
    assert run.step == 12
    run.finish()
    record = tympan.load_run(run.id, store=store_url)
    assert record.history("a").steps.tolist() == [0, 1, 11]


def test_accepts_numpy_and_torch_scalars(store_url: str) -> None:
    torch = pytest.importorskip("torch")
    run = tympan.init(project="p", store=store_url)
    run.log({"np32": np.float32(0.25), "np_int": np.int64(3), "t": torch.tensor(0.5),
             "flag": True}, step=0)
    run.finish()
    summary = tympan.load_run(run.id, store=store_url).summary
    assert {k: v.last for k, v in summary.items()} == {"np32": 0.25, "np_int": 3.0, "t": 0.5,
                                                       "flag": 1.0}


def test_bad_values_raise_at_the_call_site_and_lose_nothing(tmp_path) -> None:
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    run.log({"loss": 1.0}, step=0)
    with pytest.raises(TypeError, match="'loss'.*str"):
        run.log({"loss": "1.0"}, step=1)
    with pytest.raises(MetricValueError, match="'acc'.*shape \\(3,\\)"):
        run.log({"loss": 2.0, "acc": np.zeros(3)}, step=1)  # whole call rejected
    with pytest.raises(MetricValueError, match="'x'.*NoneType"):
        run.log({"x": None})
    with pytest.raises(ValueError, match="invalid metric key 'bad key'"):
        run.log({"bad key": 1.0})
    with pytest.raises(MetricKeyError, match="must be a str"):
        run.log({3: 1.0})
    with pytest.raises(MetricKeyError):
        run.log({"x" * 201: 1.0})
    with pytest.raises(InvalidInputError, match="step must be an int"):
        run.log({"loss": 1.0}, step=1.5)
    with pytest.raises(InvalidInputError, match="log\\(\\) takes a dict"):
        run.log([("loss", 1.0)])
    run.log({"loss": 3.0}, step=2)
    run.finish()
    history = tympan.load_run(run.id, store=str(tmp_path / "s")).history("loss")
    assert history.values.tolist() == [1.0, 3.0]
    with pytest.raises(RunStateError, match="has finished"):
        run.log({"loss": 4.0})
    with pytest.raises(RunStateError):
        run.log_artifact(b"x", name="x")
    run.finish()  # idempotent


def test_caller_mutating_its_dict_after_log_changes_nothing(tmp_path) -> None:
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    metrics = {"loss": 1.0}
    run.log(metrics, step=0)
    metrics["loss"] = 99.0
    run.finish()
    assert tympan.load_run(run.id, store=str(tmp_path / "s")).history("loss").values[0] == 1.0


def test_context_manager_marks_failed_with_traceback(store_url: str) -> None:
    with pytest.raises(ZeroDivisionError), tympan.init(project="p", store=store_url) as run:
        run.log({"loss": 1.0}, step=0)
        1 / 0  # noqa: B018
    record = tympan.load_run(run.id, store=store_url)
    assert record.status == "failed"
    assert "ZeroDivisionError" in record.error and "1 / 0" in record.error
    assert record.summary["loss"].count == 1  # logged before the error: kept
    with tympan.init(project="p", store=store_url) as ok:
        ok.log({"x": 1})
    assert tympan.load_run(ok.id, store=store_url).status == "finished"


def test_module_level_log_uses_the_active_run(tmp_path) -> None:
    store = str(tmp_path / "s")
    assert tympan.active_run() is None
    with pytest.raises(RunStateError, match="tympan.init"):
        tympan.log({"x": 1})
    run = tympan.init(project="p", store=store)
    assert tympan.active_run() is run
    tympan.log({"x": 1.5})
    tympan.log_artifact(b"notes", name="notes.txt")
    tympan.finish()
    assert tympan.active_run() is None
    record = tympan.load_run(run.id, store=store)
    assert record.summary["x"].last == 1.5
    assert [a.path for a in record.artifacts()] == ["notes.txt"]


def test_resume_continues_steps_and_summary(store_url: str) -> None:
    run = tympan.init(project="p", name="long", store=store_url)
    for i in range(5):
        run.log({"loss": 5.0 - i}, step=i)
    run.finish()
    again = tympan.init(resume=run.id[:6], store=store_url)
    assert again.id == run.id and again.step == 5
    again.log({"loss": 0.5})
    again.finish()
    record = tympan.load_run("long", store=store_url)
    assert record.history("loss").steps.tolist() == [0, 1, 2, 3, 4, 5]
    s = record.summary["loss"]
    assert (s.count, s.min, s.min_step, s.max) == (6, 0.5, 5, 5.0)
    assert record.status == "finished"


def test_unknown_and_ambiguous_ids(store_url: str) -> None:
    with pytest.raises(RunNotFoundError, match="no run 'zzzzzz'"):
        tympan.init(resume="zzzzzz", store=store_url)
    a = tympan.init(project="p", store=store_url)
    a.finish()
    with pytest.raises(RunNotFoundError, match="no run"):
        tympan.load_run("not-a-run", store=store_url)
    assert tympan.load_run(a.id, store=store_url).id == a.id


def test_config_from_dataclass_namespace_and_errors(tmp_path) -> None:
    @dataclass
    class Config:
        encoder: str = "gru"
        layers: int = 3

    store = str(tmp_path / "s")
    run = tympan.init(project="p", config=Config(), store=store)
    run.finish()
    assert tympan.load_run(run.id, store=store).config == {"encoder": "gru", "layers": 3}
    ns = argparse.Namespace(lr=0.1, path=tmp_path, bad=float("nan"))
    run = tympan.init(project="p", config=ns, store=store)
    run.finish()
    assert tympan.load_run(run.id, store=store).config == {
        "lr": 0.1, "path": str(tmp_path), "bad": "nan"}
    with pytest.raises(InvalidInputError, match="'model.fn'.*function"):
        tympan.init(project="p", config={"model": {"fn": print}}, store=store)
    with pytest.raises(InvalidInputError, match="project"):
        tympan.init(project="", store=store)


def test_tags_parent_study_and_seed(tmp_path) -> None:
    store = str(tmp_path / "s")
    assert tympan.seed_everything(7) == 7  # before init: recorded by the next run
    parent = tympan.init(project="p", tags=["sweep", "sweep", "a"], store=store)
    parent.finish()
    child = tympan.init(project="p", tags="b", parent=parent.id, study="st1", store=store)
    tympan.seed_everything(11)
    child.finish()
    p, c = tympan.load_run(parent.id, store=store), tympan.load_run(child.id, store=store)
    assert p.tags == ["sweep", "a"] and p.seed == 7
    assert (c.tags, c.parent_id, c.study_id, c.seed) == (["b"], parent.id, "st1", 11)


def test_study_runners_link_runs_through_the_environment(tmp_path, monkeypatch) -> None:
    store = str(tmp_path / "s")
    monkeypatch.setenv("TYMPAN_STUDY", "study42")
    monkeypatch.setenv("TYMPAN_RUN_ID", "trial00001")
    first = tympan.init(project="p", store=store)
    first.finish()
    second = tympan.init(project="p", store=store, study="explicit")
    second.finish()
    assert first.id == "trial00001" and second.id != "trial00001"  # taken once
    assert "TYMPAN_RUN_ID" not in os.environ  # child processes will not reuse it
    assert tympan.load_run(first.id, store=store).study_id == "study42"
    assert tympan.load_run(second.id, store=store).study_id == "explicit"
    monkeypatch.setenv("TYMPAN_RUN_ID", "Not-An-Id")
    with pytest.raises(SettingsError, match="TYMPAN_RUN_ID='Not-An-Id' is not valid"):
        tympan.init(project="p", store=store)


def test_environment_is_captured(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYMPAN_CAPTURE_ENV", "1")
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    run.finish()
    env = tympan.load_run(run.id, store=store).environment()
    assert env["python"]["version"].count(".") == 2
    assert "numpy" in env["packages"] and env["cpu"]["count"] >= 1
    assert env["command"]["argv"]


def test_summary_property_flushes(tmp_path) -> None:
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    run.log({"loss": 2.0}, step=0)
    run.log({"loss": 1.0}, step=1)
    assert run.summary["loss"].min == 1.0  # read back without waiting for a flush
    run.finish()


def test_find_runs_filters_and_sorts(store_url: str) -> None:
    for i, (enc, status) in enumerate([("gru", "finished"), ("conv", "finished"),
                                       ("gru", "failed")]):
        run = tympan.init(project="abl", config={"model": {"encoder": enc}, "lr": 0.001 * (i + 1)},
                          tags=["t"] if i else [], store=store_url)
        run.log({"wer": 0.3 - i * 0.1})
        run.finish(status)
    other = tympan.init(project="other", store=store_url)
    other.finish()
    found = tympan.find_runs(store=store_url, project="abl", where={"model.encoder": "gru"})
    assert len(found) == 2
    assert len(tympan.find_runs(store=store_url, project="abl", status="failed")) == 1
    assert len(tympan.find_runs(store=store_url, project="abl", tags=["t"])) == 2
    assert len(tympan.find_runs(store=store_url, where={"lr": "0.002"})) == 1
    ranked = tympan.find_runs(store=store_url, sort="wer.min")
    assert [round(r.summary["wer"].min, 3) for r in ranked[:3]] == [0.1, 0.2, 0.3]
    assert ranked[-1].project == "other"  # no such metric: last
    with pytest.raises(InvalidInputError, match="no project 'nope'"):
        tympan.find_runs(store=store_url, project="nope")
    with pytest.raises(InvalidInputError, match="unknown status"):
        tympan.find_runs(store=store_url, status="done")


def test_a_run_name_is_never_silently_taken_for_an_id_prefix(tmp_path) -> None:
    store = str(tmp_path / "s")
    first = tympan.init(project="p", store=store)
    first.finish()
    prefix = first.id[:2]
    named = tympan.init(project="p", name=prefix, store=store)  # a name that is also a prefix
    named.finish()
    with pytest.raises(RunNotFoundError, match=f"'{prefix}' is ambiguous.*named.*ids starting"):
        tympan.load_run(prefix, store=store)
    assert tympan.load_run(first.id, store=store).id == first.id
    assert tympan.load_run(first.id[:9], store=store).id == first.id


@pytest.mark.parametrize("step", [2**62, 2**63, 2**64 + 5, -1, np.int64(2**62)])
def test_out_of_range_steps_are_refused_at_the_call_and_lose_nothing(tmp_path, step) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    for i in range(100):
        run.log({"loss": float(i)}, step=i)
    with pytest.raises(InvalidInputError, match=r"step must be between 0 and 2\*\*62"):
        run.log({"loss": -1.0}, step=step)
    with pytest.raises(InvalidInputError, match=r"step must be between 0 and 2\*\*62"):
        run.log_audio("clip", np.zeros(160), 16_000, step=step)
    run.log({"loss": 100.0})  # the default step is still one past the highest accepted
    run.finish()
    record = tympan.load_run(run.id, store=store)
    series = record.history("loss")
    np.testing.assert_array_equal(series.steps, np.arange(101))
    assert record.summary["loss"].count == 101 and record.summary["loss"].max == 100.0


def test_update_config_merges_and_stores(store_url: str) -> None:
    run = tympan.init(project="p", store=store_url, config={"model": {"layers": 4}, "lr": 0.1})
    run.update_config({"model": {"heads": 2}, "lr": 0.01, "batch": 16})
    assert run.config == {"model": {"layers": 4, "heads": 2}, "lr": 0.01, "batch": 16}
    run.finish()
    with pytest.raises(tympan.errors.RunStateError):
        run.update_config({"late": 1})
    assert tympan.load_run(run.id, store=store_url).config == {
        "model": {"layers": 4, "heads": 2}, "lr": 0.01, "batch": 16}
