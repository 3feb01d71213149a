"""The gate's probe-drift rule (loop/drift_rule.py) on a real recipe model: the
challenger's profile is fitted on its training split and the gold utterances are scored
against it. In-domain gold speech passes; the same speech under heavy noise fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.registry_fixtures import REPO, asr_run

import tympan
from tympan.audio.io import load
from tympan.errors import InvalidInputError
from tympan.loop.drift_rule import probe_drift_check
from tympan.loop.spec import Gate, load_pipeline
from tympan.probe.sources import apply_shifts, parse_shift

RECIPE = str(REPO / "recipes/asr_ctc")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object, Path]:
    from tympan.audio.corpus import synth_corpus

    root = tmp_path_factory.mktemp("gate")
    corpus = root / "corpus"
    synth_corpus(corpus, voices=12, utterances_per_speaker=8, seed=3, progress=False)
    store = str(root / "store.db")
    run = asr_run(store, corpus, voices=12, per_speaker=8, corpus_seed=3)
    return store, tympan.load_run(run.id, store=store), corpus


def _gold(corpus: Path) -> tuple[list[str], list]:
    rows = [json.loads(line) for line in (corpus / "test.jsonl").read_text().splitlines()]
    return [r["path"] for r in rows], [load(corpus / r["path"], mono=True)[0] for r in rows]


RULE = Gate(probe_drift=0.5, probe_alpha=0.1, probe_calibration=0.4)


def test_probe_drift_passes_on_in_domain_gold_speech(trained) -> None:
    store, run, corpus = trained
    ids, waves = _gold(corpus)
    check = probe_drift_check(run, RECIPE, ids, waves, RULE, store)
    assert check["passed"], check
    assert check["flagged_fraction"] <= 0.5 and len(check["flagged"]) < len(ids) / 2
    profile = tympan.load_run(check["profile_run"], store=store)  # the evidence is stored
    assert "probe-fit" in profile.tags and profile.config["probe"]["model_run"] == run.id


def test_probe_drift_fails_when_the_gold_speech_drifts(trained) -> None:
    store, run, corpus = trained
    ids, waves = _gold(corpus)
    noisy = apply_shifts(waves, [parse_shift("white:-5")], 16000, 0)
    check = probe_drift_check(run, RECIPE, ids, noisy, RULE, store)
    assert not check["passed"], check
    assert check["flagged_fraction"] > 0.5 and check["max_flagged"] == 0.5


def test_a_probe_drift_limit_at_the_chance_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nmodel: m\ndata: d\ngold: g.jsonl\n"
                    "gate: {probe_drift: 0.05, probe_alpha: 0.05}\n")
    with pytest.raises(InvalidInputError, match="probe_drift 0.05 must be above probe_alpha"):
        load_pipeline(path)
