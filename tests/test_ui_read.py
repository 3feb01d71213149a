"""Issue 17 in a real headless Chromium: the runs page's filter box speaks the query language
(docs/query.md) and says why a query does not read; the smoothing slider on a series that is
constant or a single point no longer freezes the tab and reaches the URL; a path no page has
shows the app's own "Not found" page instead of raw JSON. One small store, one server and
one browser for the module (the fixtures of test_ui_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.test_ui_browser import _require_browser, browser, css, page, rows, signed_in, wait

__all__ = ["browser", "page", "signed_in"]  # the UI tests' fixtures, shared here by name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    _require_browser()
    import tympan

    where = str(tmp_path_factory.mktemp("ui-read") / "store")
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TYMPAN_CAPTURE_ENV", "0")
        for name, encoder, lr, wer in (("gru-0", "gru", 1e-3, 0.12), ("gru-1", "gru", 3e-4, 0.08),
                                       ("conv-0", "conv", 1e-3, 0.31)):
            with tympan.init(project="asr", name=name, store=where,
                             config={"model": {"encoder": encoder}, "lr": lr},
                             tags=["mfcc"] if encoder == "conv" else []) as run:
                for step in range(50):
                    run.log({"test/wer": wer + 0.5 / (step + 1), "test/cer": wer / 3,
                             "wall_seconds": 3.0}, step=step)
                run.log({"collapsed/wer": 1.0}, step=0)  # one point
                ids[name] = run.id
        with tympan.init(project="asr", name="probe-fit", store=where, parent=ids["gru-0"],
                         config={"probe": {"job": "fit", "inputs": "clean.list"}}) as run:
            run.log({"probe/enc.0/mean": 0.1}, step=0)
            ids["probe-fit"] = run.id
        with tympan.init(project="tts", name="other", store=where) as run:  # two projects
            run.log({"mel/l1": 0.5}, step=0)
        from tympan.track.stores import close_stores

        close_stores()
    ids["store"] = where
    return ids


@pytest.fixture(scope="module")
def server(lab: dict[str, str]) -> Iterator[str]:
    from server_fixtures import live_server

    with live_server(lab["store"], auth=False) as url:
        yield url


def _type(driver, text: str) -> None:
    box = css(driver, "#run-search")[0]
    box.clear()
    box.send_keys(text)


def test_the_filter_box_takes_the_query_language(page) -> None:
    driver = page("/runs?project=asr", ".runs-table tbody tr")
    wait(driver, lambda d: len(rows(d)) == 3)  # probe-fit is nested under gru-0
    _type(driver, "test/wer.min < 0.2 and model.encoder = gru")
    wait(driver, lambda d: sorted(rows(d)) == ["gru-0", "gru-1"])
    _type(driver, "model.encoder in (conv, gru) and lr >= 1e-3")
    wait(driver, lambda d: sorted(rows(d)) == ["conv-0", "gru-0"])
    _type(driver, "model.encoder in (conv, gru) and model.encoder != conv")
    wait(driver, lambda d: sorted(rows(d)) == ["gru-0", "gru-1"])
    _type(driver, "tags has mfcc")
    wait(driver, lambda d: rows(d) == ["conv-0"])
    assert "q=tags" in driver.current_url  # the query is in the link
    _type(driver, "gru-1")  # a bare word searches names
    wait(driver, lambda d: rows(d) == ["gru-1"])
    _type(driver, "model.encodr = gru")  # a typo: said under the box, table kept
    error = wait(driver, lambda d: next((e for e in css(d, "#query-error")
                                         if e.is_displayed()), None))
    assert "did you mean model.encoder" in error.text
    assert rows(driver) == ["gru-1"]
    assert css(driver, "#run-search")[0].get_attribute("aria-invalid") == "true"
    assert not [e for e in css(driver, ".banner-error") if e.is_displayed()]
    logged = driver.get_log("browser")  # the 400s are the only errors, and expected
    assert all(" 400 " in e["message"] for e in logged if e["level"] == "SEVERE"), logged
    _type(driver, "test/wer.max >= 0.8")
    wait(driver, lambda d: sorted(rows(d)) == ["conv-0"] and not css(d, "#query-error")[0]
         .is_displayed())


def test_smoothing_constant_and_single_point_series_keeps_the_page_alive(page, lab) -> None:
    driver = page(f"/runs/{lab['gru-0']}", ".chart canvas")
    wait(driver, lambda d: len(css(d, ".chart canvas")) >= 3)  # test/wer, wall_seconds, one point
    for weight in ("0.6", "0.99"):
        driver.set_script_timeout(5)  # the freeze took 3-56 s
        driver.execute_script(
            "const s = document.querySelector('input.smoothing'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));", weight)
        wait(driver, lambda d, w=weight: f"smooth={w}" in d.current_url, timeout=5)
    assert driver.execute_script("return 1 + 1") == 2  # the tab still answers
    driver.refresh()  # and the smoothing came back from the URL
    wait(driver, lambda d: css(d, "input.smoothing")
         and css(d, "input.smoothing")[0].get_attribute("value") == "0.99")


def test_a_path_no_page_has_shows_the_apps_not_found_page(page, server) -> None:
    import httpx

    driver = page("/no/such/page", ".page-error")
    assert "There is no page at /no/such/page" in css(driver, ".page-error")[0].text
    answer = httpx.get(f"{server}/no/such/page", headers={"Accept": "text/html"})
    assert answer.status_code == 404 and "text/html" in answer.headers["content-type"]
    api = httpx.get(f"{server}/api/nothing", headers={"Accept": "text/html",
                                                       **server.headers})
    assert api.status_code == 404 and api.json()["error"]["type"] == "NotFoundError"



def _open_in_app(driver, href: str, ready: str) -> None:
    """Follow a link inside the app (no reload), so window.tympanLiveSeconds stays set."""
    driver.execute_script("window.tympanLiveSeconds = 0.3;"
                          "const a = document.createElement('a'); a.href = arguments[0];"
                          "document.body.append(a); a.click(); a.remove();", href)
    wait(driver, lambda d: css(d, ready))


def test_the_run_page_follows_a_running_run_until_it_finishes(page, lab) -> None:
    import tympan
    from tympan.track.stores import close_stores

    run = tympan.init(project="asr", name="live-one", store=lab["store"])
    try:
        for step in range(15):
            run.log({"train/loss": float(step)}, step=step)
        run.flush()
        driver = page("/runs?project=asr", ".runs-table tbody tr")
        _open_in_app(driver, f"/runs/{run.id}", ".run-page .tile-value")
        assert css(driver, ".run-head .live") and \
            css(driver, ".run-page")[0].get_attribute("data-status") == "running"
        assert css(driver, ".tile-value")[0].text == "14"
        for step in range(15, 300):
            run.log({"train/loss": float(step)}, step=step)
    finally:
        run.finish()
        close_stores()
    wait(driver, lambda d: css(d, ".run-page")[0].get_attribute("data-status") == "finished")
    assert not css(driver, ".run-head .live")
    assert css(driver, ".run-head .badge")[0].text == "finished"
    assert css(driver, ".tile-value")[0].text == "299"
    asked = driver.execute_script(  # once finished, the page stops asking
        "return performance.getEntriesByType('resource').filter("
        "e => e.name.endsWith('/api/runs/' + arguments[0])).length", run.id)
    import time

    time.sleep(1.0)
    assert driver.execute_script(
        "return performance.getEntriesByType('resource').filter("
        "e => e.name.endsWith('/api/runs/' + arguments[0])).length", run.id) == asked


def test_the_runs_page_shows_new_runs_and_projects_without_a_reload(page, lab) -> None:
    import tympan
    from tympan.track.stores import close_stores

    driver = page("/runs?project=asr", ".runs-table tbody tr")
    _open_in_app(driver, "/runs?project=asr", ".runs-table tbody tr")
    before = len(rows(driver))
    driver.execute_script("window.stayed = true")  # gone if the page reloads
    with tympan.init(project="asr", name="arrived-later", store=lab["store"]) as run:
        run.log({"test/wer": 0.5}, step=0)
    with tympan.init(project="vad", name="new-project", store=lab["store"]) as run:
        run.log({"f1": 0.9}, step=0)
    close_stores()
    wait(driver, lambda d: "arrived-later" in rows(d) and len(rows(d)) == before + 1)
    wait(driver, lambda d: any(o.get_attribute("value") == "vad"
                               for o in css(d, "#project option")))
    assert driver.execute_script("return window.stayed") is True


def test_runs_table_defaults_keep_what_matters_in_view(page) -> None:
    from tests.test_ui_browser import click

    driver = page("/runs?project=asr&sort=collapsed/wer.max&desc=1", ".runs-table tbody tr")
    headers = [h.text for h in css(driver, ".runs-table thead tr:last-child th")]
    assert not [h for h in headers if h.startswith("probe.")]  # a probe job's own settings
    assert headers[6].startswith("collapsed/wer (max)")  # the sorted column comes first
    # the name column stays in view when the table scrolls sideways
    wrap = css(driver, ".runs-page > .table-wrap")[0]
    driver.execute_script("arguments[0].style.width = '600px'; arguments[0].scrollLeft = 400",
                          wrap)
    name = css(driver, ".runs-table tbody td.name")[0]
    assert driver.execute_script("return arguments[0].scrollLeft", wrap) > 0
    left = driver.execute_script("return arguments[0].getBoundingClientRect().left", name)
    box = driver.execute_script("return arguments[0].getBoundingClientRect().left", wrap)
    assert box <= left <= box + 40
    # grouping picks WER (not test/cer, first by name) and draws no interval below 0
    driver.get(driver.current_url.split("?")[0] + "?project=asr")
    wait(driver, lambda d: css(d, ".runs-table tbody tr"))
    click(driver, "#group-by")
    select = css(driver, "#group-metric")[0]
    assert select.get_attribute("value") == "test/wer"
    check = next(c for c in css(driver, ".check-list input") if c.get_attribute("value")
                 == "model.encoder")
    check.click()
    click(driver, "#group-apply")
    wait(driver, lambda d: css(d, ".groups-table tr.group .ci-range"))
    lefts = driver.execute_script(
        "return [...document.querySelectorAll('.ci-range')].map(e => parseFloat(e.style.left))")
    assert lefts and min(lefts) >= 0
    scale = css(driver, ".ci-scale span")[0].text
    assert float(scale) >= 0


def test_child_runs_are_nested_under_their_parent(page, lab) -> None:
    from tests.test_ui_browser import click

    driver = page("/runs?project=asr", ".runs-table tbody tr")
    assert "probe-fit" not in rows(driver)  # not an ordinary top-level run
    parent = f'.runs-table tbody tr[data-id="{lab["gru-0"]}"]'
    assert css(driver, f"{parent} .nest-toggle")[0].text == "▸ 1"
    click(driver, f"{parent} .nest-toggle")
    wait(driver, lambda d: "probe-fit" in rows(d))
    names = rows(driver)
    assert names.index("probe-fit") == names.index("gru-0") + 1  # right under its parent
    child = css(driver, f'.runs-table tbody tr[data-id="{lab["probe-fit"]}"]')[0]
    assert "child-row" in child.get_attribute("class")
    assert child.get_attribute("data-parent") == lab["gru-0"]
    click(driver, f"{parent} .nest-toggle")
    wait(driver, lambda d: "probe-fit" not in rows(d))


def test_export_downloads_the_filtered_table_and_the_groups(page) -> None:
    from tests.test_ui_browser import click

    driver = page("/runs?project=asr&q=model.encoder%20%3D%20gru&sort=metric:test/wer"
                  "&group=model.encoder&metric=test/wer", ".groups-table tr.group")

    def download(link: str) -> str:
        """Click an Export link and read what it downloads (the download itself stopped)."""
        click(driver, "#export")
        driver.execute_script("document.addEventListener('click', e => { window.__href ="
                              " e.target.href; e.preventDefault(); }, {once: true})")
        click(driver, link)
        return driver.execute_async_script(
            "fetch(window.__href).then(r => r.text()).then(arguments[0])")

    table = download("#export-runs-csv").splitlines()
    assert table[0].startswith("id,name,project,status")
    assert [line.split(",")[1] for line in table[1:]] == ["gru-1", "gru-0"]  # filter, sort
    assert "test/wer" in table[0].split(",")  # the shown columns
    groups = download("#export-groups-csv").splitlines()
    assert groups[0].startswith("model.encoder,metric,n,size,mean,std,low,high")
    assert groups[1].startswith("gru,test/wer,2,2,")
