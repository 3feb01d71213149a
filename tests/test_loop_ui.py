"""The continuous-training page in a real headless Chromium: two real loop iterations of the
asr_ctc recipe (the pipeline of test_loop.py: a batch that helps is promoted, one with
shuffled transcripts is rejected), one server, one browser. The model page links the page;
it shows each iteration's data, champion and challenger with the paired interval, every
gate check, the verdict and the alias move."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.registry_fixtures import REPO
from tests.test_loop import _batch, loop_lab
from tests.test_ui_browser import _require_browser, browser, css, page, shoot, signed_in, wait

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

__all__ = ["browser", "page", "signed_in"]  # the UI tests' fixtures, shared here by name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    _require_browser()
    import tympan
    import tympan.models as models
    from tympan.loop.history import iterations
    from tympan.loop.iteration import run_iteration
    from tympan.loop.spec import load_pipeline
    from tympan.track.stores import close_stores

    where = tmp_path_factory.mktemp("ui-loop")
    store = str(where / "store")
    pipeline = load_pipeline(loop_lab(store, where, tmp_path_factory))
    spare = models.get("asr-digits/1", store=store).run_id
    models.register(spare, "asr-spare", recipe=str(REPO / "recipes/asr_ctc"),
                    store=store)  # a model no loop has touched
    gold = where / "gold"
    _batch(where / "data" / "batch1.jsonl", gold, shift_texts=False)
    first = run_iteration(pipeline, store=store)
    _batch(where / "data" / "batch2.jsonl", gold, shift_texts=True)
    second = run_iteration(pipeline, store=store, trigger="schedule 'every 6h'")
    assert (first.status, second.status) == ("promoted", "rejected")
    with tympan.init(project="other", store=store) as run:  # two projects, as the sign-in
        run.log({"test/wer": 0.5}, step=0)  # fixture expects
    close_stores()
    return {"store": store, "runs": [first.gate_run, second.gate_run],
            "iterations": iterations(pipeline, store)}


@pytest.fixture(scope="module")
def server(lab: dict[str, object]) -> Iterator[str]:
    from server_fixtures import live_server

    with live_server(lab["store"], auth=False) as url:
        yield url


def test_model_page_links_the_loop_page_with_each_iteration(page, lab) -> None:
    driver = page("/models/asr-digits", "#loop-link")
    css(driver, "#loop-link")[0].click()
    wait(driver, lambda d: d.find_elements("css selector", ".loop-table tbody tr"))
    assert driver.current_url.endswith("/models/asr-digits/loop")
    shoot(driver, "loop")
    promoted, rejected = css(driver, ".loop-table tbody tr")
    assert [r.get_attribute("data-run") for r in (promoted, rejected)] == lab["runs"]
    first, second = (" ".join(r.text.split()) for r in (promoted, rejected))
    assert "batch1.jsonl 12 utt." in first and "new data" in first
    assert "passed" in first and "@champion → v2" in first and "2 seeds" in first
    assert "batch2.jsonl" in second and "schedule 'every 6h'" in second
    assert "rejected" in second and "none" in second
    api = lab["iterations"]
    # Each row carries the gate report's interval; the rejected one's reaches above 0.
    for row, it in zip((promoted, rejected), api, strict=True):
        assert [float(row.get_attribute(f"data-{k}")) for k in ("effect", "low", "high")] \
            == [it["effect"], it["low"], it["high"]]
    assert api[0]["high"] < 0 <= api[1]["high"]
    assert f"{100 * api[0]['high']:.3g}".replace("-", "−") in first and "points" in first
    checks = [(c.get_attribute("data-check"), c.get_attribute("data-passed"))
              for c in rejected.find_elements("css selector", ".gate-checks li")]
    assert checks == [("gold/cer", "false"), ("health", "true")]
    marks = css(driver, ".loop-effects .iteration-mark")
    assert [m.get_attribute("class") for m in marks] == ["iteration-mark passed",
                                                          "iteration-mark failed"]
    assert "0 (no change)" in driver.page_source  # the improve rule's bound


def test_a_model_without_iterations_says_how_to_start(page) -> None:
    driver = page("/models/asr-spare/loop", ".loop-page")
    assert "No loop iteration has judged a challenger of asr-spare yet: tympan loop run" \
        in css(driver, ".loop-page")[0].text
    driver = page("/models/nothing-here/loop", ".page-error")
    assert "no model 'nothing-here'" in css(driver, ".page-error")[0].text
