"""What researchers use daily, in a real headless Chromium over the browser tests' store
(tests/test_ui_browser.py builds it: 2 encoders x 2 seeds with metrics and speech at several
steps): the audio step and the A/B choice kept in the URL, spectrogram axes, seed groups drawn
as a mean with its 95% band, and the parallel-coordinates and scatter views of a selection.
Screenshots go where test_ui_browser.py puts them ($TYMPAN_SCREENSHOTS)."""

from __future__ import annotations

import pytest
from tests.test_ui_browser import (
    AUDIO_STEPS,
    browser,
    click,
    css,
    lab,
    page,
    server,
    shoot,
    signed_in,
    texts,
    wait,
)

# the UI tests' fixtures (and their store), shared here by name
__all__ = ["browser", "lab", "page", "server", "signed_in"]


def _query(driver) -> dict[str, str]:
    return driver.execute_script("return Object.fromEntries(new URLSearchParams(location.search))")


# ---------------------------------------------------------------------------- audio in the URL

def test_run_page_audio_step_comes_back_on_reload(page, lab) -> None:
    _, ids = lab
    driver = page(f"/runs/{ids['asr'][('conformer', 1)]}?tab=audio", ".audio-key .audio-view")
    driver.execute_script("const s = document.querySelector('.audio-key .step-slider');"
                          "s.value = 1; s.dispatchEvent(new Event('input'));")
    wait(driver, lambda d: _query(d).get("astep") == str(AUDIO_STEPS[1]))
    assert _query(driver)["akey"] == "val/sample"
    driver.refresh()  # the reload, or the link shared with a colleague
    wait(driver, lambda d: css(d, ".audio-key .audio-view"))
    assert css(driver, ".audio-key")[0].get_attribute("data-step") == str(AUDIO_STEPS[1])
    assert "what is the weather like tomorrow" in css(driver, ".audio-key")[0].text


def test_a_clip_let_go_while_it_loads_fails_no_load(page, lab) -> None:
    """A clip's view destroyed (the step slider moved on) just as its audio starts reading
    the blob: the element lets go of the blob before it is revoked, so no load fails in the
    console (the page fixture asserts none did; the revoke used to fail the load)."""
    _, ids = lab
    run = ids["asr"][("conformer", 1)]
    driver = page(f"/runs/{run}?tab=audio", ".audio-key .audio-view")
    failed = driver.execute_async_script("""
      const [run, sample, done] = arguments;
      import('/static/js/audio.js').then(async ({ AudioView }) => {
        const views = [];
        for (let i = 0; i < 5; i++) {
          const view = new AudioView(run, sample);
          await view.loaded;
          view.destroy();  // as the audio element starts on the blob
          views.push(view);
        }
        setTimeout(() => done(views.filter((v) => v.root.classList.contains('failed')).length),
                   500);
      });
    """, run, driver.execute_script(
        "return document.querySelector('.audio-key .audio-view').view.sample"))
    assert failed == 0


def test_compare_audio_step_and_ab_choice_come_back_on_reload(page, lab) -> None:
    _, ids = lab
    runs = [ids["asr"][("gru", 1)], ids["asr"][("conformer", 1)], ids["asr"][("gru", 2)]]
    driver = page(f"/compare?runs={','.join(runs)}&tab=audio", ".sync-player .sync-item")
    driver.execute_script("const s = document.getElementById('audio-step');"
                          "s.value = '0'; s.dispatchEvent(new Event('change'));")
    wait(driver, lambda d: _query(d).get("astep") == str(AUDIO_STEPS[0]))
    click(driver, ".ab-group .btn:nth-child(3)")  # C
    wait(driver, lambda d: _query(d).get("ab") == "C")
    link = driver.current_url
    driver.get("about:blank")
    driver.get(link)  # a shared link opens the same step, with the same run audible
    wait(driver, lambda d: css(d, ".sync-player .sync-item"))
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('.sync-player').dataset.active") == "2")
    assert "turn the lights on" in css(driver, ".sync-item")[2].text
    assert [b.get_attribute("class").split() for b in css(driver, ".ab-group .btn")][2].count("on")
    click(driver, ".ab-group .btn:nth-child(1)")  # back to A: the link says no more than it must
    wait(driver, lambda d: "ab" not in _query(d))


