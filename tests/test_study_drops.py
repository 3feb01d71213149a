"""Seeds a comparison cannot use are said, not dropped silently (issue 11, item 14).

One real study of 5 seeds in which enc=b logs NaN for seed 0 and inf for seed 1, the
baseline never logs test/wer for seed 2, and the study file also asks for a misspelled
metric (test/werr) that no trial logs. The CLI, the report and the API all say which seeds
were dropped and why, show n per comparison, and warn about the metric nobody logged.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx
import pytest

from server_fixtures import live_server
from tympan.cli.app import main
from tympan.store import open_store
from tympan.study.analysis import Dropped, StudyAnalysis, analyse
from tympan.study.records import load_stored_study
from tympan.study.report import render_html, render_markdown
from tympan.study.runner import run_study
from tympan.study.spec import load_study

TRAIN = """\
import sys
import tympan
args = dict(a.split("=", 1) for a in sys.argv[1:])
level, seed = args["enc"], int(args["seed"])
with tympan.init(project="drops", config=args) as run:
    if (level, seed) == ("b", 0):
        run.log({"test/wer": float("nan")})
    elif (level, seed) == ("b", 1):
        run.log({"test/wer": float("inf")})
    elif (level, seed) == ("a", 2):
        run.log({"train/loss": 1.0})
    else:
        run.log({"test/wer": 0.30 - 0.05 * (level == "b") + 0.001 * seed})
"""

STUDY = """\
name: drops
command: [python, train.py]
factors:
  enc: {levels: [a, b], baseline: a}
seeds: 5
metrics:
  - {name: wer, split: test, direction: lower}
  - {name: werr, split: test, direction: lower}
analysis: {n_boot: 1000, test: t-test}
"""

WARNING = ("metric test/werr was never logged by any of the 10 finished trials, so nothing "
           "can be compared on it; they logged: test/wer, train/loss. Did you mean test/wer?")
NOTE = ("test/wer: 3 trials gave no usable value (baseline seed 2 (test/wer never logged); "
        "enc=b seed 0 (test/wer is nan); enc=b seed 1 (test/wer is inf)); their seeds are "
        "left out of the comparisons that need them")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("drops")
    (where / "train.py").write_text(TRAIN)
    (where / "drops.yaml").write_text(textwrap.dedent(STUDY))
    run_study(load_study(where / "drops.yaml"), store=str(where / "store"), workers=2)
    return where


@pytest.fixture(scope="module")
def analysis(lab: Path) -> StudyAnalysis:
    with open_store(str(lab / "store")) as store:
        return analyse(load_stored_study(store, "drops"))


def test_the_analysis_says_which_seeds_it_dropped_and_why(analysis: StudyAnalysis) -> None:
    [b] = analysis.comparisons
    assert (b.metric.key, b.effect.n, b.seeds_total, b.seeds_text) == ("test/wer", 2, 5,
                                                                        "2 of 5")
    assert b.dropped == (Dropped(0, "enc=b", "test/wer is nan"),
                         Dropped(1, "enc=b", "test/wer is inf"),
                         Dropped(2, "baseline", "test/wer never logged"))
    assert [w.split(" (the study")[0] for w in analysis.warnings] == [WARNING]
    assert any(n.startswith(NOTE) for n in analysis.notes)
    # The misspelled metric is warned about once, not listed trial by trial.
    assert not any("test/werr" in n for n in analysis.notes)


def test_the_report_shows_n_the_drops_and_the_warning(analysis: StudyAnalysis) -> None:
    md = render_markdown(analysis)
    assert "## Warnings" in md and WARNING in md
    assert md.index("## Warnings") < md.index("## Context")
    row = next(line for line in md.splitlines() if line.startswith("| enc=b |"))
    assert "| test/wer | 2 of 5 |" in row
    assert NOTE.replace("(", "(") in md
    html = render_html(analysis)
    assert '<section class="warnings"><h2>Warnings</h2>' in html and WARNING in html
    assert '<td class="num">2 of 5</td>' in html and "enc=b seed 1 (test/wer is inf)" in html


def test_tympan_study_prints_the_warning_n_and_the_drops(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = str(lab / "store")
    assert main(["--store", where, "study", "drops"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "warning: " + WARNING in out
    assert "2 of 5" in out and "enc=b seed 0 (test/wer is nan)" in out
    assert main(["--store", where, "study", "drops", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [c] = data["comparisons"]
    assert (c["n"], c["seeds_total"]) == (2, 5)
    assert c["dropped"][2] == {"seed": 2, "arm": "baseline", "why": "test/wer never logged"}
    assert data["warnings"][0].startswith(WARNING)
    trial = next(t for t in data["trials"] if t["arm"] == "enc=b" and t["seed"] == 1)
    assert trial["missing"] == {"test/wer": "test/wer is inf",
                                "test/werr": "test/werr never logged"}


def test_the_api_answer_has_them_too(lab: Path) -> None:
    with live_server(str(lab / "store"), auth=False) as url:
        answer = httpx.get(f"{url}/api/studies/drops", headers=url.headers, timeout=30).json()
    [c] = answer["comparisons"]
    assert (c["n"], c["seeds_total"]) == (2, 5)
    assert [d["seed"] for d in c["dropped"]] == [0, 1, 2]
    assert answer["warnings"][0].startswith(WARNING)
    assert any(n.startswith(NOTE) for n in answer["notes"])
