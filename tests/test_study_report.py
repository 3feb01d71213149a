"""The study report: real toy studies run into real stores, rendered as Markdown and HTML."""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from tympan.cli.app import main
from tympan.store import open_store
from tympan.study.analysis import StudyAnalysis, analyse
from tympan.study.records import load_stored_study
from tympan.study.report import forest_svg, render_html, render_markdown, write_report
from tympan.study.runner import run_study
from tympan.study.spec import load_study

TRAIN = """\
import random, sys
import tympan
args = dict(a.split("=", 1) for a in sys.argv[1:])
level, seed = args.get("enc", "a"), int(args.get("seed", 0))
effect = {"a": 0.0, "b": -0.05, "c": 0.0}.get(level, 0.02)
NOISE = float(args.get("noise", 0.004))
if args.get("flip") == "1":
    effect = -effect
if level == "c" and seed == 2:
    print("loading the <b> encoder")
    raise ValueError("the <b> encoder is not built")
rng = random.Random(f"{seed}-{level}")
with tympan.init(project="toy", config=args) as run:
    run.log({"test/wer": 0.30 + effect + rng.gauss(0, NOISE)})
"""


def make_study(where: Path, name: str, levels: str, *, baseline: str = "a", seeds: int = 3,
               overrides: str = "{}", description: str = "A toy study.",
               test: str = "t-test") -> StudyAnalysis:
    """Run a toy study into ``where/store`` and analyse it (used by test_findings.py too).

    With 2-3 seeds only the t-test (``analysis.test: t-test``) can decide a comparison: the
    default sign-flip test's smallest p is 0.25 with 3 seeds (see the tests below)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "train.py").write_text(TRAIN)
    (where / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        description: {description}
        command: [python, train.py]
        overrides: {overrides}
        factors:
          enc: {{levels: {levels}, baseline: {baseline}}}
        seeds: {seeds}
        metrics:
          - {{name: wer, split: test, direction: lower}}
        analysis: {{n_boot: 1000, test: {test}}}
        """))
    run_study(load_study(where / f"{name}.yaml"), store=str(where / "store"), workers=2)
    with open_store(str(where / "store")) as store:
        return analyse(load_stored_study(store, name))


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def toy(toy_dir: Path) -> StudyAnalysis:
    return make_study(toy_dir, "toy", '[a, b, c, "<script>alert(1)</script>"]',
                      description="Does <the> encoder matter?")


def test_the_analysis_has_what_the_report_shows(toy: StudyAnalysis) -> None:
    verdicts = {c.level: c.verdict for c in toy.comparisons}
    assert verdicts == {"b": "improves", "<script>alert(1)</script>": "hurts",
                        "c": "no detectable effect"}
    assert [t.trial.status for t in toy.trials].count("failed") == 1


def test_three_seeds_cannot_be_decided_by_the_default_sign_flip_test(toy_dir: Path) -> None:
    """The toy study re-analysed with the default test: no verdict is possible, and the
    report says why and how many seeds would do."""
    with open_store(str(toy_dir / "store")) as store:
        stored = load_stored_study(store, "toy")
        analysis_spec = stored.spec.analysis.model_copy(update={"test": "sign-flip"})
        stored = replace(stored, spec=stored.spec.model_copy(update={"analysis": analysis_spec}))
        analysis = analyse(stored)
    assert {c.verdict for c in analysis.comparisons} == {"no detectable effect"}
    b = next(c for c in analysis.comparisons if c.level == "b")
    assert (b.effect.p_value, b.effect.test, b.effect.n) == (0.25, "sign-flip", 3)
    assert b.seeds_needed is not None and b.seeds_needed >= 7
    assert ("2 comparisons with 3 seeds cannot be decided: the smallest p-value the sign-flip "
            "test can give with 3 seeds is 2/2^3 = 0.25 × 3 comparisons (Holm) = 0.75, not "
            "below α = 0.05. 7 seeds can decide; or set analysis.test: t-test") in \
        " ".join(analysis.notes)
    assert any(n.startswith("1 comparison with 2 seeds cannot be decided") for n in
               analysis.notes)
    md = render_markdown(analysis)
    assert "exact sign-flip randomisation tests" in md and "## Notes" in md


def test_six_seeds_decide_with_the_default_test(toy_dir: Path) -> None:
    six = make_study(toy_dir / "six", "six", "[a, b]", seeds=6, test="sign-flip")
    [b] = six.comparisons
    assert (b.effect.p_value, b.effect.interval) == (2 / 64, "sign-flip+bootstrap-t")
    assert b.verdict == "improves" and not six.notes


