"""The quantification page of a learning-curve study in a real headless Chromium: linked from
the study page, it draws the curve with its band and answers a target typed into its form
(the estimate, its interval, and that the answer is extrapolated). One small study of real
trials (the trial script of test_curves_study.py), one server, one browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.test_ui_browser import _require_browser, browser, css, page, signed_in, wait

__all__ = ["browser", "page", "signed_in"]  # the UI tests' fixtures, shared here by name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> str:
    _require_browser()
    from test_curves_study import STUDY, TRIAL
    from tympan.audio.corpus import synth_corpus
    from tympan.study.runner import run_study
    from tympan.study.spec import load_study
    from tympan.track.stores import close_stores

    folder = tmp_path_factory.mktemp("ui-quantify")
    synth_corpus(folder / "corpus", voices=6, utterances_per_speaker=8, progress=False)
    (folder / "trial.py").write_text(TRIAL)
    (folder / "curve.yaml").write_text(STUDY.format(corpus=folder / "corpus"))
    stored = run_study(load_study(folder / "curve.yaml"), store=str(folder / "store"),
                       workers=2)
    assert {t.status for t in stored.current_trials()} == {"finished"}
    import tympan

    with tympan.init(project="other", store=str(folder / "store")) as run:  # two projects,
        run.log({"test/wer": 0.5}, step=0)  # as the sign-in fixture expects
    close_stores()
    return str(folder / "store")


@pytest.fixture(scope="module")
def server(lab: str) -> Iterator[str]:
    from server_fixtures import live_server

    with live_server(lab, auth=False) as url:
        yield url


def test_the_study_page_links_the_quantification_page_which_answers_a_target(page) -> None:
    driver = page("/studies/digits_curve", "#quantify-link")
    href = css(driver, "#quantify-link")[0].get_attribute("href")
    assert "/quantify.html" in href
    driver.get(href)
    wait(driver, lambda d: d.find_elements("css selector", "svg"))
    assert "levels off at" in css(driver, ".answer")[0].text  # no target yet: the curve
    box = css(driver, "input[name=target]")[0]
    box.clear()
    box.send_keys("test/wer=0.15")
    css(driver, "form.target button")[0].click()
    wait(driver, lambda d: "to reach" in d.find_element("css selector", ".answer").text)
    answer = css(driver, ".answer")[0].text
    assert "to reach test/wer ≤ 0.15:" in answer and "80% interval" in answer
    assert "extrapolated" in answer and "you have 32 utterances" in answer
    svg = driver.page_source
    assert "target 0.15" in svg and "estimate" in svg and "extrapolated" in svg
    assert css(driver, "input[name=target]")[0].get_attribute("value") == "test/wer=0.15"
