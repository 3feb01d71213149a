"""tympan.records.compare: pure comparisons of two runs' config, environment and metrics."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

import tympan
from tympan.records.compare import (
    Change,
    StatChange,
    diff_config,
    diff_environment,
    diff_metrics,
    diff_runs,
    environment_facts,
)
from tympan.store.summaries import Summary


def environment(**changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "git": {"commit": "a" * 40, "branch": "main", "dirty": True,
                "diff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", "untracked": ["notes.txt"],
                "remote": None, "root": "/src"},
        "python": {"version": "3.11.9", "implementation": "CPython", "executable": "/py"},
        "packages": {"numpy": "1.26.4", "torch": "2.1.0", "torchaudio": "2.1.0"},
        "os": {"system": "Linux", "release": "6.1.0", "version": "#1 SMP", "machine": "x86_64",
               "hostname": "gpu-3"},
        "cpu": {"model": "AMD EPYC 7763", "count": 64, "memory_bytes": 2**38},
        "gpu": [{"name": "NVIDIA H100", "memory_bytes": 80 * 2**30, "driver": "550.54"}],
        "command": {"argv": ["train.py", "--lr", "0.1"], "cwd": "/src", "executable": "/py"},
        "env_vars": {"CUDA_VISIBLE_DEVICES": "0"},
    }
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            env[section][key] = value
        else:
            env[section] = value
    return env


# --- config ------------------------------------------------------------------------------


def test_config_changed_and_one_sided_keys_are_flattened() -> None:
    a = {"model": {"encoder": "gru", "layers": 2}, "lr": 0.001, "warmup": 100}
    b = {"model": {"encoder": "lstm", "layers": 2, "dropout": 0.1}, "lr": 0.001}
    diff = diff_config(a, b)
    assert diff.changed == [Change("model.encoder", "gru", "lstm")]
    assert diff.only_in_a == {"warmup": 100}
    assert diff.only_in_b == {"model.dropout": 0.1}
    assert diff.unchanged == 2
    assert not diff.same


def test_config_bool_versus_number_is_a_change_but_int_versus_float_is_not() -> None:
    diff = diff_config({"flag": True, "n": 1, "x": float("nan")},
                       {"flag": 1, "n": 1.0, "x": float("nan")})
    assert diff.changed == [Change("flag", True, 1)]
    assert diff.unchanged == 2


def test_identical_configs_are_the_same() -> None:
    diff = diff_config({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}})
    assert diff.same and diff.unchanged == 1


# --- environment -------------------------------------------------------------------------


def test_environment_facts_summarise_the_captured_dict() -> None:
    facts = environment_facts(environment())
    assert facts == {
        "git.commit": "a" * 40,
        "git.branch": "main",
        "git.dirty": True,
        "git.diff_lines": 5,
        "git.untracked": 1,
        "python.version": "3.11.9",
        "os": "Linux 6.1.0 x86_64",
        "cpu": "AMD EPYC 7763 x64",
        "gpu": ["NVIDIA H100"],
        "command.argv": ["train.py", "--lr", "0.1"],
    }


def test_environment_facts_tolerate_sections_that_failed_to_capture() -> None:
    facts = environment_facts({"git": None, "python": None, "gpu": None, "cpu": None})
    assert set(facts.values()) == {None}


def test_package_versions_added_removed_and_changed() -> None:
    a = environment()
    b = environment(packages={"numpy": "1.26.4", "torch": "2.2.0", "librosa": "0.10.1"})
    diff = diff_environment(a, b)
    assert diff.packages_changed == [Change("torch", "2.1.0", "2.2.0")]
    assert diff.packages_added == {"librosa": "0.10.1"}
    assert diff.packages_removed == {"torchaudio": "2.1.0"}
    assert diff.changed == []
    assert not diff.same and diff.recorded_a and diff.recorded_b


def test_code_python_hardware_and_command_changes() -> None:
    b = environment(git__commit="b" * 40, git__dirty=False, git__diff="", python__version="3.12.3",
                    gpu=[{"name": "NVIDIA A100"}],
                    command__argv=["train.py", "--lr", "0.2"])
    diff = diff_environment(environment(), b)
    changed = {c.key: (c.a, c.b) for c in diff.changed}
    assert changed == {
        "git.commit": ("a" * 40, "b" * 40),
        "git.dirty": (True, False),
        "git.diff_lines": (5, 0),
        "python.version": ("3.11.9", "3.12.3"),
        "gpu": (["NVIDIA H100"], ["NVIDIA A100"]),
        "command.argv": (["train.py", "--lr", "0.1"], ["train.py", "--lr", "0.2"]),
    }
    assert not (diff.packages_added or diff.packages_removed or diff.packages_changed)


def test_same_environment_and_a_missing_one() -> None:
    assert diff_environment(environment(), copy.deepcopy(environment())).same
    missing = diff_environment(environment(), None)
    assert missing.recorded_a and not missing.recorded_b
    assert missing.packages_removed == environment()["packages"]


# --- metrics -----------------------------------------------------------------------------


def summary(last: float, lo: float, hi: float) -> Summary:
    return Summary(last=last, last_step=9, min=lo, min_step=3, max=hi, max_step=0, count=10)


def test_metric_deltas_are_b_minus_a_with_relative_change() -> None:
    diff = diff_metrics({"loss": summary(0.5, 0.4, 2.0), "acc": summary(0.8, 0.1, 0.8)},
                        {"loss": summary(0.25, 0.2, 2.0), "wer": summary(0.1, 0.1, 0.3)})
    assert [m.key for m in diff.both] == ["loss"]
    loss = diff.both[0]
    assert loss.last == StatChange(0.5, 0.25, -0.25, -0.5)
    assert loss.min.delta == pytest.approx(-0.2) and loss.min.relative == pytest.approx(-0.5)
    assert loss.max == StatChange(2.0, 2.0, 0.0, 0.0)
    assert diff.only_in_a == ["acc"] and diff.only_in_b == ["wer"]


def test_metric_delta_is_none_for_non_finite_or_missing_values_and_zero_base() -> None:
    a = {"x": summary(float("nan"), 0.0, float("inf")), "y": Summary()}
    b = {"x": summary(1.0, 1.0, 1.0), "y": summary(1.0, 1.0, 1.0)}
    diff = diff_metrics(a, b)
    x, y = diff.both
    assert math.isnan(x.last.a) and x.last.delta is None and x.last.relative is None
    assert x.min == StatChange(0.0, 1.0, 1.0, None)  # no relative change from zero
    assert x.max.delta is None
    assert y.last == StatChange(None, 1.0, None, None)


# --- whole runs, from a real store -------------------------------------------------------


def test_diff_runs_on_stored_runs(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    a = tympan.init(project="asr", name="a", store=store, config={"enc": "gru", "lr": 0.1})
    a.log({"loss": 1.0}, step=0)
    a.log({"loss": 0.5}, step=1)
    a.finish()
    b = tympan.init(project="asr", name="b", store=store, config={"enc": "lstm", "lr": 0.1})
    b.log({"loss": 0.8}, step=0)
    b.log({"loss": 0.25}, step=1)
    b.finish()
    ra, rb = tympan.load_run(a.id, store=store), tympan.load_run(b.id, store=store)
    env_b = environment(packages={"torch": "2.2.0"})
    result = diff_runs(ra, rb, environment(), env_b)
    assert (result.a_id, result.a_name, result.b_id, result.b_name) == (a.id, "a", b.id, "b")
    assert result.config.changed == [Change("enc", "gru", "lstm")]
    assert result.environment.packages_changed == [Change("torch", "2.1.0", "2.2.0")]
    assert result.metrics.both[0].last == StatChange(0.5, 0.25, -0.25, -0.5)
    same = diff_runs(ra, ra, ra.environment(), ra.environment())
    assert same.config.same and same.environment.same
