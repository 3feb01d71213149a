"""Model registry benchmark: register and load the recipe models with tympan (local SQLite,
PostgreSQL, and an S3 artifact root on moto's S3 server) and with MLflow
(``mlflow.pytorch.log_model`` with ``registered_model_name`` + ``mlflow.pytorch.load_model``,
SQLite tracking store, local artifacts), in the same run; then ``models:/`` resolution with
1,000 models x 20 versions on SQLite and PostgreSQL.

    bash benchmarks/setup-bench.sh                  # .venv-bench: MLflow and torch==2.13.0 (CPU)
    .venv/bin/python benchmarks/registry.py         # a few minutes
    .venv/bin/python benchmarks/registry.py --quick # fewer repeats, smoke test

Models: the ASR recipe's default conv CTC model and its GRU variant, and the speaker recipe's
default x-vector, each as an untrained checkpoint of its real size (registering and loading
do not depend on the weights' values). Figures, each the median of ``--repeats``:

  register   ms for one call that registers a new version of a logged checkpoint. tympan
             snapshots the recipe code, rebuilds the model through its ``inference()`` hook
             (signature, parameter count) and writes the version; MLflow serializes the
             module it is handed (pickled, with the conda/pip environment files it infers;
             MLflow 3's default "pt2" format needs an input example to trace, pickle takes
             any module as it is) and registers it.
  load       ms to get an eval-mode module back from ``models:/NAME/VERSION`` in a warm
             process (imports done, as in a server that loads a second model).
  load-cold  ms for a fresh ``python -c`` that imports the library and loads the model, the
             default a user gets on the command line or a new serving process.

tympan's workers run with this interpreter; MLflow's with ``.venv-bench/bin/python`` (it
needs torch there, which setup-bench.sh installs as the pinned CPU wheel). PostgreSQL figures
need 127.0.0.1:5432 (a fresh database is created and dropped); S3 figures need moto[server]
and s3fs (the dev and s3 extras). Results also go to benchmarks/.out/registry.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))

MODELS = {  # name -> (recipe, config overrides)
    "asr-conv": ("recipes/asr_ctc", {}),
    "asr-gru": ("recipes/asr_ctc", {"encoder": "gru"}),
    "speaker-xvector": ("recipes/speaker_id", {}),
}
MARK = "@@registry-bench@@ "


def checkpoint(model: str, corpus: str) -> tuple[Any, bytes, dict[str, Any]]:
    """(the torch module, its checkpoint bytes as the recipe saves them, its config)."""
    import torch

    recipe, overrides = MODELS[model]
    if recipe == "recipes/asr_ctc":
        from recipes.asr_ctc.train import ALPHABET, Config, CTCModel

        cfg = Config(corpus_dir=corpus, **overrides)
        module = CTCModel(cfg, dims=cfg.n_mels)
        extra: dict[str, Any] = {"alphabet": ALPHABET}
    else:
        from recipes.speaker_id.train import Config, XVector

        cfg = Config(corpus_dir=corpus, **overrides)
        speakers = [f"spk{i:03d}" for i in range(24)]
        module = XVector(cfg, dims=cfg.n_mels, n_speakers=len(speakers))
        extra = {"speakers": speakers}
    buffer = io.BytesIO()
    torch.save({"model": module.state_dict(), "config": asdict(cfg), **extra}, buffer)
    return module.eval(), buffer.getvalue(), asdict(cfg)


def median_ms(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up, untimed: first imports, caches
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples), samples


def cold_ms(code: str, python: str, repeats: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, capture_output=True, cwd=ROOT,
                       env={**os.environ, **env})
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


# -- workers --------------------------------------------------------------------------------

def tympan_worker(args: argparse.Namespace) -> dict[str, Any]:
    import tympan

    module, data, config = checkpoint(args.model, args.corpus)
    recipe = MODELS[args.model][0]
    run = tympan.init(project="bench", config={**config, "recipe": recipe}, store=args.store)
    run.log_artifact(data, name="model.pt")
    run.finish()
    name = f"{args.model}"

    def register() -> None:
        tympan.models.register(run.id, name, store=args.store)

    reg, _ = median_ms(register, args.repeats)
    uri = f"models:/{name}/1"
    load, _ = median_ms(lambda: tympan.models.load(uri, store=args.store), args.repeats)
    code = (f"import tympan; m = tympan.models.load({uri!r}, store={args.store!r}); "
            "assert not m.model.training")
    cold = cold_ms(code, sys.executable, max(2, args.repeats // 2), {})
    size = len(data)
    return {"register": reg, "load": load, "load-cold": cold, "bytes": size,
            "parameters": sum(p.numel() for p in module.parameters())}


def mlflow_worker(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    import mlflow.pytorch

    folder = Path(args.store)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    module = checkpoint(args.model, args.corpus)[0]
    name = args.model

    def register() -> None:
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pytorch.log_model(module, name="model", registered_model_name=name,
                                     serialization_format="pickle")

    reg, _ = median_ms(register, args.repeats)
    model_uri = f"models:/{name}/1"
    load, _ = median_ms(lambda: mlflow.pytorch.load_model(model_uri), args.repeats)
    code = (f"import mlflow, mlflow.pytorch; mlflow.set_tracking_uri({uri!r}); "
            f"mlflow.set_registry_uri({uri!r}); m = mlflow.pytorch.load_model({model_uri!r}); "
            "assert not m.training")
    cold = cold_ms(code, sys.executable, max(2, args.repeats // 2), {})
    return {"register": reg, "load": load, "load-cold": cold, "version": mlflow.__version__}


def resolution_worker(args: argparse.Namespace) -> dict[str, Any]:
    """1,000 models x 20 versions with a @champion each; resolve URIs of random models."""
    import random

    import tympan
    from tympan.registry.actor import local_user
    from tympan.registry.local import LocalRegistry
    from tympan.store import aliases, models, open_store, projects, runs
    from tympan.store.models import parse_ref
    from tympan.store.schema import blobs, model_versions

    store = open_store(args.store, create=True)
    now = time.time()
    t0 = time.perf_counter()
    sha = "0" * 64
    with store.write() as conn:
        project_id = projects.ensure(conn, "bench", now)
        runs.insert(conn, id="benchrun00", project_id=project_id, name="bench", status="finished",
                    created_at=now, started_at=now, heartbeat_at=now, config={}, tags=[],
                    note="", parent_id=None, study_id=None, host=None, pid=None, seed=None)
        conn.execute(blobs.insert().values(sha256=sha, size=1, created_at=now))
        for m in range(args.models):
            model = models.ensure(conn, f"model-{m:04d}", project_id, now, "bench", ["champion"])
            rows = [dict(model_id=model.id, version=v, run_id="benchrun00", artifact="model.pt",
                         sha256=sha, size=1, code_sha256=None, recipe={}, config={"m": m},
                         signature={}, lineage={}, parameters=1, parent_id=None,
                         study_id=None, description="", created_at=now + v,
                         created_by="bench") for v in range(1, args.versions + 1)]
            conn.execute(model_versions.insert(), rows)
            champion = models.version(conn, model.id, args.versions - 3)
            aliases.put(conn, model.id, "champion", champion.id, now)
    filled = time.perf_counter() - t0
    registry = LocalRegistry(store, local_user())
    rng = random.Random(0)
    out: dict[str, Any] = {"fill_s": filled}
    for label, template in (("alias", "models:/model-{:04d}@champion"),
                            ("number", "models:/model-{:04d}/17"),
                            ("latest", "models:/model-{:04d}")):
        refs = [parse_ref(template.format(rng.randrange(args.models))) for _ in range(200)]
        registry.version(refs[0])
        t0 = time.perf_counter()
        for ref in refs:
            registry.version(ref)
        out[label] = (time.perf_counter() - t0) / len(refs) * 1e3
    # The same through the public function (store lookup from the location included).
    refs = [f"models:/model-{rng.randrange(args.models):04d}@champion" for _ in range(100)]
    tympan.models.get(refs[0], store=args.store)
    t0 = time.perf_counter()
    for ref in refs:
        tympan.models.get(ref, store=args.store)
    out["public"] = (time.perf_counter() - t0) / len(refs) * 1e3
    store.close()
    return out


# -- the parent -----------------------------------------------------------------------------

def spawn(python: str, extra: list[str], env: dict[str, str], timeout: float
          ) -> dict[str, Any]:
    proc = subprocess.run([python, str(Path(__file__).resolve()), *extra], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-3:]
    return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}


@contextmanager
def postgres_database():
    """A fresh PostgreSQL database's URL, dropped afterwards; None without a server."""
    try:
        from tests.conftest import _pg_available, fresh_pg_database
    except ImportError:
        yield None
        return
    if _pg_available() is not None:
        yield None
        return
    with fresh_pg_database("tympan_bench") as url:
        yield url