# ---------------------------------------------------------------------------- spectrogram axes

def _contrast(driver, selector: str) -> float:
    """WCAG contrast ratio between the first match's text colour and the page's background."""
    return driver.execute_script("""
      const lum = (c) => {
        const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
          v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const text = lum(getComputedStyle(document.querySelector(arguments[0])).color);
      let el = document.querySelector(arguments[0]), bg = 'rgba(0, 0, 0, 0)';
      while (el && /rgba\\(.*, 0\\)|transparent/.test(bg)) {
        bg = getComputedStyle(el).backgroundColor; el = el.parentElement; }
      const back = lum(bg);
      return (Math.max(text, back) + 0.05) / (Math.min(text, back) + 0.05);""", selector)


def test_spectrograms_have_a_time_axis_in_seconds_and_a_db_colour_bar(page, lab) -> None:
    _, ids = lab
    driver = page(f"/runs/{ids['asr'][('conformer', 1)]}?tab=audio",
                  ".audio-view .time-axis span")
    wait(driver, lambda d: css(d, ".db-labels span"))
    duration = driver.execute_script(
        "const a = document.querySelector('.audio-view audio');"
        "return Number.isFinite(a.duration) && a.duration > 0 ? a.duration : null")
    assert duration and duration > 1
    marks = driver.execute_script("""
      const visual = document.querySelector('.audio-view .audio-visual').getBoundingClientRect();
      return [...document.querySelectorAll('.audio-view .time-axis span')].map((s) => {
        const r = s.getBoundingClientRect();
        const x = s.classList.contains('start') ? r.left
          : s.classList.contains('end') ? r.right : (r.left + r.right) / 2;
        return [s.textContent, (x - visual.left) / visual.width]; })""")
    labels = [m[0] for m in marks]
    assert labels[0] == "0 s" and all(t.endswith(" s") for t in labels) and len(labels) >= 3
    seconds = [float(t[:-2]) for t in labels]
    assert seconds == sorted(seconds) and seconds[-1] <= duration
    for value, where in zip(seconds, (m[1] for m in marks), strict=True):
        assert where == pytest.approx(value / duration, abs=0.01)  # under its moment

    db = texts(driver, ".audio-view .db-labels span")
    assert db[-1] == "0 dB" and db[0] == "-80"  # the server's floor to the loudest cell
    gradient = driver.execute_script(
        "return document.querySelector('.audio-view .db-gradient').style.backgroundImage")
    assert "rgb(0, 0, 4)" in gradient and "rgb(252, 253, 191)" in gradient  # the image's map
    assert _contrast(driver, ".audio-view .time-axis span") >= 3

    driver.execute_script("localStorage.setItem('tympan.theme', 'dark')")
    driver.refresh()
    wait(driver, lambda d: css(d, ".audio-view .time-axis span") and css(d, ".db-labels span"))
    assert driver.execute_script("return document.documentElement.dataset.theme") == "dark"
    assert _contrast(driver, ".audio-view .time-axis span") >= 3
    assert _contrast(driver, ".audio-view .db-labels span") >= 3
    shoot(driver, "run-audio-dark")


# ---------------------------------------------------------------------------- seed bands

def _series(driver, card: str) -> list[dict]:
    return driver.execute_script(
        "return document.querySelector(arguments[0] + ' .chart').chart.series.map(s => ({name: "
        "s.name, faint: Boolean(s.faint), x: s.x, y: s.y, low: s.low, high: s.high}))", card)


