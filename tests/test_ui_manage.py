"""Issue 17 items 4-6 in a real headless Chromium: managing runs from the UI (rename, tags,
note, archive with the runs page's "Show archived" toggle, delete behind a confirmation that
names the run and what goes with it, the run's history), a read-only token that sees those
controls disabled with the reason, a compare page that follows its running runs until they
end, and the runs table's column pins and order kept across reloads. One small store, one
server and one browser for the module (the fixtures of test_ui_browser.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from tests.test_ui_browser import (
    _require_browser,
    browser,
    click,
    css,
    page,
    rows,
    shoot,
    signed_in,
    wait,
)
from tests.test_ui_read import server

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

__all__ = ["browser", "page", "server", "signed_in"]  # the UI tests' fixtures, by name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    _require_browser()
    import tympan

    where = str(tmp_path_factory.mktemp("ui-manage") / "store")
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TYMPAN_CAPTURE_ENV", "0")
        for name, encoder, lr, tags in (("gru-a", "gru", 1e-3, []), ("conv-b", "conv", 3e-4, []),
                                        ("edit-me", "gru", 3e-4, ["old"]),
                                        ("doomed", "conv", 1e-3, []),
                                        ("doomed-too", "gru", 1e-4, [])):
            with tympan.init(project="asr", name=name, store=where, tags=tags,
                             config={"model": {"encoder": encoder}, "lr": lr}) as run:
                for step in range(20):
                    run.log({"test/wer": 0.3 + 0.5 / (step + 1), "train/loss": 2.0 / (step + 1)},
                            step=step)
                ids[name] = run.id
        with tympan.init(project="asr", name="doomed-probe", store=where, parent=ids["doomed"],
                         config={"probe": {"job": "fit"}}) as run:
            tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 8000)).astype(np.float32)
            run.log_audio("probe/clip", tone, 8000, step=0)  # a stored file only it uses
            ids["doomed-probe"] = run.id
        with tympan.init(project="tts", name="other", store=where) as run:  # two projects
            run.log({"mel/l1": 0.5}, step=0)
        from tympan.track.stores import close_stores

        close_stores()
    ids["store"] = where
    return ids


def _api(server, path: str) -> httpx.Response:
    return httpx.get(f"{server}/api/{path}", headers=server.headers)


def _type_into(driver, selector: str, text: str) -> None:
    box = wait(driver, lambda d: css(d, selector))[0]
    box.clear()
    box.send_keys(text)


def test_the_run_page_renames_retags_annotates_archives_and_shows_the_history(
        page, server, lab) -> None:
    from selenium.webdriver.common.keys import Keys

    run_id = lab["edit-me"]
    driver = page(f"/runs/{run_id}", ".run-page")
    click(driver, "#edit-name")
    _type_into(driver, "#rename-input", "edit-me-renamed")
    click(driver, "#save-name")
    wait(driver, lambda d: css(d, ".run-name") and css(d, ".run-name")[0].text == "edit-me-renamed")
    assert driver.title.startswith("edit-me-renamed")
    assert "null" not in css(driver, ".run-head h1")[0].text  # nothing empty drawn as "null"

    css(driver, "#tag-add")[0].send_keys("keep", Keys.ENTER)
    wait(driver, lambda d: css(d, '.tag-editor .tag[data-tag="keep"]'))
    click(driver, '.tag-editor .tag[data-tag="old"] .tag-x')
    wait(driver, lambda d: not css(d, '.tag-editor .tag[data-tag="old"]'))

    assert css(driver, "#edit-note")[0].text == "Add a note"
    click(driver, "#edit-note")
    _type_into(driver, "#note-input", "lr too low: rerun with 1e-3")
    click(driver, "#save-note")
    wait(driver, lambda d: css(d, ".note-text")
         and css(d, ".note-text")[0].text == "lr too low: rerun with 1e-3")

    assert css(driver, "#edit-note")[0].text == "Edit note"
    stored = _api(server, f"runs/{run_id}").json()  # the server has it, not just the page
    assert (stored["name"], stored["tags"], stored["note"]) == (
        "edit-me-renamed", ["keep"], "lr too low: rerun with 1e-3")

    click(driver, '.tab[data-tab="history"]')
    wait(driver, lambda d: len(css(d, ".history-table tbody tr")) == 4)
    actions = [r.get_attribute("data-action") for r in css(driver, ".history-table tbody tr")]
    assert sorted(actions) == ["note", "rename", "tags", "tags"]
    assert "edit-me → edit-me-renamed" in css(driver, ".history-table")[0].text

    click(driver, "#archive-run")
    wait(driver, lambda d: css(d, ".run-head .archived-badge"))
    assert css(driver, "#archive-run")[0].text == "Unarchive"
    wait(driver, lambda d: css(d, '.history-table tr[data-action="archive"]'))  # read again
    shoot(driver, "run-manage")

    # archived: hidden from the runs table until "Show archived", which the URL keeps
    driver = page("/runs?project=asr", ".runs-table tbody tr")
    assert "edit-me-renamed" not in rows(driver)
    click(driver, "#show-archived")
    wait(driver, lambda d: "edit-me-renamed" in rows(d))
    assert "archived=1" in driver.current_url
    driver.refresh()
    wait(driver, lambda d: "edit-me-renamed" in rows(d))
    assert css(driver, "#show-archived")[0].get_attribute("aria-pressed") == "true"
    row = f'.runs-table tr[data-id="{run_id}"]'
    assert "archived" in css(driver, row)[0].get_attribute("class")
    # the row's editor unarchives it
    click(driver, f"{row} .row-edit")
    wait(driver, lambda d: css(d, "#edit-run-dialog #edit-note")
         and css(d, "#edit-note")[0].get_attribute("value") == "lr too low: rerun with 1e-3")
    assert css(driver, "#edit-name")[0].get_attribute("value") == "edit-me-renamed"
    click(driver, "#edit-archive")
    wait(driver, lambda d: css(d, row) and "archived" not in css(d, row)[0].get_attribute("class"))
    assert _api(server, f"runs/{run_id}").json()["archived_at"] is None


def test_a_tag_is_added_in_place_in_the_runs_table(page, server, lab) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = page("/runs?project=asr", ".runs-table tbody tr")
    row = f'.runs-table tr[data-id="{lab["gru-a"]}"]'
    click(driver, f"{row} .tag-plus")
    wait(driver, lambda d: css(d, f"{row} input.tag-add"))[0].send_keys("best", Keys.ENTER)
    wait(driver, lambda d: "best" in [b.text for b in css(d, f"{row} td.tags button.tag")])
    assert _api(server, f"runs/{lab['gru-a']}").json()["tags"] == ["best"]


def test_delete_asks_first_naming_the_run_and_what_goes_with_it(page, server, lab) -> None:
    driver = page("/runs?project=asr", ".runs-table tbody tr")
    assert css(driver, "#delete-selected")[0].get_attribute("hidden") is not None
    click(driver, f'.runs-table tr[data-id="{lab["doomed"]}"] .row-check')
    click(driver, "#delete-selected")
    dialog = wait(driver, lambda d: css(d, "#confirm-dialog"))[0]
    text = dialog.text
    assert "Delete run doomed?" in text
    assert "1 child run" in text and "doomed-probe" in text  # what goes with it
    assert "no other run uses are removed from disk" in text
    shoot(driver, "runs-delete")
    click(driver, "#confirm-cancel")  # saying no deletes nothing
    wait(driver, lambda d: not css(d, "#confirm-dialog"))
    assert _api(server, f"runs/{lab['doomed']}").status_code == 200

    click(driver, "#delete-selected")
    click(driver, "#confirm-ok")
    wait(driver, lambda d: "doomed" not in rows(d))
    notice = wait(driver, lambda d: css(d, ".banner-notice"))[0].text
    assert "Deleted 1 run and 1 child run; 1 stored file collected" in notice
    for name in ("doomed", "doomed-probe"):
        assert _api(server, f"runs/{lab[name]}").status_code == 404
    assert "sel=" not in driver.current_url  # the deleted run left the selection

    # the run page's Delete asks too, then goes back to the runs table
    driver = page(f"/runs/{lab['doomed-too']}", ".run-page")
    click(driver, "#delete-run")
    wait(driver, lambda d: "Delete run doomed-too?" in css(d, "#confirm-dialog")[0].text)
    click(driver, "#confirm-ok")
    wait(driver, lambda d: d.current_url.endswith("/runs") or "/runs?" in d.current_url)
    wait(driver, lambda d: css(d, ".runs-table tbody tr") and "doomed-too" not in rows(d))
    events = _api(server, f"events?run={lab['doomed-too']}").json()["events"]
    assert [e["action"] for e in events] == ["delete"]


def test_a_read_only_token_sees_the_controls_disabled_and_why(browser, lab) -> None:
    from server_fixtures import live_server

    made = subprocess.run([sys.executable, "-m", "tympan.cli.app", "token", "create",
                           "--scope", "read", "--name", "reader"], capture_output=True,
                          text=True, check=True, env={**os.environ, "TYMPAN_STORE": lab["store"]})
    token = made.stdout.split()[0]
    with live_server(lab["store"], auth=True) as url:
        browser.get("about:blank")
        browser.get(f"{url}/runs/{lab['conv-b']}?token={token}")  # a sign-in link
        wait(browser, lambda d: css(d, ".run-page"))
        for button in ("#edit-name", "#edit-note", "#archive-run", "#delete-run"):
            element = css(browser, button)[0]
            assert not element.is_enabled(), button
            assert "scope read" in element.get_attribute("title")
            holder = element.find_element("xpath", "..")  # the tooltip over a disabled button
            assert "needs a token with scope write" in holder.get_attribute("title")
        assert not css(browser, "#tag-add") and not css(browser, ".tag-x")
        click(browser, '.tab[data-tab="history"]')  # reading the history needs only read
        wait(browser, lambda d: css(d, '.tab-panel[data-tab="history"] .empty'))

        browser.get(f"{url}/runs?project=asr")
        wait(browser, lambda d: css(d, ".runs-table tbody tr"))
        assert not css(browser, ".runs-table .tag-plus")  # no field to add a tag
        edit = css(browser, ".runs-table .row-edit")[0]
        assert not edit.is_enabled() and "scope read" in edit.get_attribute("title")
        click(browser, ".runs-table tbody .row-check")
        wait(browser, lambda d: css(d, "#delete-selected")[0].is_displayed())
        assert not css(browser, "#delete-selected")[0].is_enabled()
        assert not css(browser, "#archive-selected")[0].is_enabled()


def test_the_compare_page_follows_running_runs_until_they_end(page, lab) -> None:
    import tympan
    from tympan.track.stores import close_stores

    run = tympan.init(project="asr", name="live-compare", store=lab["store"])
    try:
        for step in range(10):
            run.log({"test/wer": 1.0, "train/loss": float(step)}, step=step)
        run.flush()
        driver = page("/runs?project=asr", ".runs-table tbody tr")
        driver.execute_script("window.tympanLiveSeconds = 0.3;"
                              "const a = document.createElement('a'); a.href = arguments[0];"
                              "document.body.append(a); a.click(); a.remove();",
                              f"/compare?runs={lab['gru-a']},{run.id}&tab=summary")
        wait(driver, lambda d: css(d, ".summary-table"))
        live = f'.run-chip[data-id="{run.id}"]'
        assert css(driver, ".compare-page")[0].get_attribute("data-running") == "1"
        assert css(driver, f"{live} .live")

        def loss(d) -> str:  # read in one go: the page redraws the summary as the run logs
            return d.execute_script(
                "const row = [...document.querySelectorAll('.summary-table tbody tr')]"
                ".find(r => r.querySelector('th').innerText === 'train/loss');"
                "return row ? row.querySelectorAll('td')[1].innerText : null")

        wait(driver, lambda d: loss(d) == "9")
        for step in range(10, 300):
            run.log({"train/loss": float(step)}, step=step)
        run.flush()
        wait(driver, lambda d: loss(d) == "299")  # the summary follows the run
    finally:
        run.finish()
        close_stores()
    wait(driver, lambda d: css(d, ".compare-page")[0].get_attribute("data-running") == "0")
    assert css(driver, f"{live} .badge")[0].text == "finished" and not css(driver, f"{live} .live")

    def asked(d) -> int:
        return d.execute_script("return performance.getEntriesByType('resource')"
                                ".filter(e => e.name.includes('/api/compare')).length")

    before = asked(driver)
    time.sleep(1.0)
    assert asked(driver) == before  # nothing runs: the page stopped asking


def _order(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.runs-table thead tr:last-child th')]"
        ".map(th => th.dataset.column || th.innerText.trim())")


def test_columns_pin_and_reorder_and_are_kept_across_reloads(page) -> None:
    driver = page("/runs?project=asr", ".runs-table tbody tr")
    order = _order(driver)
    assert order[1] == "Name" and "pinned" in css(driver, ".runs-table thead tr:last-child th"
                                                       )[1].get_attribute("class")
    metrics = [c for c in order if c.startswith("metric:")]
    assert metrics[:2] == ["metric:test/wer", "metric:train/loss"]

    # move a metric column left with its header menu (the menu does not sort)
    click(driver, '.runs-table th[data-column="metric:train/loss"] .col-menu-button')
    click(driver, '.col-menu [data-action="left"]')
    wait(driver, lambda d: [c for c in _order(d) if c.startswith("metric:")][:2]
         == ["metric:train/loss", "metric:test/wer"])
    assert "sort=" not in driver.current_url

    # drag a config column onto another one of its kind
    configs = [c for c in _order(driver) if c.startswith("config:")]
    assert sorted(configs) == ["config:lr", "config:model.encoder"]
    driver.execute_script(
        "const [from, to] = arguments; const dt = new DataTransfer();"
        "const fire = (el, type) => el.dispatchEvent(new DragEvent(type, {bubbles: true,"
        " cancelable: true, dataTransfer: dt}));"
        "fire(from, 'dragstart'); fire(to, 'dragover'); fire(to, 'drop');",
        css(driver, f'.runs-table th[data-column="{configs[1]}"]')[0],
        css(driver, f'.runs-table th[data-column="{configs[0]}"]')[0])
    wait(driver, lambda d: [c for c in _order(d) if c.startswith("config:")] == configs[::-1])

    # pin a column: right after the name, in view when the table scrolls sideways
    click(driver, '.runs-table th[data-column="metric:test/wer"] .col-menu-button')
    click(driver, '.col-menu [data-action="pin"]')
    wait(driver, lambda d: _order(d)[2] == "metric:test/wer")
    assert "PINNED" in css(driver, ".runs-table thead tr.group-row")[0].text.upper()
    shoot(driver, "runs-pinned")
    wrap = css(driver, ".runs-page > .table-wrap")[0]
    driver.execute_script("arguments[0].style.width = '600px'; arguments[0].scrollLeft = 600",
                          wrap)
    assert driver.execute_script("return arguments[0].scrollLeft", wrap) > 0
    boxes = ("const wrap = arguments[0].getBoundingClientRect().left;"
             "const row = document.querySelector('.runs-table tbody tr:first-child');"
             "const name = row.cells[1].getBoundingClientRect();"
             "return [wrap, name.left, name.right, row.cells[2].getBoundingClientRect().left]")

    def in_view(d) -> bool:  # the name at the left edge, the pinned column right after it
        wrap_left, name_left, name_right, pinned_left = d.execute_script(boxes, wrap)
        return wrap_left <= name_left <= wrap_left + 40 and abs(pinned_left - name_right) < 2

    wait(driver, in_view)

    # a reload keeps the order and the pin (localStorage, per project)
    driver.refresh()
    wait(driver, lambda d: css(d, ".runs-table tbody tr"))
    kept = _order(driver)
    assert kept[2] == "metric:test/wer"
    assert [c for c in kept if c.startswith("config:")] == configs[::-1]
    assert [c for c in kept if c.startswith("metric:")][1:2] == ["metric:train/loss"]
    # the name can be unpinned too
    click(driver, '.runs-table thead tr:last-child th:nth-child(2) .col-menu-button')
    click(driver, '.col-menu [data-action="pin"]')
    wait(driver, lambda d: "pinned" not in css(d, ".runs-table thead tr:last-child th")[1]
         .get_attribute("class"))
