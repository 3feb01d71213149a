"""The model registry on a local store (SQLite and PostgreSQL): register, aliases with their
append-only history, protected aliases, loading by URI, and the schema migration."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import text
from tests.registry_fixtures import REPO, asr_run, tiny_corpus
from tests.test_cli import assert_one_line_error, tympan_cli

import tympan
from tympan.errors import (
    InvalidInputError,
    ModelNotFoundError,
    ProtectedAliasError,
    RunNotFoundError,
    StudyNotFoundError,
)
from tympan.registry.gate import GATE_REPORT, gate_report
from tympan.track.stores import close_stores

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

RECIPE = "recipes/asr_ctc"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    return tiny_corpus(tmp_path_factory)


def test_register_records_lineage_signature_and_loads_in_eval_mode(store_url, corpus) -> None:
    run = asr_run(store_url, corpus, wer=0.2)
    first = tympan.models.register(run.id, "asr-digits", recipe=RECIPE, store=store_url,
                                   description="tiny conv")
    second = tympan.models.register(run.id, "asr-digits", recipe=RECIPE, store=store_url,
                                    parent="asr-digits/1")
    assert (first.version, second.version) == (1, 2)
    assert first.uri == "models:/asr-digits/1" and second.parent == "models:/asr-digits/1"
    assert first.project == "asr-ctc" and first.run_id == run.id
    assert first.sha256 == second.sha256  # the same weights are one blob
    stored = {a.path: a for a in tympan.load_run(run.id, store=store_url).artifacts()}
    assert first.sha256 == stored["model.pt"].sha256 and first.size == stored["model.pt"].size
    assert first.recipe["module"] == "recipes.asr_ctc.train" and first.code_sha256
    assert "recipes/asr_ctc/train.py" in first.recipe["files"]
    assert first.config["hidden"] == 32 and first.description == "tiny conv"
    signature = first.signature
    assert signature["audio"]["sample_rate"] == 16000 and signature["audio"]["channels"] == 1
    assert signature["front_end"]["front_end"] == "logmel"
    assert signature["inputs"] == [{"dtype": "float32", "shape": ["batch", "time", 40]},
                                   {"dtype": "int64", "shape": ["batch"]}]
    assert signature["outputs"][0]["shape"] == ["batch", "time", 17]
    [manifest] = first.lineage["data"]
    assert manifest["path"].endswith("manifest.jsonl") and len(manifest["sha256"]) == 64
    assert manifest["splits"]["train"]["utterances"] == 3
    assert manifest["splits"]["test"]["languages"] == ["en"]
    assert first.lineage["run"]["id"] == run.id and "commit" in first.lineage["git"]

    loaded = tympan.models.load("models:/asr-digits/2", store=store_url)
    model, preprocess = loaded
    assert loaded.version.version == 2 and not model.training
    n_params = sum(p.numel() for p in model.parameters())
    assert first.parameters == n_params
    waves = [np.zeros(8000, np.float32), 0.1 * np.ones(12000, np.float32)]
    x, lengths = preprocess(waves)
    assert x.shape[0] == 2 and x.shape[2] == 40 and lengths.tolist()[0] < lengths.tolist()[1]
    answers = loaded.predict(waves)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    # Each utterance is cut to its length before its features are normalized.
    alone, _ = preprocess(waves[:1])
    assert np.allclose(alone[0].numpy(), x[0, :len(alone[0])].numpy())

    assert tympan.models.get("asr-digits", store=store_url).version == 2  # latest
    assert [v.version for v in tympan.models.versions("asr-digits", store=store_url)] == [2, 1]


def test_aliases_keep_an_append_only_history(store_url, corpus) -> None:
    run = asr_run(store_url, corpus)
    for _ in range(3):
        tympan.models.register(run.id, "kws", recipe=RECIPE, store=store_url)
    models = tympan.models
    models.set_alias("kws@staging", 1, reason="first try", store=store_url)
    t1 = time.time()
    time.sleep(0.02)
    models.set_alias("kws@staging", 3, reason="better", evidence=f"run:{run.id}",
                     store=store_url)
    t2 = time.time()
    time.sleep(0.02)
    models.delete_alias("kws@staging", reason="retired", store=store_url)
    events = models.history("kws@staging", store=store_url)
    assert [(e.action, e.from_version, e.to_version) for e in events] == [
        ("set", None, 1), ("move", 1, 3), ("delete", 3, None)]
    assert events[1].evidence == {"kind": "run", "id": run.id, "name": run.name,
                                  "project": "asr-ctc"}
    assert all(e.actor.startswith("user:") and e.authority == "write" for e in events)
    assert models.alias_at("kws@staging", t1, store=store_url)[0] == 1
    assert models.alias_at("kws@staging", t2, store=store_url)[0] == 3
    assert models.alias_at("kws@staging", time.time(), store=store_url)[0] is None
    assert models.alias_at("kws@staging", events[0].at - 1, store=store_url) == (None, None)
    with pytest.raises(ModelNotFoundError, match="is not set"):
        models.delete_alias("kws@staging", store=store_url)
    models.set_alias("kws@canary", 2, store=store_url)
    with pytest.raises(InvalidInputError, match="already names version 2"):
        models.set_alias("kws@canary", 2, store=store_url)
    with pytest.raises(ModelNotFoundError, match="has no alias 'nope' \\(its aliases: canary\\)"):
        models.load("models:/kws@nope", store=store_url)
    with pytest.raises(ModelNotFoundError, match="no version 9 \\(it has versions 1 to 3\\)"):
        models.get("kws/9", store=store_url)
    with pytest.raises(StudyNotFoundError):
        models.set_alias("kws@canary", 1, evidence="study:none-such", store=store_url)
    assert [e.alias for e in models.history("kws", store=store_url)][-1] == "canary"

    # The history cannot be rewritten, even with SQL.
    from tympan.track.stores import shared_store

    store = shared_store(store_url)
    for statement in ("UPDATE alias_events SET reason = 'edited'", "DELETE FROM alias_events"):
        with pytest.raises(Exception, match="append-only"), store.write() as conn:
            conn.execute(text(statement))
    assert len(models.history("kws", store=store_url)) == 4


def test_protected_alias_moves_only_with_admin_or_a_passed_gate(store_url, corpus) -> None:
    run = asr_run(store_url, corpus)
    models = tympan.models
    for _ in range(3):
        models.register(run.id, "asr", recipe=RECIPE, store=store_url)
    assert models.get_model("asr", store=store_url).protected == ["champion"]
    with pytest.raises(ProtectedAliasError, match="protected: it moves only with admin"):
        models.set_alias("asr@champion", 1, reason="looks good", store=store_url)
    with pytest.raises(ProtectedAliasError, match="say why"):
        models.set_alias("asr@champion", 1, admin=True, store=store_url)
    first = models.set_alias("asr@champion", 1, reason="baseline", admin=True, store=store_url)
    assert first.authority == "admin"

    def gate(passed: bool, challenger: int) -> str:
        with tympan.init(project="asr-ctc", name="gate", store=store_url) as gate_run:
            gate_run.log_artifact(gate_report(model="asr", challenger=challenger, champion=1,
                                              passed=passed, summary="WER -2 points"),
                                  name=GATE_REPORT)
        return gate_run.id

    failed = gate(False, 2)
    with pytest.raises(ProtectedAliasError, match="did not pass"):
        models.set_alias("asr@champion", 2, reason="gate", evidence=f"gate:{failed}",
                         store=store_url)
    other = gate(True, 3)  # passed, but for version 3
    with pytest.raises(ProtectedAliasError, match="version 3, not 'asr' version 2"):
        models.set_alias("asr@champion", 2, reason="gate", evidence=f"gate:{other}",
                         store=store_url)
    with pytest.raises(ProtectedAliasError, match="not a gate"):
        models.set_alias("asr@champion", 2, reason="gate", evidence=f"gate:{run.id}",
                         store=store_url)
    moved = models.set_alias("asr@champion", 3, reason="gate passed", evidence=f"gate:{other}",
                             store=store_url)
    assert (moved.authority, moved.from_version, moved.evidence["kind"]) == ("gate", 1, "gate")
    with pytest.raises(InvalidInputError, match="not for deleting"):  # a gate never deletes
        models.delete_alias("asr@champion", reason="x", evidence=f"gate:{other}",
                            store=store_url)
    with pytest.raises(ProtectedAliasError, match="admin"):
        models.delete_alias("asr@champion", reason="x", store=store_url)
    models.protect("asr", "champion", protected=False, reason="experiment", store=store_url)
    assert models.set_alias("asr@champion", 2, store=store_url).authority == "write"
    actions = [e.action for e in models.history("asr@champion", store=store_url)]
    assert actions == ["set", "move", "unprotect", "move"]


def test_model_uris_work_wherever_a_run_is_taken(tmp_path, corpus) -> None:
    store = str(tmp_path / "store")
    run = asr_run(store, corpus)
    tympan.models.register(run.id, "asr-digits", recipe=RECIPE, store=store)
    tympan.models.set_alias("asr-digits@staging", 1, store=store)
    assert tympan.load_run("models:/asr-digits@staging", store=store).id == run.id
    shown = tympan_cli("--store", store, "show", "models:/asr-digits/1")
    assert shown.code == 0 and run.id in shown.stdout
    missing = tympan_cli("--store", store, "show", "models:/asr-digits@champion")
    assert_one_line_error(missing, "has no alias 'champion'")
    with pytest.raises(RunNotFoundError):
        tympan.load_run("asr-digits@staging", store=store)  # without models:/ it is a run name


def test_cli_register_alias_history(tmp_path, corpus) -> None:
    store = str(tmp_path / "store")
    run = asr_run(store, corpus)

    def cli(*args: str):
        return tympan_cli("--store", store, "model", *args)

    done = cli("register", run.id, "--name", "asr-digits", "--recipe", RECIPE, "--json")
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["uri"] == "models:/asr-digits/1"
    assert_one_line_error(cli("register", run.id, "--name", "x", "--recipe", RECIPE,
                              "--artifact", "best.pt"), "has no artifact 'best.pt'")
    assert_one_line_error(cli("register", run.id, "--name", "bad name!", "--recipe", RECIPE),
                          "model name 'bad name!' is not valid")
    assert_one_line_error(cli("alias", "asr-digits@champion", "1", "--reason", "x"),
                          "is protected")
    moved = cli("alias", "asr-digits@champion", "1", "--reason", "first", "--admin")
    assert moved.code == 0 and "set to version 1" in moved.stdout
    assert_one_line_error(cli("alias", "asr-digits@champion"), "either a VERSION or --delete")
    listed = cli("list", "--json")
    assert json.loads(listed.stdout)[0]["aliases"] == {"champion": 1}
    at = cli("history", "asr-digits@champion", "--at", "2000-01-01 00:00")
    assert at.code == 0 and "named no version" in at.stdout
    now = cli("history", "asr-digits@champion", "--at",
              time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 5)))
    assert "was version 1" in now.stdout and "first" in now.stdout
    assert_one_line_error(cli("history", "asr-digits@champion", "--at", "yesterday"),
                          "is not ISO 8601")
    shown = cli("show", "asr-digits")
    assert shown.code == 0 and "champion" in shown.stdout


def test_register_from_a_live_run_and_concurrent_numbering(store_url, corpus) -> None:
    run = asr_run(store_url, corpus, finish=False)
    version = run.register_model("live", recipe=RECIPE)  # flushes the checkpoint first
    run.finish()
    assert version.version == 1 and version.lineage["run"]["status"] == "running"
    numbers: list[int] = []

    def register() -> None:
        numbers.append(tympan.models.register(run.id, "live", recipe=RECIPE,
                                              store=store_url).version)

    threads = [threading.Thread(target=register) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [2, 3, 4]


def test_another_projects_run_cannot_join_a_model(tmp_path, corpus) -> None:
    store = str(tmp_path / "store")
    tympan.models.register(asr_run(store, corpus).id, "asr", recipe=RECIPE, store=store)
    other = asr_run(store, corpus, project="elsewhere")
    with pytest.raises(InvalidInputError, match="belongs to project 'asr-ctc'"):
        tympan.models.register(other.id, "asr", recipe=RECIPE, store=store)


def test_a_version_loads_where_its_recipe_is_not_installed(tmp_path, corpus) -> None:
    """From another folder, with no recipes package: the code snapshot rebuilds it."""
    store = str(tmp_path / "store")
    tympan.models.register(asr_run(store, corpus).id, "asr", recipe=RECIPE, store=store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The recipes ship with tympan now: hide them, as on a machine with a recipe of one's own.
    code = ("import importlib.abc, json, numpy as np, sys\n"
            "class Hide(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'recipes':\n"
            "            raise ModuleNotFoundError(name, name=name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "import tympan; "
            "assert 'recipes' not in sys.modules; "
            f"m = tympan.models.load('models:/asr/1', store={store!r}); "
            "print(json.dumps({'module': type(m.model).__module__, "
            "'training': m.model.training, 'answer': m.predict([np.zeros(4000, 'float32')])}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                       "TYMPAN_CAPTURE_ENV": "0"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["module"].startswith("_tympan_model_code_") and not result["training"]
    assert isinstance(result["answer"][0], str)
    assert (REPO / "recipes").is_dir()  # (it exists, but not on that process's path)


def test_a_0003_store_upgrades_to_0004_with_nothing_lost(store_url, corpus) -> None:
    from alembic import command
    from alembic.config import Config

    from tympan.store import open_store, upgrade_store, versioning

    run = asr_run(store_url, corpus)
    close_stores()
    store = open_store(store_url)
    with store.engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(versioning.MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    store.close()
    assert upgrade_store(store_url)[:2] == ("0003", versioning.HEAD)
    record = tympan.load_run(run.id, store=store_url)
    assert record.summary["test/wer"].last == 0.2
    assert [a.path for a in record.artifacts()] == ["model.pt"]
    version = tympan.models.register(run.id, "after-upgrade", recipe=RECIPE, store=store_url)
    assert version.version == 1


def test_the_card_is_generated_from_the_store(tmp_path, corpus) -> None:
    """Metrics with intervals, data, applicable findings, reports and alias history."""
    from tympan.store import findings as finding_records
    from tympan.store import projects, studies
    from tympan.track.stores import shared_store

    store = str(tmp_path / "store")
    run = asr_run(store, corpus, wer=0.3)
    tympan.models.register(run.id, "asr", recipe=RECIPE, store=store)
    tympan.models.set_alias("asr@champion", 1, reason="only one", admin=True, store=store)
    tympan.models.add_report("asr/1", "export", "onnx", {"status": "ok", "max_abs_error": 2e-6},
                             run=run.id, store=store)
    with pytest.raises(InvalidInputError, match="unknown report kind"):
        tympan.models.add_report("asr/1", "vibes", "x", {}, store=store)
    now = time.time()
    with shared_store(store).write() as conn:  # one analysed study: conv beat gru here
        project_id = projects.ensure(conn, "asr-ctc", now)
        studies.insert(conn, id="s1", project_id=project_id, name="enc-study", spec={},
                       spec_hash="0" * 64, source="", created_at=now, updated_at=now)
        row = {"kind": "main", "component": "encoder", "level": "gru", "baseline": "conv",
               "metric": "test/wer", "direction": "lower", "effect": 0.05, "low": 0.02,
               "high": 0.08, "p_value": 0.01, "p_adjusted": 0.01, "prob_improvement": 0.01,
               "n": 3, "verdict": "hurts", "context": {"recipe": RECIPE}, "created_at": now}
        finding_records.replace_for_study(conn, "s1", [row, {**row, "component": "schedule",
                                                             "level": "x", "baseline": "y"}])
    card = tympan.models.card("models:/asr@champion", store=store)
    wer = next(m for m in card["metrics"] if m["metric"] == "wer" and m["split"] == "test")
    assert wer["value"] == pytest.approx(0.3) and wer["low"] == pytest.approx(0.25)
    assert {m["split"] for m in card["metrics"]} == {"test", "valid"}  # not train/
    assert [f["component"] for f in card["findings"]] == ["encoder"]  # conv: the baseline
    assert card["findings"][0]["role"] == "uses the baseline"
    assert card["data"][0]["splits"]["train"]["utterances"] == 3
    assert card["probe"]["events"] == [] and card["alias_history"][0]["alias"] == "champion"
    markdown = card["markdown"]
    for fragment in ("# asr version 1", "| test | wer | 0.3 | [0.25, 0.35] |",
                     "| encoder | conv | gru | test/wer |", "export onnx: status ok",
                     "12,209 parameters", "| train | 3 |", "enc-study"):
        assert fragment in markdown, fragment
    written = tympan_cli("--store", store, "model", "card", "asr@champion", "--out",
                         str(tmp_path / "card.md"))
    assert written.code == 0 and (tmp_path / "card.md").read_text() == markdown


def test_the_speaker_recipe_registers_and_answers_speakers(tmp_path, corpus) -> None:
    """The speaker recipe's inference() hook: an embedding and the closest training speaker."""
    import io
    from dataclasses import asdict

    import torch
    from recipes.speaker_id.train import Config, XVector

    store = str(tmp_path / "store")
    cfg = Config(channels=16, embedding=8, corpus_dir=str(corpus), voices=3, per_speaker=3)
    speakers = ["spk000", "spk001"]
    model = XVector(cfg, dims=cfg.n_mels, n_speakers=len(speakers))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": asdict(cfg), "speakers": speakers},
               buffer)
    with tympan.init(project="speaker-id", config=asdict(cfg), store=store) as run:
        run.log_artifact(buffer.getvalue(), name="model.pt")
    version = tympan.models.register(run.id, "speakers", recipe="recipes/speaker_id",
                                     store=store)
    assert version.signature["outputs"] == [{"dtype": "float32", "shape": ["batch", 8]},
                                            {"dtype": "float32", "shape": ["batch", 2]}]
    answers = tympan.models.load("speakers/1", store=store).predict(
        [0.1 * np.ones(8000, np.float32), np.zeros(12000, np.float32)])
    assert [len(a["embedding"]) for a in answers] == [8, 8]
    assert all(a["speaker"] in speakers and 0 < a["probability"] <= 1 for a in answers)