def test_groups_draw_each_groups_mean_curve_with_the_tables_95_band(page) -> None:
    driver = page("/runs?project=asr&group=model.encoder&metric=val/wer",
                  ".seed-curves[data-loaded='1']")
    assert css(driver, ".seed-curves")[0].get_attribute("data-key") == "val/wer"
    series = _series(driver, ".seed-curves")
    conformer = next(s for s in series if s["name"] == "model.encoder=conformer")
    row = next(r for r in css(driver, ".groups-table tr.group")
               if r.find_element("css selector", "td.group-value").text == "conformer")
    # both conformer seeds logged val/wer at the same steps: the curve ends on the table's row
    mean, low, high = (float(row.get_attribute(f"data-{k}")) for k in ("mean", "low", "high"))
    assert conformer["y"][-1] == pytest.approx(mean, rel=1e-12)
    assert (conformer["low"][-1], conformer["high"][-1]) == (pytest.approx(low, rel=1e-12),
                                                              pytest.approx(high, rel=1e-12))
    assert all(lo < y < hi for lo, y, hi in zip(conformer["low"], conformer["y"],
                                                conformer["high"], strict=True))
    shoot(driver, "runs-grouped-curves")
    driver.execute_script("const s = document.getElementById('curve-metric');"
                          "s.value = 'train/loss'; s.dispatchEvent(new Event('change'));")
    wait(driver, lambda d: css(d, ".seed-curves[data-key='train/loss'][data-loaded='1']"))
    assert len(_series(driver, ".seed-curves")[0]["x"]) > 100


def test_compare_of_seeds_draws_their_mean_and_band_and_of_configs_does_not(page, lab) -> None:
    _, ids = lab
    seeds = [ids["asr"][("conformer", 1)], ids["asr"][("conformer", 2)]]
    driver = page(f"/compare?runs={','.join(seeds)}",
                  '.chart-card[data-key="val/wer"][data-band="1"]')
    series = _series(driver, '.chart-card[data-key="val/wer"]')
    assert [s["faint"] for s in series] == [True, True, False]
    band = series[2]
    assert band["name"] == "mean of 2 seeds" and band["low"][-1] < band["y"][-1] < band["high"][-1]
    assert band["y"][-1] == pytest.approx((series[0]["y"][-1] + series[1]["y"][-1]) / 2)
    shoot(driver, "compare-seeds")
    click(driver, "input.seed-band")  # off: the runs' own lines, and ?band=0 in the link
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('.chart-card[data-key=\"val/wer\"]').dataset.band") == "")
    assert _query(driver).get("band") == "0"
    assert [s["faint"] for s in _series(driver, '.chart-card[data-key="val/wer"]')] == [False] * 2

    other = [ids["asr"][("gru", 1)], ids["asr"][("conformer", 1)]]  # two configs: no band
    driver = page(f"/compare?runs={','.join(other)}",
                  '.chart-card[data-key="val/wer"][data-points]')
    assert not css(driver, "input.seed-band")
    assert len(_series(driver, '.chart-card[data-key="val/wer"]')) == 2


# ---------------------------------------------------------------------------- plots of a selection

