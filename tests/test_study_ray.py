"""The Ray executor against a real two-node Ray cluster on loopback, started by the test."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tympan.study.runner import run_study
from tympan.study.spec import load_study

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

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
        _stop_cluster(temp, port)
        patch.undo()
        shutil.rmtree(temp, ignore_errors=True)


def _stop_cluster(temp: str, port: int) -> None:
    """Stop this test's two nodes only: `ray stop` would kill every Ray of this user, such as
    the serving tests' cluster running beside this module under pytest-xdist."""
    import psutil

    def ours(proc: psutil.Process) -> bool:
        try:
            return any(temp in arg or arg.endswith(f":{port}") for arg in proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    procs = [p for p in psutil.process_iter() if ours(p)]
    for proc in list(procs):  # their agents and workers carry no path in their titles
        with contextlib.suppress(psutil.NoSuchProcess):
            procs += proc.children(recursive=True)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=30)


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


def test_ray_trials_need_only_the_team_servers_address_and_a_token(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The nodes were started without TYMPAN_STORE or TYMPAN_TOKEN: each trial gets the
    server's address and the runner's token, logs its run there, and the runner keeps the
    study's records there."""
    from tests.server_fixtures import live_server

    from tympan.store import open_store, tokens
    from tympan.study.records import load_stored_study

    where = str(tmp_path / "store")
    with open_store(where, create=True) as store, store.write() as conn:
        token = tokens.create(conn, "write", name="ray runner")[0]
    with live_server(where) as url:
        monkeypatch.setenv("TYMPAN_TOKEN", token)
        stored = run_study(load_study(_study(tmp_path / "served", "{cpus: 1}")), store=url,
                           executor="ray", address=cluster)
        trials = stored.current_trials()
        assert [t.status for t in trials] == ["finished"] * 4, [t.error for t in trials]
        assert all("threads 1" in log for log in _logs(stored))  # read through the server
    with open_store(where) as store:
        kept = load_stored_study(store, "served")
    assert kept.trials == stored.trials
    assert all(kept.runs[t.run_id].study_id == kept.id for t in trials)
