"""System metrics sampled in the background, and the console kept as console.log: both on
by default (the test suite turns them off, see conftest), both with an off switch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tympan
from tympan.errors import InvalidInputError
from tympan.track.gpu import open_nvml

MACHINE_KEYS = {"system/cpu_percent", "system/memory_percent", "system/memory_used_gb",
                "system/process_cpu_percent", "system/process_rss_gb",
                "system/process_threads"}


def _system_keys(record) -> set[str]:
    return {k for k in record.summary if k.startswith("system/")}


def test_system_metrics_are_sampled_at_the_training_step(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TYMPAN_SYSTEM_INTERVAL", "0.05")
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store, system_metrics=True)
    ballast = []
    for step in range(8):
        ballast.append(np.ones(2_000_000))  # 16 MB more each step: the process grows
        (tmp_path / f"junk-{step}.bin").write_bytes(os.urandom(1 << 20))
        run.log({"loss": 1.0 / (step + 1)})
        time.sleep(0.06)
    run.finish()
    assert not [t for t in threading.enumerate() if t.name.startswith("tympan-system")]

    record = tympan.load_run(run.id, store=store)
    assert record.history("loss").steps.tolist() == list(range(8))  # samples never move it
    keys = _system_keys(record)
    assert keys >= MACHINE_KEYS
    assert {"system/disk_write_mb_s", "system/net_recv_mb_s"} <= keys  # rates, not counters
    rss = record.history("system/process_rss_gb")
    assert len(rss) >= 4 and rss.values[-1] > rss.values[0] + 0.05  # saw the 128 MB grow
    assert set(rss.steps.tolist()) <= set(range(8))  # stamped with the step being trained
    assert np.all(np.diff(rss.times) > 0)
    memory = record.summary["system/memory_percent"]
    assert 0 < memory.min <= memory.max <= 100
    assert record.summary["system/disk_write_mb_s"].max > 0
    if open_nvml() is None:
        assert not any(k.startswith("system/gpu.") for k in keys)


def test_a_run_shorter_than_the_interval_still_has_one_sample(tmp_path) -> None:
    store = str(tmp_path / "s")
    with tympan.init(project="p", store=store, system_metrics=True) as run:
        run.log({"loss": 1.0})
    record = tympan.load_run(run.id, store=store)
    assert record.summary["system/cpu_percent"].count == 1  # the sample at finish()


def test_system_metrics_turn_off_by_setting_or_argument(tmp_path, monkeypatch) -> None:
    store = str(tmp_path / "s")
    monkeypatch.setenv("TYMPAN_SYSTEM_METRICS", "1")
    monkeypatch.setenv("TYMPAN_SYSTEM_INTERVAL", "0.02")
    with tympan.init(project="p", store=store) as on:  # the default: on
        time.sleep(0.1)
    with tympan.init(project="p", store=store, system_metrics=False) as off:
        time.sleep(0.1)
    monkeypatch.setenv("TYMPAN_SYSTEM_METRICS", "0")
    with tympan.init(project="p", store=store) as unset:
        time.sleep(0.1)
    assert _system_keys(tympan.load_run(on.id, store=store)) >= MACHINE_KEYS
    assert not _system_keys(tympan.load_run(off.id, store=store))
    assert not _system_keys(tympan.load_run(unset.id, store=store))
    with pytest.raises(InvalidInputError, match="system_metrics= must be True, False or None"):
        tympan.init(project="p", store=store, system_metrics="yes")
    monkeypatch.setenv("TYMPAN_SYSTEM_INTERVAL", "0")
    with pytest.raises(tympan.errors.SettingsError, match="TYMPAN_SYSTEM_INTERVAL"):
        tympan.init(project="p", store=store, system_metrics=True)


@pytest.mark.skipif(open_nvml() is None, reason="no NVIDIA GPU and driver (NVML) here")
def test_gpu_utilisation_and_memory_come_from_nvml(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    store = str(tmp_path / "s")
    with tympan.init(project="p", store=store, system_metrics=True) as run:
        held = torch.ones(256, 1024, 1024, device="cuda")  # 1 GiB on the first GPU
        for _ in range(50):
            held = held * 1.0001
        torch.cuda.synchronize()
    record = tympan.load_run(run.id, store=store)
    used = record.summary["system/gpu.0.memory_used_gb"]
    assert used.max >= 1.0 and 0 < record.summary["system/gpu.0.memory_percent"].max <= 100
    assert 0 <= record.summary["system/gpu.0.utilization_percent"].max <= 100


SCRIPT = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    import tympan

    run = tympan.init(project="p", store=sys.argv[1])
    print("epoch 0: loss 1.5")
    print("warning: lr is high", file=sys.stderr)
    logging.getLogger("trainer").info("set up before init, kept all the same")
    for i in range(int(sys.argv[2])):
        print(f"line {i:05d}")
    run.finish()
    print("after finish: not kept")
    print(run.id)
""")


def _run_script(tmp_path: Path, lines: int, **env: str) -> tuple[subprocess.CompletedProcess,
                                                                   str]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    store = str(tmp_path / "s")
    done = subprocess.run([sys.executable, str(script), store, str(lines)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TYMPAN_CONSOLE": "1",
                                                       **env})
    assert done.returncode == 0, done.stderr
    return done, store


def test_the_console_is_kept_and_still_shown(tmp_path) -> None:
    done, store = _run_script(tmp_path, 3)
    run_id = done.stdout.split()[-1]
    assert "epoch 0: loss 1.5\nline 00000" in done.stdout  # the user still sees it all
    assert "warning: lr is high" in done.stderr and "kept all the same" in done.stderr
    record = tympan.load_run(run_id, store=store)
    (log,) = [a for a in record.artifacts() if a.path == "console.log"]
    assert log.media_type == "text/plain"
    text = record.read_artifact("console.log").decode()
    assert text.splitlines() == ["epoch 0: loss 1.5", "warning: lr is high",
                                 "INFO set up before init, kept all the same",
                                 "line 00000", "line 00001", "line 00002"]


def test_a_long_console_keeps_its_first_and_last_part(tmp_path) -> None:
    done, store = _run_script(tmp_path, 5000, TYMPAN_CONSOLE_LIMIT="2000")
    text = tympan.load_run(done.stdout.split()[-1], store=store).read_artifact(
        "console.log").decode()
    assert text.startswith("epoch 0: loss 1.5\n") and text.endswith("line 04999\n")
    assert "tympan dropped" in text and "TYMPAN_CONSOLE_LIMIT" in text
    assert 2000 <= len(text) < 2200
    assert done.stdout.count("\nline ") == 5000  # the terminal got every line


def test_the_console_is_off_by_setting_or_argument(tmp_path, capsys, monkeypatch) -> None:
    store = str(tmp_path / "s")
    monkeypatch.setenv("TYMPAN_CONSOLE", "1")
    before = sys.stdout
    with tympan.init(project="p", store=store, console=True) as kept:
        assert sys.stdout is not before
        print("kept in-process")
    assert sys.stdout is before  # put back at finish
    with tympan.init(project="p", store=store, console=False) as dropped:
        assert sys.stdout is before
        print("not kept")
    monkeypatch.setenv("TYMPAN_CONSOLE", "0")
    with tympan.init(project="p", store=store) as unset:
        assert sys.stdout is before
    assert tympan.load_run(kept.id, store=store).read_artifact("console.log") == (
        b"kept in-process\n")
    for run in (dropped, unset):
        artifacts = tympan.load_run(run.id, store=store).artifacts()
        assert "console.log" not in {a.path for a in artifacts}
    assert "kept in-process" in capsys.readouterr().out