@contextmanager
def s3_root():
    try:
        from tests.s3_fixtures import s3_server
        with s3_server() as env:
            yield env
    except Exception as exc:  # moto or s3fs missing: the S3 figures are skipped, with why
        print(f"S3 skipped: {exc}", file=sys.stderr)
        yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 200 models")
    parser.add_argument("--worker", choices=["tympan", "mlflow", "resolution"])
    parser.add_argument("--model", default="asr-conv")
    parser.add_argument("--store")
    parser.add_argument("--corpus")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=20)
    args = parser.parse_args()
    if args.worker:
        work = {"tympan": tympan_worker, "mlflow": mlflow_worker,
                "resolution": resolution_worker}[args.worker]
        print(MARK + json.dumps(work(args)), flush=True)
        return
    if args.quick:
        args.repeats, args.models = 3, 200
    run_all(args)


def run_all(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from tympan.audio.corpus import synth_corpus

    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="tympan-registry-bench-"))
    corpus = str(tmp / "corpus")
    synth_corpus(corpus, voices=6, utterances_per_speaker=10, progress=False)
    mlflow_python = str(ROOT / ".venv-bench" / "bin" / "python")
    common = ["--repeats", str(args.repeats), "--corpus", corpus]
    results: dict[str, dict[str, Any]] = {}
    with postgres_database() as pg, s3_root() as s3:
        backends = {"tympan sqlite": (str(tmp / "{model}-sqlite"), {}),
                    "tympan postgresql": (pg, {}) if pg else None,
                    "tympan s3 root": (str(tmp / "{model}-s3"),
                                       {**s3, "TYMPAN_ARTIFACTS": "s3://tympan/{model}"})
                    if s3 else None}
        for model in MODELS:
            for label, spec in backends.items():
                if spec is None:
                    results[f"{model} {label}"] = {"error": "not available here"}
                    continue
                where, env = spec
                if label == "tympan postgresql":
                    where = where if model == "asr-conv" else None
                if where is None:
                    continue
                env = {k: v.format(model=model) for k, v in env.items()}
                console.print(f"{model}: {label}")
                results[f"{model} {label}"] = spawn(sys.executable, [
                    "--worker", "tympan", "--model", model, "--store", where.format(model=model),
                    *common], env, 900)
            if Path(mlflow_python).exists():
                console.print(f"{model}: mlflow")
                folder = tmp / f"{model}-mlflow"
                folder.mkdir()
                results[f"{model} mlflow"] = spawn(mlflow_python, [
                    "--worker", "mlflow", "--model", model, "--store", str(folder), *common],
                    {"MLFLOW_ENABLE_ASYNC_LOGGING": "false",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}, 900)
            else:
                results[f"{model} mlflow"] = {"error": "no .venv-bench (benchmarks/setup-bench.sh)"}
        size = ["--models", str(args.models), "--versions", str(args.versions)]
        resolution = {"sqlite": spawn(sys.executable, ["--worker", "resolution", "--store",
                                                       str(tmp / "resolve"), *size], {}, 900)}
    with postgres_database() as pg:
        if pg:
            resolution["postgresql"] = spawn(sys.executable, ["--worker", "resolution",
                                                              "--store", pg, *size], {}, 900)
    table = Table(title=f"register and load, ms (median of {args.repeats})",
                  title_justify="left")
    for column in ("model", "tool / backend", "register", "load (warm)", "load (cold process)",
                   "vs MLflow (register / load / cold)"):
        table.add_column(column, justify="left" if column in ("model", "tool / backend")
                         else "right")
    for model in MODELS:
        peer = results.get(f"{model} mlflow", {})
        for key, r in results.items():
            if not key.startswith(model + " "):
                continue
            who = key[len(model) + 1:]
            if "error" in r:
                table.add_row(model, who, "-", "-", "-", r["error"][:60])
                continue
            ratio = ""
            if who != "mlflow" and "error" not in peer:
                ratio = " / ".join(f"{peer[f] / r[f]:.1f}x" for f in
                                   ("register", "load", "load-cold"))
            table.add_row(model, who + (f" {r['version']}" if "version" in r else ""),
                          f"{r['register']:.0f}", f"{r['load']:.1f}", f"{r['load-cold']:.0f}",
                          ratio)
    console.print(table)
    res = Table(title=f"models:/ resolution, {args.models:,} models x {args.versions} versions, "
                      "ms per lookup (mean of 200 random models)", title_justify="left")
    for column in ("backend", "@alias", "/version", "latest", "tympan.models.get", "fill (s)"):
        res.add_column(column, justify="right" if column != "backend" else "left")
    for backend, r in resolution.items():
        if "error" in r:
            res.add_row(backend, r["error"][:80], "", "", "", "")
            continue
        res.add_row(backend, f"{r['alias']:.2f}", f"{r['number']:.2f}", f"{r['latest']:.2f}",
                    f"{r['public']:.2f}", f"{r['fill_s']:.1f}")
    console.print(res)
    out = HERE / ".out"
    out.mkdir(exist_ok=True)
    (out / "registry.json").write_text(json.dumps({"register_load": results,
                                                  "resolution": resolution}, indent=2))


if __name__ == "__main__":
    main()
