"""Learning-curve studies end to end: the study file, nested subsets of a real synthesized
corpus, trials run by the study runner, ``tympan quantify`` with its plot and report, and the
study's data size in the findings.

The trial script trains nothing (a real recipe takes minutes here; benchmarks/learning_curves.py
runs them): it takes the nested subset the recipe would, logs its real size in hours, and
scores each test utterance with errors drawn from a known power law of that size, so the
test knows the answer quantify must find.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from test_cli import assert_one_line_error, tympan_cli
from tympan.audio.corpus import nested_subset, synth_corpus
from tympan.errors import InvalidInputError, StudyError, StudyFileError
from tympan.store import open_store
from tympan.study.curves_report import write_quantification
from tympan.study.plan import plan
from tympan.study.quantify import parse_target, quantify
from tympan.study.records import load_stored_study
from tympan.study.runner import register, run_study
from tympan.study.spec import load_study

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

TRIAL = """\
import json, random, sys
import tympan
from tympan.audio.corpus import load_corpus, nested_subset

args = dict(a.split("=", 1) for a in sys.argv[1:])
corpus = load_corpus(args["corpus"])
train = nested_subset(corpus.split("train"), float(args["train_fraction"]))
seed = int(args["seed"])
rate = 0.04 + 0.5 * (len(train) / 4) ** -0.6          # the true curve, in utterances
rng = random.Random(seed * 1000 + len(train))
rate = min(max(rate + rng.gauss(0, 0.01), 0.0), 1.0)   # seeds differ
ids = [f"test/{i}" for i in range(60)]
counts = [4] * len(ids)
errors = [sum(rng.random() < rate for _ in range(4)) for _ in ids]
hours = sum(u.duration for u in train) / 3600
with tympan.init(project="lc", config=args) as run:
    # Like the speaker recipe, whose held-out utterances are drawn per seed: each seed of a
    # fraction trains on slightly different hours.
    run.log({"data/train_hours": hours * (1 + 0.03 * seed),
             "data/train_utterances": len(train),
             "test/wer": sum(errors) / sum(counts)})
    run.log_artifact(json.dumps([u.path for u in train]).encode(), name="train_set.json")
    run.log_artifact(json.dumps({"ids": ids, "wer": {"errors": errors, "counts": counts}})
                     .encode(), name="test/utterances.json")
"""

STUDY = """\
name: digits_curve
project: lc
command: python trial.py
overrides: {{corpus: {corpus}}}
design: learning_curve
data_size: {{key: train_fraction, fractions: [1/8, 1/4, 1/2, 1], measure: data/train_utterances}}
seeds: 2
metrics:
  - {{name: wer, split: test, direction: lower}}
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lc") / "corpus"
    synth_corpus(root, voices=6, utterances_per_speaker=8, progress=False)  # 32 to train
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("lc-study")
    (folder / "trial.py").write_text(TRIAL)
    path = folder / "curve.yaml"
    path.write_text(STUDY.format(corpus=corpus))
    store = str(folder / "store")
    stored = run_study(load_study(path), store=store, workers=2)
    assert [t.status for t in stored.current_trials()] == ["finished"] * 8, \
        [t.error for t in stored.current_trials()]
    return path, store


def test_seeds_that_trained_on_different_hours_share_their_fraction_s_size(
        corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "trial.py").write_text(TRIAL)
    path = tmp_path / "hours.yaml"
    path.write_text(STUDY.format(corpus=corpus).replace("name: digits_curve", "name: hours")
                    .replace("[1/8, 1/4, 1/2, 1], measure: data/train_utterances",
                             "[1/4, 1/2, 1], measure: data/train_hours"))
    stored = run_study(load_study(path), store=str(tmp_path / "store"), workers=2)
    assert [t.status for t in stored.current_trials()] == ["finished"] * 6
    store = open_store(str(tmp_path / "store"))
    recorded: dict[float, list[float]] = {}
    for t in stored.current_trials():
        run = stored.runs[t.run_id]
        recorded.setdefault(float(t.levels["data_size"]), []).append(
            run.summary["data/train_hours"].last)
    assert all(len(set(hours)) == 2 for hours in recorded.values())  # seeds differ

    result = quantify(store, "hours")
    assert result.unit == "h"
    assert list(result.data.seeds) == [2, 2, 2]  # one size per fraction, both seeds in it
    assert result.data.sizes == pytest.approx([np.mean(recorded[f]) for f in sorted(recorded)])
    assert {p.size for p in result.points} == set(result.data.sizes)


def test_nested_subsets_hold_every_smaller_one(corpus: Path) -> None:
    from tympan.audio.corpus import load_corpus

    train = load_corpus(corpus).split("train")
    sets = [{u.path for u in nested_subset(train, f)} for f in (1 / 8, 1 / 4, 1 / 2, 1)]
    assert [len(s) for s in sets] == [4, 8, 16, 32]
    assert all(small < large for small, large in itertools.pairwise(sets))
    assert {u.path for u in nested_subset(list(reversed(train)), 1 / 4)} == sets[1]  # by path
    with pytest.raises(InvalidInputError, match="fraction"):
        nested_subset(train, 0)


