"""The findings knowledge base: recorded per study, pooled across studies, exported as a wiki."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_study_report import make_study
from tympan.cli.app import main
from tympan.store import Store, open_store
from tympan.study.findings import (
    export_wiki,
    pooled_findings,
    random_effects,
    record_findings,
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three studies of enc=b against a in one store: b improves WER in the first; the
    second has the same effect but was set up the other way round (baseline b); the third
    (flip=1) finds the opposite. Their findings are recorded."""
    where = tmp_path_factory.mktemp("findings")
    quiet = "{noise: 0.0005}"
    analyses = [make_study(where, "first", "[a, b]", seeds=2, overrides=quiet),
                make_study(where, "swapped", "[a, b]", baseline="b", seeds=2, overrides=quiet),
                make_study(where, "flipped", "[a, b]", seeds=2,
                           overrides="{noise: 0.0005, flip: 1}")]
    with open_store(str(where / "store")) as store:
        for analysis in analyses:
            assert record_findings(store, analysis) == 1
    return where


@pytest.fixture
def store(lab: Path):
    with open_store(str(lab / "store")) as handle:
        yield handle


def test_pooling_counts_flips_swapped_baselines_and_flags_contradictions(store: Store) -> None:
    [finding] = pooled_findings(store)
    assert (finding.component, finding.level, finding.baseline, finding.metric) == \
        ("enc", "b", "a", "test/wer")
    assert (finding.studies, finding.improves, finding.hurts, finding.undecided) == (3, 2, 1, 0)
    assert finding.contradiction
    by_study = {e.study: e for e in finding.evidence}
    assert by_study["swapped"].flipped and not by_study["first"].flipped
    assert by_study["swapped"].effect == pytest.approx(-0.05, abs=0.003)
    assert by_study["swapped"].verdict == "improves"
    assert by_study["flipped"].effect == pytest.approx(0.05, abs=0.003)
    assert by_study["swapped"].low < by_study["swapped"].effect < by_study["swapped"].high
    assert finding.i_squared is not None and finding.i_squared > 0.9
    assert finding.low < finding.estimate < finding.high
    assert "better test/wer in 2 of 3 studies, worse in 1" in finding.summary
    assert finding.contexts["studies"] == ["first", "swapped", "flipped"]
    assert finding.contexts["recipes"] == ["python train.py"]
    assert pooled_findings(store, component="nope") == []
    assert len(pooled_findings(store, metric="test/wer")) == 1


def test_recording_again_replaces_the_study_rows(lab: Path, store: Store) -> None:
    from tympan.study.analysis import analyse
    from tympan.study.records import load_stored_study

    analysis = analyse(load_stored_study(store, "first"))
    assert record_findings(store, analysis) == 1
    assert record_findings(store, analysis) == 1
    [finding] = pooled_findings(store)
    assert finding.studies == 3


def test_random_effects_matches_the_textbook() -> None:
    # Equal standard errors and no spread: the pooled estimate is the common one, I² = 0.
    estimate, low, high, tau2, i2 = random_effects([1.0, 1.0], [0.5, 0.5])
    assert estimate == 1.0 and tau2 == 0.0 and i2 == 0.0
    assert high - low == pytest.approx(2 * 1.959964 * 0.5 / 2 ** 0.5, rel=1e-5)
    # DerSimonian-Laird by hand: y = (0, 2), v = (1, 1): Q = 2, tau² = 1, I² = 0.5.
    estimate, low, high, tau2, i2 = random_effects([0.0, 2.0], [1.0, 1.0])
    assert (estimate, tau2, i2) == (1.0, 1.0, 0.5)
    assert high - estimate == pytest.approx(1.959964, rel=1e-5)


def test_the_wiki_has_a_page_per_component_and_an_index(store: Store, tmp_path: Path) -> None:
    paths = export_wiki(store, tmp_path / "wiki")
    assert [p.name for p in paths] == ["enc.md", "project-first.md", "project-flipped.md",
                                       "project-swapped.md", "index.md"]
    page = (tmp_path / "wiki" / "enc.md").read_text()
    assert "## b vs a on test/wer" in page and "Contradiction" in page
    assert "better test/wer in 2 of 3 studies" in page
    assert page.count("(#study-") == 3 and "sign flipped" in page
    index = (tmp_path / "wiki" / "index.md").read_text()
    assert "[enc](enc.md)" in index and "1 contradicted" in index
    # A page per project: its own studies' findings only, linking to the component pages.
    assert "## By project" in index and "[flipped](project-flipped.md)" in index
    flipped = (tmp_path / "wiki" / "project-flipped.md").read_text()
    row = next(line for line in flipped.splitlines() if line.startswith("| [enc](enc.md)"))
    assert "| b vs a | test/wer (lower is better) | 1 | 0 | 1 | 0 |" in row
    assert row.rstrip(" |").endswith("hurts")


def test_the_findings_commands(lab: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    where = str(lab / "store")
    assert main(["--store", where, "findings"]) == 0
    out = capsys.readouterr().out
    assert "b vs a" in out and "2/1/0" in out and "contradiction" in out
    assert main(["--store", where, "findings", "--component", "enc", "--metric", "test/wer",
                 "--json"]) == 0
    [data] = json.loads(capsys.readouterr().out)
    assert data["contradiction"] and data["studies"] == 3 and len(data["evidence"]) == 3
    assert main(["--store", where, "findings", "--component", "decoder"]) == 0
    assert "no findings yet" in capsys.readouterr().out
    assert main(["--store", where, "findings", "export", "--wiki", str(tmp_path / "w"),
                 "--link-base", "http://lab/studies/"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "w" / name) for name in (
        "enc.md", "project-first.md", "project-flipped.md", "project-swapped.md", "index.md")]
    assert "(http://lab/studies/" in (tmp_path / "w" / "enc.md").read_text()
