"""The findings knowledge base: recorded per study, pooled across studies, exported as a wiki."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from test_study_report import make_study
from tympan.cli.app import main
from tympan.errors import InvalidInputError
from tympan.store import Store, open_store
from tympan.study.findings import (
    export_wiki,
    interval_standard_error,
    pooled_findings,
    pooled_standard_errors,
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
    # The pooled interval is HKSJ on the per-seed variance pooled over the three studies.
    errors = pooled_standard_errors([e.standard_error for e in finding.evidence],
                                    [e.n for e in finding.evidence])
    assert (finding.estimate, finding.low, finding.high) == \
        random_effects([e.effect for e in finding.evidence], errors)[:3]
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
    # Equal standard errors and no spread: tau² = 0, I² = 0 and q = 0: the HKSJ interval has
    # zero width; the modified rule floors q at 1: t(1) * sqrt(1 / (4 + 4)).
    estimate, low, high, tau2, i2 = random_effects([1.0, 1.0], [0.5, 0.5])
    assert (estimate, low, high, tau2, i2) == (1.0, 1.0, 1.0, 0.0, 0.0)
    low, high = random_effects([1.0, 1.0], [0.5, 0.5], modified=True)[1:3]
    assert high - low == pytest.approx(2 * 12.706205 * 0.5 / 2 ** 0.5, rel=1e-6)
    # DerSimonian-Laird by hand: y = (0, 2), v = (1, 1): Q = 2, tau² = 1, I² = 0.5; the
    # weights are 1 / (1 + 1), q = (0.5 + 0.5) / 1 = 1, so the half-width is t(1) * 1.
    estimate, low, high, tau2, i2 = random_effects([0.0, 2.0], [1.0, 1.0])
    assert (estimate, tau2, i2) == (1.0, 1.0, 0.5)
    assert high - estimate == pytest.approx(12.706205, rel=1e-6)


def test_standard_errors_are_pooled_over_studies() -> None:
    # Per-seed variances n se²: 3 * 0.1² = 0.03 (2 df) and 5 * 0.2² = 0.2 (4 df): pooled
    # (2 * 0.03 + 4 * 0.2) / 6; a one-seed study keeps its own.
    pooled = (2 * 0.03 + 4 * 0.2) / 6
    assert pooled_standard_errors([0.1, 0.2, 0.7], [3, 5, 1]) == pytest.approx(
        [(pooled / 3) ** 0.5, (pooled / 5) ** 0.5, 0.7])
    assert pooled_standard_errors([0.3], [1]) == [0.3]
    with pytest.raises(InvalidInputError, match="as many seed counts"):
        pooled_standard_errors([0.1, 0.2], [3])


# statsmodels 0.15 combine_effects(y, se², method_re="chi2", use_t=True): "random effect wls"
# is DerSimonian-Laird with the (unmodified) Hartung-Knapp-Sidik-Jonkman interval.
HKSJ_Y, HKSJ_SE = [0.1, 0.4, -0.2, 0.3], [0.2, 0.3, 0.05 ** 0.5, 0.02 ** 0.5]
HKSJ_REFERENCE = (0.153735, -0.234505, 0.541975)


def test_hksj_matches_statsmodels() -> None:
    estimate, low, high, _, _ = random_effects(HKSJ_Y, HKSJ_SE)
    assert (estimate, low, high) == pytest.approx(HKSJ_REFERENCE, abs=1e-6)
    # Here q = 1.004 > 1, so the modified rule changes nothing.
    assert random_effects(HKSJ_Y, HKSJ_SE, modified=True)[:3] == pytest.approx(
        HKSJ_REFERENCE, abs=1e-6)
    meta = pytest.importorskip("statsmodels.stats.meta_analysis")
    # (statsmodels leaves a negative tau² untruncated: compare where it is positive.)
    for y, se in ((HKSJ_Y, HKSJ_SE), ([0.3, -0.4], [0.1, 0.2]),
                  ([-1.0, 0.5, 2.0, 0.1, 0.3], [0.4, 0.2, 0.9, 0.3, 0.5])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its own warnings about per-study intervals
            res = meta.combine_effects(np.array(y), np.array(se) ** 2, method_re="chi2",
                                       use_t=True)
            ref_low, ref_high = res.conf_int(use_t=True)[3]
        ours = random_effects(y, se)
        assert ours[:3] == pytest.approx((res.mean_effect_re, ref_low, ref_high), rel=1e-9)
        assert ours[3] == pytest.approx(res.tau2, rel=1e-9, abs=1e-15)


def test_modified_hksj_floors_q_at_one() -> None:
    # Three studies that agree far better than their standard errors say: q < 1.
    y, se = [0.1, 0.15, 0.12], [0.2, 0.3, 0.22]
    estimate, _, high, tau2, _ = random_effects(y, se, modified=True)
    w = [1 / s ** 2 for s in se]
    assert tau2 == 0.0
    assert estimate == pytest.approx(sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sum(w))
    assert high - estimate == pytest.approx(4.302653 * (1 / sum(w)) ** 0.5, rel=1e-6)
    plain = random_effects(y, se)
    assert plain[2] - plain[0] < 0.3 * (high - estimate)


def test_random_effects_rejects_mismatched_input() -> None:
    with pytest.raises(InvalidInputError, match="as many standard errors"):
        random_effects([0.1, 0.2], [0.1])
    with pytest.raises(InvalidInputError, match="at least one"):
        random_effects([], [])


def test_a_study_standard_error_is_read_back_with_student_t() -> None:
    # A 3-seed Student t interval mean ± t(2) se gives back se, not se * t(2) / z.
    assert interval_standard_error(1.0 - 4.302653 * 0.1, 1.0 + 4.302653 * 0.1, 3, 0.95) == \
        pytest.approx(0.1, rel=1e-6)
    assert interval_standard_error(-1.959964, 1.959964, 1, 0.95) == pytest.approx(1.0)


def test_the_wiki_has_a_page_per_component_and_an_index(store: Store, tmp_path: Path) -> None:
    paths = export_wiki(store, tmp_path / "wiki")
    assert [p.name for p in paths] == ["enc.md", "project-first.md", "project-flipped.md",
                                       "project-swapped.md", "index.md"]
    page = (tmp_path / "wiki" / "enc.md").read_text()
    assert "## b vs a on test/wer" in page and "Contradiction" in page
    assert "better test/wer in 2 of 3 studies" in page
    assert page.count("(#study-") == 3 and "sign flipped" in page
    [finding] = pooled_findings(store)
    assert f"{finding.estimate:+.3g} [{finding.low:.3g}, {finding.high:.3g}]" in page
    index = (tmp_path / "wiki" / "index.md").read_text()
    assert "[enc](enc.md)" in index and "1 contradicted" in index
    assert "Hartung-Knapp-Sidik-Jonkman" in index
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
