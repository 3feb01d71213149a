"""`executor: ray` in a pipeline: the challenger's seeds train as Ray tasks, on the same
two-node loopback cluster as the study tests (tests/test_study_ray.py; only its own nodes are
stopped), and the iteration gates and promotes as on the local executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.test_loop import _batch, loop_lab
from tests.test_study_ray import cluster  # noqa: F401 - the fixture

import tympan
import tympan.models as models
from tympan.errors import InvalidInputError
from tympan.loop.iteration import run_iteration
from tympan.loop.spec import load_pipeline

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'tympan[ray]')")


def test_challenger_seeds_train_as_ray_tasks(cluster: str, tmp_path: Path,  # noqa: F811
                                             tmp_path_factory: pytest.TempPathFactory,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_on_the_executor(monkeypatch)
    store = str(tmp_path / "store.db")
    path = loop_lab(store, tmp_path, tmp_path_factory, f"executor: ray\naddress: {cluster}\n")
    _batch(tmp_path / "data" / "batch1.jsonl", tmp_path / "gold", shift_texts=False)
    lines: list[str] = []
    done = run_iteration(load_pipeline(path), store=store, say=lines.append)
    assert sum("(ray)" in line for line in lines) == 2, lines
    assert done.status == "promoted", done.report
    assert models.get("asr-digits@champion", store=store).version == 2
    trainings = [tympan.load_run(r, store=store) for r in
                 tympan.load_run(done.gate_run, store=store).config["trainings"]]
    assert [t.status for t in trainings] == ["finished", "finished"]
    # One CPU on each node and one CPU per training: both seeds were handed to Ray before the
    # loop waited for either (whether they then overlap in time depends on the machine's load).
    assert calls[0] == "slots 2", calls
    assert calls[1:3] == ["start", "start"], calls


def _spy_on_the_executor(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The executor calls `_train_all` makes, in order: its slots, then start / wait."""
    import tympan.study.executors as executors

    calls: list[str] = []
    real = executors.make_executor

    def spied(*args: object) -> object:
        pool = real(*args)
        calls.append(f"slots {pool.slots}")
        start, wait = pool.start, pool.wait
        monkeypatch.setattr(pool, "start", lambda job: (calls.append("start"), start(job))[1])
        monkeypatch.setattr(pool, "wait", lambda **kw: (calls.append("wait"), wait(**kw))[1])
        return pool

    monkeypatch.setattr(executors, "make_executor", spied)
    return calls


def test_an_address_without_the_ray_executor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nmodel: m\ndata: d\ngold: g.jsonl\naddress: 127.0.0.1:6379\n")
    with pytest.raises(InvalidInputError, match="address: is for executor: ray"):
        load_pipeline(path)
