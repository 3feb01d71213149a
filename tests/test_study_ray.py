"""The Ray executor against a real two-node Ray cluster on loopback, started by the test."""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tympan.study.runner import run_study
from tympan.study.spec import load_study

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'tympan[ray]')")

RAY = str(Path(sys.executable).parent / "ray")

TOY = """\
import os, sys, time
import tympan

args = dict(a.split("=", 1) for a in sys.argv[1:])
time.sleep(float(args.get("sleep", 0)))
with tympan.init(project="ray", config=args) as run:
    run.log({"score": int(args["seed"]) + (1.0 if args["enc"] == "b" else 0.0)})
print("raylet", os.environ.get("RAY_RAYLET_PID"), "gpus", os.environ.get("CUDA_VISIBLE_DEVICES"),
      "threads", os.environ.get("OMP_NUM_THREADS"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head node (1 CPU, 1 GPU declared) and a worker node (1 CPU), both on 127.0.0.1."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="tyray", dir="/tmp")  # short: Ray's socket paths
    # A loopback test cluster without token auth (Ray would enable it if a token file from
    # an earlier local Ray exists in ~/.ray); the test process joins it the same way.
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    env = dict(os.environ)
    common = ["--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    _ray_start(["--head", f"--port={port}", "--num-cpus=1", "--num-gpus=1",
                "--include-dashboard=false", f"--temp-dir={temp}", *common], env)
    address = f"127.0.0.1:{port}"
    try:
        _ray_start([f"--address={address}", "--num-cpus=1", *common], env)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)
        patch.undo()


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([RAY, "start", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, f"ray start {' '.join(args)} failed:\n{done.stderr[-3000:]}"


def _study(folder: Path, resources: str, seeds: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(TOY)
    path = folder / "study.yaml"
    path.write_text(f"name: {folder.name}\ncommand: python train.py\noverrides: {{sleep: 2}}\n"
                    "factors: {enc: {levels: [a, b], baseline: a}}\n"
                    f"seeds: {seeds}\nmetrics: [{{name: score, direction: higher}}]\n"
                    f"resources: {resources}\n")
    return path


def _logs(stored) -> list[str]:
    return [stored.read_log(t) for t in stored.current_trials()]


def test_trials_spread_over_both_nodes(cluster: str, tmp_path: Path) -> None:
    stored = run_study(load_study(_study(tmp_path / "spread", "{cpus: 1}")),
                       store=str(tmp_path / "store"), executor="ray", address=cluster)
    trials = stored.current_trials()
    assert [t.status for t in trials] == ["finished"] * 4, [t.error for t in trials]
    raylets = {re.search(r"raylet (\d+)", log).group(1) for log in _logs(stored)}
    assert len(raylets) == 2  # both nodes ran trials
    assert all("threads 1" in log for log in _logs(stored))
    assert all(stored.runs[t.run_id].study_id == stored.id for t in trials)


def test_fractional_gpus_share_one_device(cluster: str, tmp_path: Path) -> None:
    stored = run_study(load_study(_study(tmp_path / "share", "{cpus: 0.25, gpus: 0.5}")),
                       store=str(tmp_path / "store"), executor="ray", address=cluster)
    trials = stored.current_trials()
    assert all(t.status == "finished" for t in trials), [t.error for t in trials]
    assert all("gpus 0" in log for log in _logs(stored))  # Ray assigned device 0 to each
    # Two trials of half a GPU each ran at the same time on the one GPU.
    spans = sorted((t.started_at, t.ended_at) for t in trials)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def test_an_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    from tympan.errors import StudyError

    path = _study(tmp_path / "nowhere", "{cpus: 1}")
    with pytest.raises(StudyError, match="cannot connect to Ray at 127.0.0.1:1"):
        run_study(load_study(path), store=str(tmp_path / "store"), executor="ray",
                  address="127.0.0.1:1")
