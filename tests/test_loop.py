"""Continuous training end to end with the real asr_ctc recipe, on SQLite and PostgreSQL
(docs/loop.md).

The champion is an untrained model; the gold set is a small synthesized corpus. The first
batch of new data holds the gold clips themselves (so a few seconds of training lower the gold
CER for certain: the effect is large, the test is quick); the second holds the same clips
with each transcript moved to another clip: trained on those contradictions, the challenger
shows no improvement the gate can trust. The first loop
process is killed with SIGKILL once it has trained its first seed: the next one resumes from
that training and promotes once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.registry_fixtures import REPO, asr_run, tiny_corpus

import tympan
import tympan.models as models
from tympan.errors import InvalidInputError
from tympan.loop.history import iterations, pending
from tympan.loop.iteration import run_iteration
from tympan.loop.spec import load_pipeline
from tympan.loop.watch import watch

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

PIPELINE = """\
name: digits
model: models:/asr-digits
data: data
gold: gold/manifest.jsonl
recipe: {recipe}
overrides: {{epochs: 10, hidden: 64, batch_size: 4, warmup_steps: 5, lr: 0.005, n_boot: 200,
            audio_samples: 0}}
seeds: 2
gate: {{metric: cer, rule: improve, confidence: 0.9, n_boot: 1000}}
"""


def _batch(path: Path, gold: Path, shift_texts: bool) -> None:
    rows = [json.loads(line) for line in (gold / "manifest.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in rows]
    if shift_texts:
        texts = texts[1:] + texts[:1]
    path.write_text("".join(json.dumps({**r, "path": str(gold / r["path"]), "text": t}) + "\n"
                            for r, t in zip(rows, texts, strict=True)))


def loop_lab(store: str, where: Path, factory: pytest.TempPathFactory, extra: str = "") -> Path:
    """Under ``where``: a gold set (gold/), asr-digits version 1 as @champion (an untrained
    recipe model), an empty data folder and the pipeline file (PIPELINE, then ``extra``);
    returns the pipeline file's path."""
    from tympan.audio.corpus import synth_corpus

    synth_corpus(where / "gold", voices=3, utterances_per_speaker=4, seed=7, progress=False)
    champion = asr_run(store, tiny_corpus(factory), extra_train=None)
    models.register(champion.id, "asr-digits", recipe=str(REPO / "recipes/asr_ctc"),
                    store=store)
    models.set_alias("asr-digits@champion", 1, admin=True, reason="start", store=store)
    (where / "data").mkdir()
    path = where / "loop.yaml"
    path.write_text(PIPELINE.format(recipe=REPO / "recipes/asr_ctc") + extra)
    return path


def _trainings(store: str) -> list:
    return [r for r in tympan.find_runs(store, project="asr-ctc", status="finished")
            if r.config.get("extra_train")]


def test_loop_promotes_a_better_challenger_once_and_rejects_a_worse_one(
        store_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    store = store_url
    path = loop_lab(store, tmp_path, tmp_path_factory)
    gold = tmp_path / "gold"
    pipeline = load_pipeline(path)
    assert run_iteration(pipeline, store=store).status == "idle"

    _batch(tmp_path / "data" / "batch1.jsonl", gold, shift_texts=False)
    assert [Path(p).name for p in pending(pipeline, store)] == ["batch1.jsonl"]
    env = {**os.environ, "TYMPAN_STORE": store}
    first = subprocess.Popen([sys.executable, "-m", "tympan", "loop", "run", str(path)],
                             env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not _trainings(store) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.stdout.read().decode()
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    kept = _trainings(store)
    assert len(kept) == 1

    done = subprocess.run([sys.executable, "-m", "tympan", "loop", "run", str(path)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"reusing finished run {kept[0].id}" in done.stdout
    assert "promoted" in done.stdout
    assert len(_trainings(store)) == 2
    assert models.get("asr-digits@champion", store=store).version == 2
    again = run_iteration(pipeline, store=store)  # nothing new: no second promotion
    assert again.status == "idle"
    moves = [e for e in models.history("asr-digits@champion", store=store)
             if e.to_version == 2]
    assert len(moves) == 1 and moves[0].evidence["kind"] == "gate"

    _batch(tmp_path / "data" / "batch2.jsonl", gold, shift_texts=True)
    naps: list[float] = []
    ran = watch(pipeline, store=store, interval=0.05, debounce=0.3, max_iterations=1,
                sleep=lambda s: (naps.append(s), time.sleep(s)))
    assert len(ran) == 1 and len(naps) >= 2  # debounced: polled again before it ran
    rejected = ran[0]
    assert rejected.status == "rejected"
    assert "must be below" in rejected.report["summary"]
    assert models.get("asr-digits@champion", store=store).version == 2
    assert len(models.versions("asr-digits", store=store)) == 2
    history = iterations(pipeline, store)
    assert [(i["passed"], i["champion"]) for i in history] == [(True, 1), (False, 2)]
    assert history[0]["high"] < 0 <= history[1]["high"]
    assert pending(pipeline, store) == []

    status = subprocess.run([sys.executable, "-m", "tympan", "loop", "status", str(path)],
                            env=env, capture_output=True, text=True, check=False)
    assert "promoted version 2" in status.stdout and "rejected" in status.stdout


def test_pipeline_file_refuses_unknown_keys_naming_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nmodel: m\ndata: d\ngold: g.jsonl\ngate: {metrc: cer}\n")
    with pytest.raises(InvalidInputError, match=r"gate.metrc: unknown key \(valid keys: "
                                                r"metric, rule"):
        load_pipeline(path)
    path.write_text("name: x\nmodel: m\ndata: d\ngold: g.jsonl\nseeds: 1\n")
    with pytest.raises(InvalidInputError, match="at least 2 seeds"):
        load_pipeline(path)
