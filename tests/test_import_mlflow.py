"""`tympan import mlflow`: a real MLflow store (SQLite, written by the real client in
.venv-mlflow, `make mlflow-venv`) comes into tympan whole and once. One subprocess in that
venv writes the MLflow runs and runs the import three times (first, again unchanged, and
after more points were logged); this test then reads the tympan store."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np

import tympan

SCRIPT = textwrap.dedent('''
    import json, os, sys, time
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from tympan.cli.app import main

    uri, store, workdir = sys.argv[1:4]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("asr")
    with mlflow.start_run(run_name="conformer") as parent:
        mlflow.log_params({"lr": "0.0003", "encoder": "conformer"})
        mlflow.set_tags({"stage": "dev", "long": "x" * 150})
        mlflow.set_tag("mlflow.note.content", "the baseline")
        client = MlflowClient()
        now = int(time.time() * 1000)
        points = [Metric("train loss", 1.0 / (s + 1), now + s, s) for s in range(1200)]
        for i in range(0, len(points), 1000):  # MLflow takes 1000 metrics a batch
            client.log_batch(parent.info.run_id, metrics=points[i:i + 1000])
        os.makedirs(os.path.join(workdir, "ckpt"))
        with open(os.path.join(workdir, "ckpt", "last.pt"), "wb") as f:
            f.write(b"weights")
        mlflow.log_artifacts(os.path.join(workdir, "ckpt"), artifact_path="checkpoints")
        with mlflow.start_run(run_name="child", nested=True):
            mlflow.log_metric("val/wer", 0.3, step=0)
    mlflow.set_experiment("tts")
    with mlflow.start_run(run_name="broken") as broken:
        mlflow.log_metric("loss", float("nan"), step=0)
    client.set_terminated(broken.info.run_id, "FAILED")

    cli = ["--store", store, "import", "mlflow", "--tracking-uri", uri]
    codes = [main(cli)]
    codes.append(main(cli))
    client.log_batch(parent.info.run_id, metrics=[
        Metric("train loss", 0.0001, now + 5000, 1200 + s) for s in range(10)])
    codes.append(main([*cli, "--experiment", "asr"]))
    codes.append(main([*cli, "--experiment", "nope"]))
    print(json.dumps({"codes": codes, "parent": parent.info.run_id}))
''')


def test_import_mlflow_store(tmp_path, mlflow_python: str) -> None:
    store, uri = str(tmp_path / "store"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TYMPAN_"))}
    env["TYMPAN_CAPTURE_ENV"] = "0"
    done = subprocess.run([mlflow_python, str(script), uri, store, str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["codes"] == [0, 0, 0, 1]
    lines = done.stdout.splitlines()
    assert sum(line.startswith("imported ") for line in lines) == 3
    # the second import changes nothing; the third (asr only) only the run with new points
    assert sum(line.startswith("unchanged ") for line in lines) == 3 + 1
    assert any(line.startswith("updated ") and "10 new points" in line for line in lines)
    assert "error: no MLflow experiment named 'nope'" in done.stderr

    runs = {r.name: r for r in tympan.find_runs(store=store)}
    assert set(runs) == {"conformer", "child", "broken"}
    parent, child, broken = runs["conformer"], runs["child"], runs["broken"]
    assert (parent.project, broken.project) == ("asr", "tts")
    assert parent.status == "finished" and broken.status == "failed"
    assert parent.config == {"lr": "0.0003", "encoder": "conformer"}
    assert parent.tags == ["stage=dev"] and parent.note == "the baseline"
    assert parent.environment()["mlflow"]["tags"]["long"] == "x" * 150
    loss = parent.history("train_loss")
    np.testing.assert_array_equal(loss.steps, np.arange(1210))
    np.testing.assert_allclose(loss.values[:1200], 1.0 / (np.arange(1200) + 1))
    assert parent.read_artifact("checkpoints/last.pt") == b"weights"
    assert child.parent_id == parent.id and child.summary["val/wer"].last == 0.3
    assert broken.summary["loss"].nan_count == 1
    assert f"MLflow run {out['parent']}" not in parent.note  # its own note was kept
