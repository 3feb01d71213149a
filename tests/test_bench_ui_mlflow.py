"""benchmarks/ui.py's MLflow peer holds the same runs as tympan's store: runs exported from a
real tympan store and bulk-loaded into MLflow's SQLite store (benchmarks/ui_mlflow_fill.py,
run by the real ``mlflow`` of .venv-mlflow) come back from MLflow's own client with tympan's
params, tags, times, latest metric values and the long history's every point. Speed is
measured by the benchmark, not here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tympan
from tympan.store import open_store, runs
from tympan.track.stores import close_stores

ROOT = Path(__file__).resolve().parents[1]

READ_BACK = textwrap.dedent('''
    import json, sys
    from mlflow.tracking import MlflowClient
    client = MlflowClient(sys.argv[1])
    out = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            history = client.get_metric_history(run.info.run_id, "train/loss")
            out[run.info.run_name] = {
                "experiment": exp.name, "params": run.data.params, "status": run.info.status,
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                "system": sorted(k for k in run.data.tags if k.startswith("mlflow.")),
                "times": [run.info.start_time, run.info.end_time],
                "metrics": run.data.metrics, "history": [m.step for m in history]}
    print(json.dumps(out))
''')


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_mlflow_gets_the_same_runs(tmp_path, mlflow_python: str) -> None:
    store = str(tmp_path / "store")
    made = []
    for i, encoder in enumerate(["gru", "lstm", "conformer"]):  # the third is beyond n=2
        run = tympan.init(project="sweep", name=f"sweep-{i}", store=store, tags=["sweep", "w=1"],
                          config={"model": {"encoder": encoder, "layers": 2 + i},
                                  "optim": {"lr": 1e-3}, "augment": bool(i)})
        for step, wer in enumerate([0.5, 0.2 + i / 10, 0.3 + i / 10]):
            run.log({"valid/wer": wer}, step=step)
        run.finish()
        made.append(run)
    long = tympan.init(project="long", name="long", store=store)
    for step in range(300):
        long.log({"train/loss": 1 / (1 + step)}, step=step)
    long.finish()
    close_stores()
    with open_store(store) as opened, opened.read() as conn:
        second = runs.get(conn, made[1].id)

    ui_mlflow = load("ui_mlflow")
    exported = ui_mlflow.export_runs(store, long.id, 2, tmp_path)
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    subprocess.run([mlflow_python, str(ROOT / "benchmarks" / "ui_mlflow_fill.py"), str(exported),
                    db, str(tmp_path / "artifacts"), str(tmp_path / "ids.json")],
                   check=True, capture_output=True, text=True, timeout=300)
    done = subprocess.run([mlflow_python, "-c", READ_BACK, db], check=True,
                          capture_output=True, text=True, timeout=300)
    got = json.loads(done.stdout.splitlines()[-1])

    assert sorted(got) == ["long", "sweep-0", "sweep-1"]  # each project's oldest 2 runs
    first, bulk = got["sweep-0"], got["sweep-1"]  # through MlflowClient, then bulk-inserted
    assert bulk["params"] == {"model.encoder": "lstm", "model.layers": "3",
                              "optim.lr": "0.001", "augment": "true"}
    assert bulk["tags"] == {"sweep": "", "w": "1"}
    assert bulk["status"] == "FINISHED"
    assert bulk["times"] == [int(second.started_at * 1000), int(second.ended_at * 1000)]
    assert bulk["metrics"] == {"valid/wer": pytest.approx(0.4)}  # the last point, not the min
    assert bulk["system"] == first["system"] and "mlflow.runName" in bulk["system"]
    assert first["metrics"] == {"valid/wer": pytest.approx(0.3)}
    assert got["long"]["history"] == list(range(300))
    assert got["long"]["metrics"] == {"train/loss": pytest.approx(1 / 300)}