def svg_texts(driver, selector: str) -> list[str]:
    """The text of every match (SVG elements have no innerText)."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])]"
                                 ".map(e => e.textContent)", selector)


def _hover(driver, selector: str) -> None:
    """Move the mouse onto the element: a point at its centre, or a line's last segment (runs
    with the same config share the first ones)."""
    from selenium.webdriver import ActionChains

    element = css(driver, selector)[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    plot = driver.execute_script("return arguments[0].ownerSVGElement", element)
    dx, dy = driver.execute_script("""
      const el = arguments[0], svg = el.ownerSVGElement, box = svg.getBoundingClientRect();
      let x, y;
      if (el.points) {
        const a = el.points.getItem(el.points.numberOfItems - 2);
        const b = el.points.getItem(el.points.numberOfItems - 1);
        x = (a.x + b.x) / 2; y = (a.y + b.y) / 2;
      } else { x = Number(el.getAttribute('cx')); y = Number(el.getAttribute('cy')); }
      return [x - box.width / 2, y - box.height / 2];""", element)
    ActionChains(driver).move_to_element_with_offset(plot, int(dx), int(dy)).perform()


def test_parallel_coordinates_and_scatter_of_the_selected_runs(page, lab) -> None:
    _, ids = lab
    driver = page("/runs?project=asr", ".runs-table tbody tr")
    chosen = ["gru-s1", "gru-s2", "conformer-s1", "conformer-s2", "probed-conformer"]
    for row in css(driver, ".runs-table tbody tr"):
        if row.find_element("css selector", "td.name a").text in chosen:
            row.find_element("css selector", "input.row-check").click()
    click(driver, "#plot-selected")
    wait(driver, lambda d: css(d, "svg.parallel .run-line"))
    assert "/plots?runs=" in driver.current_url
    assert len(css(driver, "svg.parallel .run-line")) == 5
    # an axis per config key that differs, the metric last, each labelled with its values
    titles = svg_texts(driver, "svg.parallel .axis-title")
    assert titles[-1] == "val/wer" and {"model.encoder", "optim.lr", "seed"} <= set(titles)
    encoder = "svg.parallel .plot-axis[data-key='model.encoder']"
    assert "axis-category" in css(driver, encoder)[0].get_attribute("class")
    assert svg_texts(driver, f"{encoder} .tick-label") == ["conformer", "gru"]  # categorical
    lr = "svg.parallel .plot-axis[data-key='optim.lr']"
    assert "axis-category" not in css(driver, lr)[0].get_attribute("class")
    assert len(svg_texts(driver, f"{lr} .tick-label")) >= 2
    assert "(none)" in svg_texts(driver, "svg.parallel .plot-axis[data-key='val/wer'] .tick-label")
    _hover(driver, "svg.parallel .run-line[data-name='gru-s2']")
    wait(driver, lambda d: d.execute_script(
        "return !document.querySelector('.plot-tooltip').hidden"))
    assert texts(driver, ".plot-tooltip .tip-run") == ["gru-s2"]
    shoot(driver, "plots-parallel")
    driver.execute_script("document.querySelector(\"svg.parallel .run-line[data-name='gru-s2']\")"
                          ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    wait(driver, lambda d: d.current_url.endswith(f"/runs/{ids['asr'][('gru', 2)]}"))

    driver.back()
    wait(driver, lambda d: css(d, "svg.parallel .run-line"))
    click(driver, '.tab[data-tab="scatter"]')
    wait(driver, lambda d: css(d, "svg.scatter .run-point"))
    driver.execute_script("const s = document.getElementById('scatter-x');"
                          "s.value = 'config:model.encoder'; s.dispatchEvent(new Event('change'));"
                          "const y = document.getElementById('scatter-y');"
                          "y.value = 'val/wer'; y.dispatchEvent(new Event('change'));")
    wait(driver, lambda d: svg_texts(d, "svg.scatter .x-title") == ["model.encoder"])
    assert svg_texts(driver, "svg.scatter .y-title") == ["val/wer"]
    assert svg_texts(driver, "svg.scatter .x-axis .tick-label") == ["conformer", "gru"]
    assert len(css(driver, "svg.scatter .run-point")) == 4  # the probed run logged no val/wer
    assert _query(driver)["x"] == "config:model.encoder" and _query(driver)["tab"] == "scatter"
    _hover(driver, "svg.scatter .run-point[data-name='conformer-s1']")
    scatter_tip = '.tab-panel[data-tab="scatter"] .plot-tooltip .tip-run'
    wait(driver, lambda d: texts(d, scatter_tip) == ["conformer-s1"])
    shoot(driver, "plots-scatter")
    driver.refresh()  # the choice of axes is in the link
    wait(driver, lambda d: svg_texts(d, "svg.scatter .x-title") == ["model.encoder"])
    driver.execute_script("document.querySelector(\"svg.scatter .run-point[data-name="
                          "'conformer-s1']\").dispatchEvent(new MouseEvent('click'))")
    wait(driver, lambda d: d.current_url.endswith(f"/runs/{ids['asr'][('conformer', 1)]}"))