def test_the_html_is_standalone_and_escaped(toy: StudyAnalysis, tmp_path: Path) -> None:
    paths = write_report(toy, tmp_path / "out", link_base="http://127.0.0.1:8080/runs/")
    assert {p.name for p in paths.values()} == {"report.md", "report.html", "forest.svg"}
    html = paths["html"].read_text()
    assert "<script" not in html and "<link" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//(?!127\.0\.0\.1:8080/runs/)""", html)
    assert "url(" not in html and "@import" not in html and "@font-face" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Does &lt;the&gt; encoder matter?" in html
    assert "ValueError: the &lt;b&gt; encoder is not built" in html
    assert "loading the" not in html
    assert html.count('class="marker"') == len(toy.comparisons) == 3
    for word in ("improves", "hurts", "no detectable effect", "← better", "Holm"):
        assert word in html
    run_id = next(t.trial.run_id for t in toy.trials if t.trial.run_id)
    assert f'href="http://127.0.0.1:8080/runs/{run_id}"' in html
    for fact in (toy.context["base_config_hash"], toy.study_id, "python train.py", "toy"):
        assert fact in html


def test_without_link_base_run_ids_are_plain(toy: StudyAnalysis) -> None:
    html = render_html(toy)
    assert "<a " not in html and "http" not in html
    assert next(t.trial.run_id for t in toy.trials if t.trial.run_id) in html


def test_the_forest_plot_has_a_marker_per_comparison_coloured_by_verdict(
        toy: StudyAnalysis) -> None:
    svg = forest_svg(toy)
    assert svg.startswith("<svg") and "xlink:href" not in svg
    markers = re.findall(r'class="marker" data-verdict="([^"]+)"', svg)
    assert sorted(markers) == sorted(c.verdict for c in toy.comparisons)
    assert "test/wer" in svg and "← better" in svg and "stroke-dasharray" in svg


def test_the_markdown_has_the_tables(toy: StudyAnalysis) -> None:
    md = render_markdown(toy)
    assert "![forest plot](forest.svg)" in md
    rows = [line for line in md.splitlines()
            if line.startswith("| enc=") and "| test/wer |" in line]
    assert len(rows) == 3
    undecided = next(r for r in rows if r.startswith("| enc=c "))
    assert "no detectable effect" in undecided
    assert "would likely decide it" in undecided or "> 64 seeds" in undecided
    trial_rows = [line for line in md.splitlines()
                  if re.match(r"\| (baseline|enc=)\S* \| \d \|", line)]
    assert len(trial_rows) == 4 * 3
    assert trial_rows[0].startswith("| baseline | 0 | finished |")
    failed = [r for r in trial_rows if "| failed |" in r]
    assert len(failed) == 1 and "ValueError: the &lt;b&gt; encoder is not built" in failed[0]
    assert "<script>" not in md and "enc=&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "## How to read this" in md
    # enc=c lost seed 2 (its trial failed): the table says 2 of 3 seeds, the notes why.
    assert "| test/wer | 2 of 3 |" in undecided
    assert ("- test/wer: 1 trial gave no usable value (enc=c seed 2 (trial failed)); their "
            "seeds are left out") in md


def test_factorial_comparisons_get_their_own_tables(toy: StudyAnalysis) -> None:
    main_effect = replace(toy.comparisons[0], kind="main")
    interaction = replace(toy.comparisons[1], kind="interaction", factor="enc x lr",
                          level="b x high", baseline="a x low")
    full = replace(toy, comparisons=[main_effect, interaction], notes=["one | note"])
    md = render_markdown(full)
    assert "## Main effects" in md and "## Interactions" in md and "## Verdicts" not in md
    assert "| enc=b x lr=high | a x low |" in md
    assert "- one \\| note" in md
    html = render_html(full)
    assert "<h2>Main effects</h2>" in html and "<h2>Interactions</h2>" in html
    assert html.count('class="marker"') == 2


def test_tympan_report_writes_the_files_and_prints_the_verdicts(
        toy: StudyAnalysis, toy_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    where = str(toy_dir / "store")
    monkeypatch.chdir(tmp_path)
    assert main(["--store", where, "report", "toy"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "reports" / "toy" / "report.html").is_file()
    assert "report.html" in out and "improves" in out and "hurts" in out
    assert main(["--store", where, "report", "toy", "--out", str(tmp_path / "r"),
                 "--project", "toy", "--link-base", "http://h/runs/"]) == 0
    assert "http://h/runs/" in (tmp_path / "r" / "report.html").read_text()
    assert main(["--store", where, "report", "nope"]) == 1
    assert capsys.readouterr().err.startswith("error: no study 'nope'")