def test_a_learning_curve_study_file_plans_every_size_on_every_seed(tmp_path: Path) -> None:
    path = tmp_path / "lc.yaml"
    path.write_text(STUDY.format(corpus="/c").replace("seeds: 2", "seeds: 2\n"
                                                       "steps: {key: epochs, values: [5, 10]}"))
    study = load_study(path)
    assert study.spec.factors["data_size"].baseline_name == "1.0"
    trials = plan(study)
    assert len(trials) == 4 * 2 * 2
    assert {t.seed for t in trials} == {0, 1}
    assert "train_fraction=0.125" in trials[-1].overrides or any(
        "train_fraction=0.125" in t.overrides for t in trials)
    assert {t.levels["steps"] for t in trials} == {"5", "10"}
    for body, message in [
        (STUDY.format(corpus="/c") + "factors: {enc: {levels: [a, b], baseline: a}}\n",
         "takes no factors"),
        (STUDY.format(corpus="/c").replace("[1/8, 1/4, 1/2, 1]", "[1/2, 1]"),
         "at least 3 data sizes"),
        (STUDY.format(corpus="/c").replace("[1/8, 1/4, 1/2, 1]", "[1/8, 1/4, 2]"),
         "fractions of the corpus are in (0, 1]"),
        (STUDY.format(corpus="/c").replace("design: learning_curve", "design: full"),
         "belong to design: learning_curve"),
    ]:
        path.write_text(body)
        with pytest.raises(StudyFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_study(path)


def test_quantify_finds_the_known_answer_and_draws_it(study: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    _, where = study
    store = open_store(where)
    # The trials' train sets are nested, as the recipe's are.
    stored = load_stored_study(store, "digits_curve")
    by_fraction: dict[float, set[str]] = {}
    for t in stored.current_trials():
        run = stored.runs[t.run_id]
        by_fraction[float(t.levels["data_size"])] = set(json.loads(
            run.read_artifact("train_set.json")))
    stored_sets = [by_fraction[f] for f in sorted(by_fraction)]
    assert all(a < b for a, b in itertools.pairwise(stored_sets))

    # True curve: 0.04 + 0.5 (n / 4) ** -0.6 reaches 0.08 at n = 4 * 12.5 ** (1 / 0.6) = 268.
    # The default average over shapes cannot rule out that 4 to 32 utterances are already
    # levelling off: its interval holds the truth, and it says how much to collect first.
    averaged = quantify(store, "digits_curve", target=0.08, max_extrapolation=30)
    assert averaged.answer is not None and averaged.answer.low <= 268 <= averaged.answer.high
    assert averaged.answer.verdict in ("estimate", "beyond")
    assert 32 < averaged.answer.next_round <= 268
    assert "utterances more (" in averaged.sentence and "in all) and estimate again" in \
        averaged.sentence
    # One weighted power law (the true shape here) answers with an estimate.
    result = quantify(store, "digits_curve", target=0.08, max_extrapolation=30,
                      method="weighted")
    answer = result.answer
    assert result.unit == "utterances" and answer is not None
    assert answer.verdict == "estimate" and answer.extrapolated
    assert answer.low <= 268 <= answer.high
    assert "utterances of training data (80% interval" in result.sentence
    assert "you have 32 utterances" in result.sentence
    assert result.data.variances.min() > 0  # seeds and resampled utterances both counted

    assert quantify(store, "digits_curve", target=0.5).answer.verdict == "reached"
    # 4 to 32 utterances cannot tell an irreducible 4% from 0%: not an answer either way.
    low = quantify(store, "digits_curve", target=0.01)
    assert low.answer.verdict in ("unreachable", "beyond") and "reach" not in low.sentence[:9]
    assert quantify(store, "digits_curve", target=0.08,
                    max_extrapolation=5).answer.verdict == "beyond"  # 268 > 5 x 32

    paths = write_quantification(result, tmp_path / "q")
    assert Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = Path(paths["html"]).read_text()
    assert "<svg" in html and result.sentence in html
    data = json.loads(Path(paths["json"]).read_text())
    assert data["answer"]["verdict"] == "estimate" and len(data["points"]) == 8


def test_quantify_on_the_command_line_and_its_errors(study: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    _, where = study
    out = tmp_path / "report"
    result = tympan_cli("--store", where, "quantify", "digits_curve", "--target",
                        "test/wer=8%", "--max-extrapolation", "30", "--out", str(out))
    assert result.code == 0, result
    assert "test/wer ≤ 0.08" in result.stdout and (out / "curve.png").is_file()
    assert "and estimate again" in result.stdout
    assert_one_line_error(tympan_cli("--store", where, "quantify", "digits_curve", "--target",
                                     "test/cer=0.1"), "judges test/wer, not test/cer")
    assert_one_line_error(tympan_cli("--store", where, "quantify", "digits_curve", "--target",
                                     "wer"), "write METRIC=VALUE")
    with pytest.raises(InvalidInputError, match="not a number"):
        parse_target("test/wer=low")


def test_data_size_is_a_component_in_the_report_and_findings(study: tuple[Path, str],
                                                             tmp_path: Path) -> None:
    _, where = study
    result = tympan_cli("--store", where, "report", "digits_curve", "--out", str(tmp_path))
    assert result.code == 0, result
    assert "data_size=0.125" in result.stdout
    findings = tympan_cli("--store", where, "findings")
    assert findings.code == 0 and "data_size" in findings.stdout, findings


def test_quantify_refuses_other_studies(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""\
        name: plain
        command: python train.py
        factors: {enc: {levels: [a, b], baseline: a}}
        seeds: 2
        metrics: [{name: wer, split: test, direction: lower}]
    """))
    store = open_store(str(tmp_path / "store"), create=True)
    register(store, load_study(tmp_path / "s.yaml"))
    with pytest.raises(StudyError, match="reads learning-curve studies"):
        quantify(store, "plain", target=0.1)
