"""The stock MLflow client logs into `tympan server` through /api/2.0/mlflow: a real
``mlflow`` (in its own venv, .venv-mlflow: `make mlflow-venv`) runs a small training script
in a subprocess with MLFLOW_TRACKING_URI pointing at a real server process, and the run shows
in tympan's own reads and API."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import httpx
import numpy as np
import pytest
from tests.server_fixtures import live_server

import tympan
from tympan.cli.app import main
from tympan.store import open_store, run_events, tokens
from tympan.track.stores import close_stores

CLIENT = textwrap.dedent('''
    import json, math, os, sys
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    out = {}
    mlflow.set_experiment("kws")
    with mlflow.start_run(run_name="w2v2-small") as run:
        mlflow.log_params({"lr": "0.001", "encoder": "conformer"})
        mlflow.set_tags({"stage": "dev", "team": ""})
        for step in range(50):  # a tiny least-squares fit, trained for real
            w = 1.0 - 0.9 ** (step + 1)
            mlflow.log_metric("train loss", (1.0 - w) ** 2, step=step)
        mlflow.log_metrics({"val/wer": 0.25, "val/bad": float("nan")}, step=49)
        with open(sys.argv[1], "w") as f:
            f.write("weights")
        mlflow.log_artifact(sys.argv[1], artifact_path="checkpoints")
        out["run_id"] = run.info.run_id
    client = MlflowClient()
    got = client.get_run(out["run_id"])
    out["status"] = got.info.status
    out["params"] = got.data.params
    out["tags"] = {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.source")}
    out["metrics"] = {k: (None if math.isnan(v) else v) for k, v in got.data.metrics.items()}
    history = client.get_metric_history(out["run_id"], "train loss")
    out["history"] = [(m.step, m.value) for m in history]
    out["artifacts"] = [a.path for a in client.list_artifacts(out["run_id"], "checkpoints")]
    path = client.download_artifacts(out["run_id"], "checkpoints", sys.argv[2])
    out["downloaded"] = open(os.path.join(path, os.path.basename(sys.argv[1]))).read()
    exp = client.get_experiment_by_name("kws")
    out["searched"] = [r.info.run_id for r in client.search_runs([exp.experiment_id])]
    client.delete_tag(out["run_id"], "stage")
    out["tags_after"] = sorted(k for k in client.get_run(out["run_id"]).data.tags
                               if not k.startswith("mlflow."))
    try:
        client.log_param(out["run_id"], "lr", "0.1")
    except MlflowException as exc:
        out["param_change"] = exc.error_code
    try:
        client.search_runs([exp.experiment_id], order_by=["metrics.loss DESC"])
    except MlflowException as exc:
        out["order_by"] = exc.error_code
    out["hidden"] = client.get_experiment_by_name("other-team")  # None: not found
    try:
        client.create_experiment("other-team")
    except MlflowException as exc:
        out["create_other"] = exc.error_code
    with mlflow.start_run(run_name="scratch") as scratch:  # deleted, restored, deleted again
        mlflow.log_metric("loss", 1.0)
    gone = out["scratch"] = scratch.info.run_id

    def listed(view=ViewType.ACTIVE_ONLY):
        return sorted(r.info.run_id for r in client.search_runs([exp.experiment_id],
                                                                 run_view_type=view))
    client.delete_run(gone)
    out["deleted"] = [client.get_run(gone).info.lifecycle_stage, listed(),
                      listed(ViewType.DELETED_ONLY), listed(ViewType.ALL)]
    try:  # MLflow refuses writes to a deleted run; so does tympan, and keeps nothing of it
        client.log_metric(gone, "loss", 2.0)
    except MlflowException as exc:
        out["log_deleted"] = [exc.error_code, "active" in str(exc)]
    client.restore_run(gone)
    out["restored"] = [client.get_run(gone).info.lifecycle_stage, listed(),
                       listed(ViewType.DELETED_ONLY)]
    client.delete_run(gone)
    try:
        client.delete_run("0" * 32)
    except MlflowException as exc:
        out["delete_missing"] = exc.error_code
    print(json.dumps(out))
''')


def test_the_mlflow_client_logs_through_the_endpoint(tmp_path, mlflow_python: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    other = tympan.init(project="other-team", store=store)
    other.finish()
    close_stores()
    with open_store(store) as opened, opened.write() as conn:
        token, minted = tokens.create(conn, "write", project="kws", name="mlflow client")
        reader, _ = tokens.create(conn, "read", name="reader")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    with live_server(store) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TYMPAN_"))}
        env.update(MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_TOKEN=token,
                   MLFLOW_ENABLE_ASYNC_LOGGING="false")
        done = subprocess.run([mlflow_python, str(script), str(tmp_path / "model.pt"),
                               str(tmp_path / "download")], capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        api = httpx.get(f"{url}/api/runs", params={"project": "kws"},
                        headers={"Authorization": f"Bearer {reader}"}).json()
        anonymous = httpx.post(f"{url}/api/2.0/mlflow/runs/search", json={})

    assert out["status"] == "FINISHED"
    assert out["params"] == {"lr": "0.001", "encoder": "conformer"}
    assert out["tags"]["stage"] == "dev" and out["tags"]["team"] == ""
    assert out["tags"]["mlflow.runName"] == "w2v2-small"
    assert out["metrics"]["val/wer"] == 0.25 and out["metrics"]["val/bad"] is None
    assert [s for s, _ in out["history"]] == list(range(50))
    assert out["artifacts"] == ["checkpoints/model.pt"] and out["downloaded"] == "weights"
    assert out["searched"] == [out["run_id"]]
    assert out["tags_after"] == ["team"]
    assert out["param_change"] == "INVALID_PARAMETER_VALUE"
    assert out["order_by"] == "INVALID_PARAMETER_VALUE"  # refused, not ignored
    # The token is bound to project kws: other projects are nowhere to be seen.
    assert out["hidden"] is None and out["create_other"] == "RESOURCE_DOES_NOT_EXIST"
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
    # delete_run is MLflow's soft delete: tympan archives the run, restore_run unarchives it.
    kept, gone = out["run_id"], out["scratch"]
    assert out["deleted"] == ["deleted", [kept], [gone], sorted([kept, gone])]
    assert out["log_deleted"] == ["INVALID_PARAMETER_VALUE", True]
    assert out["restored"] == ["active", sorted([kept, gone]), []]
    assert out["delete_missing"] == "RESOURCE_DOES_NOT_EXIST"
    archived = tympan.load_run(gone, store=store)
    assert archived.archived_at is not None and archived.summary["loss"].count == 1
    with open_store(store) as opened, opened.read() as conn:  # audited as the token
        events = run_events.listed(conn, run_id=gone)
    who = f"token:{minted.id} (mlflow client)"
    assert [(e.action, e.actor) for e in events] == [
        ("archive", who), ("unarchive", who), ("archive", who)]

    # The same run, read back by tympan: the CLI, the API, the Python reads.
    assert main(["--store", store, "runs", "--project", "kws"]) == 0
    listed = capsys.readouterr().out
    assert out["run_id"] in listed and "w2v2-small" in listed and "finished" in listed
    assert [r["id"] for r in api["runs"]] == [out["run_id"]]
    record = tympan.load_run(out["run_id"], store=store)
    assert (record.project, record.name, record.status) == ("kws", "w2v2-small", "finished")
    assert record.config == {"lr": "0.001", "encoder": "conformer"}
    assert record.tags == ["team"]  # "stage" was deleted
    loss = record.history("train_loss")  # "train loss": tympan keys hold no spaces
    np.testing.assert_allclose(loss.values, [0.9 ** (2 * (s + 1)) for s in range(50)])
    assert record.summary["val/bad"].nan_count == 1
    assert record.read_artifact("checkpoints/model.pt") == b"weights"
    assert record.environment()["mlflow"]["tags"]["mlflow.source.type"] == "LOCAL"


def test_concurrent_metric_writes_keep_every_point(store_url: str) -> None:
    """Requests of one run log at once (the server answers them on a thread pool): each
    point gets its own chunk number, none is lost. On SQLite and PostgreSQL."""
    from concurrent.futures import ThreadPoolExecutor

    from tympan.integrations.mlflow_tracking import MetricPoint, MlflowTracking

    with open_store(store_url, create=True) as store:
        tracking = MlflowTracking(store)
        run_id = tracking.create_run("0", "threads", None, {"k": "v"})["info"]["run_id"]

        def log(i: int) -> None:
            tracking.log_batch(run_id, [MetricPoint("loss", float(i), 1000 * i, i)], {}, {})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(log, range(48)))
        history = tracking.metric_history(run_id, "loss")
        assert sorted(p["step"] for p in history) == list(range(48))
        assert tracking.run(run_id)["data"]["tags"][0] == {"key": "k", "value": "v"}
        assert tracking.experiment("0")["name"] == "Default"
