"""The registry's pages in a real headless Chromium against a real server process: the models
list, a model's versions and alias timeline, a version's card and lineage graph, and the
links between them and to runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.registry_fixtures import asr_run, tiny_corpus
from tests.test_ui_browser import _require_browser, browser, click, css, shoot, texts, wait

import tympan

__all__ = ["browser"]  # the module-scoped Chromium of the UI tests, shared here


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list]]:
    _require_browser()
    from tests.server_fixtures import live_server

    from tympan.track.stores import close_stores

    store = str(tmp_path_factory.mktemp("registry-ui") / "store")
    corpus = tiny_corpus(tmp_path_factory)
    runs = [asr_run(store, corpus, wer=w, seed=i) for i, w in enumerate((0.3, 0.2))]
    models = tympan.models
    for run in runs:
        models.register(run.id, "asr-digits", recipe="recipes/asr_ctc", store=store)
    models.set_alias("asr-digits@champion", 1, reason="baseline", admin=True, store=store)
    time.sleep(0.05)
    with tympan.init(project="asr-ctc", name="gate", store=store) as gate:
        gate.log_artifact(models.gate_report(model="asr-digits", challenger=2, champion=1,
                                             passed=True), name=models.GATE_REPORT)
    models.set_alias("asr-digits@champion", 2, reason="gate passed", evidence=f"gate:{gate.id}",
                     store=store)
    models.add_report("asr-digits/2", "latency", "torch-cpu", {"p50_ms": 3.5}, store=store)
    close_stores()
    with live_server(store, auth=False) as url:
        yield url, runs


def test_models_list_model_page_and_version_card(browser, registry_server) -> None:
    url, runs = registry_server
    browser.get(url.sign_in_link)  # what `tympan ui` opens: the cookie, then the page

    def open_page(path: str, ready: str) -> None:
        browser.get("about:blank")
        browser.get(url + path)
        wait(browser, lambda d: css(d, ready))

    open_page("/models", ".models-table tbody tr")
    assert texts(browser, ".models-table td.name a") == ["asr-digits"]
    click(browser, ".models-table td.name a")
    wait(browser, lambda d: css(d, ".versions-table tbody tr"))
    assert texts(browser, ".versions-table td:first-child a") == ["v2", "v1"]
    assert len(css(browser, ".alias-timeline .lane")) == 1
    assert [s.get_attribute("data-version") for s in css(browser, ".alias-timeline .segment")] \
        == ["1", "2"]
    changes = texts(browser, ".events-table tbody td:nth-child(3)")
    assert changes == ["v1 → v2", "set to v1"]  # newest first
    assert texts(browser, ".events-table .badge.authority-gate") == ["gate"]
    shoot(browser, "registry-model")

    click(browser, ".versions-table td:first-child a")  # v2
    wait(browser, lambda d: css(d, ".lineage-graph .node.current"))
    labels = [n.get_attribute("data-label") for n in css(browser, ".lineage-graph .node")]
    assert labels[0].endswith("manifest.jsonl") and f"run {runs[1].name}" in labels
    assert "asr-digits v2" in labels and "@champion" in labels
    wer = texts(browser, '.metrics-table tr[data-key="test/wer"] td')
    assert wer[2] == "0.2" and wer[3] == "[0.15, 0.25]"
    assert texts(browser, '.reports-table tr[data-kind="latency"] td')[1] == "torch-cpu"
    shoot(browser, "registry-version")
    run_node = next(n for n in css(browser, ".lineage-graph .node.linked")
                    if n.get_attribute("data-label").startswith("run "))
    run_node.click()
    wait(browser, lambda d: d.current_url.endswith(f"/runs/{runs[1].id}"))
