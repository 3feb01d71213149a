"""The web UI in a real headless Chromium (Selenium + Debian's chromedriver) against a real
server process over a store of real runs: 2 encoders x 2 seeds with metrics and synthesized
speech at several steps, a long series, a failed run, a probed run with events, anomaly and
drift reports, and a small real ablation study.

Every page is loaded and clicked through (filter, group with the CI numbers checked against
scipy, sort, select -> compare, audio playback and A/B switching, chart zoom re-fetching at
full fidelity, the token prompt); a screenshot of each page at 1440x900 is written to
$TYMPAN_SCREENSHOTS (``TYMPAN_SCREENSHOTS=docs/screenshots`` refreshes the documented ones),
else to a temporary folder, so a test run leaves the checkout clean.

Without chromium/chromedriver the tests skip, unless CI is set: then they fail.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("TYMPAN_SCREENSHOTS")
             or Path(tempfile.gettempdir()) / "tympan-screenshots")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

LAYERS = ["frontend.conv", "encoder.0", "encoder.1", "encoder.2", "encoder.3", "decoder"]
AUDIO_STEPS = (0, 200, 399)
RUNS = 6 + 8 + 4  # asr runs, then both studies' trials (one of the first fails before its run)
TEXTS = ["turn the lights on", "what is the weather like tomorrow", "play some music please"]


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (path and os.path.exists(path) and os.access(path, os.X_OK)):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def _require_browser() -> None:
    reason = _browser_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser tests must run")
    pytest.skip(reason)


# ---------------------------------------------------------------------------- the store

def _speech(text: str, seed: int, noise: float) -> tuple[np.ndarray, int]:
    from speech import speech

    waveform, rate = speech(text, sample_rate=16000)
    rng = np.random.default_rng(seed)
    noisy = waveform + rng.normal(0, noise, waveform.shape).astype(np.float32)
    return np.clip(noisy, -1, 1).astype(np.float32), rate


def _asr_run(store: str, encoder: str, seed: int, *, long: bool = False) -> str:
    import tympan

    base = {"gru": 0.31, "conformer": 0.24}[encoder]
    rng = np.random.default_rng({"gru": 10, "conformer": 20}[encoder] + seed)
    config = {"model": {"encoder": encoder, "layers": 4}, "optim": {"lr": 0.001}, "seed": seed}
    with tympan.init(project="asr", name=f"{encoder}-s{seed}", config=config, store=store,
                     tags=["baseline"] if encoder == "gru" else ["sweep"]) as run:
        steps = 6000 if long else 400
        t = np.arange(steps)
        loss = 2.5 * np.exp(-t / (steps / 5)) + 0.3 + rng.normal(0, 0.05, steps)
        if long:
            loss[4321] = 9.0  # a spike the downsampled chart must keep
        for i in range(steps):
            run.log({"train/loss": float(loss[i]), "train/lr": 0.001 * min(1, (i + 1) / 50)},
                    step=i)
        for k, step in enumerate(range(0, steps, steps // 8)):
            wer = base + 0.3 * math.exp(-k / 2) + rng.normal(0, 0.004)
            run.log({"val/wer": wer, "val/cer": wer / 2.5}, step=step)
        for step, text in zip(AUDIO_STEPS, TEXTS, strict=True):
            noise = {"gru": 0.02, "conformer": 0.005}[encoder] * (1 if step else 3)
            waveform, rate = _speech(text, seed, noise)
            run.log_audio("val/sample", waveform, rate, step=step, caption=text)
            run.log_image("val/alignment", _alignment(step, seed), step=step, caption=text)
            errors = [[f"utt-{i}", TEXTS[i % 3], float(rng.uniform(0, 0.5)), i % 4 == 0]
                      for i in range(12)]
            errors[5][2] = float("nan")
            run.log_table("val/errors", errors, columns=["utt", "ref", "wer", "flagged"],
                          step=step)
        return run.id


def _alignment(step: int, seed: int) -> np.ndarray:
    """An attention alignment (decoder steps x encoder frames) that sharpens with training,
    in logits (so stored scaled from its own range)."""
    width = 12.0 / (1 + step / 100)
    t, e = np.arange(40)[:, None], np.arange(60)[None, :]
    return 6 * np.exp(-((e * 40 / 60 - t) ** 2) / (2 * width**2)) - 2 + seed * 0.1


def _probe_run(store: str) -> str:
    import tympan

    rng = np.random.default_rng(5)
    with tympan.init(project="asr", name="probed-conformer", store=store,
                     config={"model": {"encoder": "conformer", "layers": 4}, "seed": 0,
                             "optim": {"lr": 0.003}}) as run:
        for step in range(0, 300, 10):
            for depth, layer in enumerate(LAYERS):
                grow = 1 + (step / 300) * (3 if layer == "encoder.2" else 0.2)
                run.log({f"probe/{layer}/mean": float(rng.normal(0, 0.05) * grow),
                         f"probe/{layer}/std": float((1 + depth * 0.1) * grow),
                         f"probe/{layer}/zeros": float(min(1, 0.05 + (step / 300) * 0.9)
                                                       if layer == "encoder.2" else 0.05)},
                        step=step)
            run.log({"train/loss": float(2 * math.exp(-step / 100) + 0.2)}, step=step)
        events = [{"step": 120, "layer": "encoder.2", "rule": "dead_units", "value": 0.41,
                   "message": "41% of encoder.2's units never fired", "phase": "forward"},
                  {"step": 250, "layer": "encoder.2", "rule": "exploding_activations",
                   "value": 3.9, "message": "encoder.2's std grew 3.9x", "phase": "forward"}]
        run.log_artifact(json.dumps(events).encode(), name="probe/events.json")
        inputs = []
        for i in range(8):
            flagged = i < 3
            p_values = {layer: (0.002 if flagged and d >= 2 else 0.4 - d * 0.03)
                        for d, layer in enumerate(LAYERS)}
            inputs.append({"id": f"utt-{i:02d}", "p_value": 0.001 if flagged else 0.3 + i / 40,
                           "flagged": flagged,
                           "first_divergent_layer": "encoder.0" if flagged else None,
                           "entry_layer": "encoder.1" if flagged else None,
                           "anomaly_score": 9.5 - i if flagged else 0.5,
                           "z": {**{layer: (9.0 if flagged and d >= 1 else 0.4)
                                    for d, layer in enumerate(LAYERS)}, "output": 1.0},
                           "scores": {layer: round(5 * (1 - p), 3)
                                      for layer, p in p_values.items()},
                           "p_values": p_values})
        report = {"label": "noisy-test", "alpha": 0.01, "layers": LAYERS,
                  "stages": [*LAYERS, "output"], "n_calibration": 120, "inputs": inputs}
        run.log_artifact(json.dumps(report).encode(), name="probe/anomaly/noisy-test.json")
        drift = {"label": "train-vs-noisy", "a": "train", "b": "noisy",
                 "layers": [{"layer": layer, "mmd": 0.01 + d * 0.02, "p_value": 0.5 / (d + 1),
                             "drifted": d >= 3} for d, layer in enumerate(LAYERS)]}
        run.log_artifact(json.dumps(drift).encode(), name="probe/drift/train-vs-noisy.json")
        return run.id


def _failed_run(store: str) -> str:
    import tympan

    run = tympan.init(project="asr", name="lstm-diverged", store=store,
                      config={"model": {"encoder": "lstm", "layers": 4}, "seed": 0,
                              "optim": {"lr": 0.01}})
    for i in range(50):
        run.log({"train/loss": float(2 - i * 0.01) if i < 40 else float("nan")}, step=i)
    try:
        raise FloatingPointError("loss became NaN at step 40")
    except FloatingPointError as exc:
        run.fail(exc)
    return run.id


@contextmanager
def _setting(name: str, value: str) -> Iterator[None]:
    """An environment variable set for a while (module fixtures cannot use monkeypatch)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def populate(where: Path) -> dict[str, object]:
    """A store at ``where/store`` with everything the pages show; returns the run ids."""
    from test_study_report import make_study
    from tympan.store import open_store
    from tympan.study.findings import record_findings

    store = str(where / "store")
    with _setting("TYMPAN_CAPTURE_ENV", "0"):  # trials start fast without an environment
        analyses = [make_study(where, "encoder-ablation", "[a, b, c]", seeds=3,
                               description="Does the encoder matter for WER?"),
                    make_study(where, "encoder-replication", "[a, b]", seeds=2,
                               overrides="{noise: 0.0005, flip: 1}",
                               description="The same comparison on another data split.")]
    with open_store(store) as handle:
        for analysis in analyses:
            record_findings(handle, analysis)
    ids: dict[str, object] = {"asr": {}}
    with _setting("TYMPAN_CAPTURE_ENV", "1"):  # the run page shows code, packages, machine
        for encoder in ("gru", "conformer"):
            for seed in (1, 2):
                ids["asr"][(encoder, seed)] = _asr_run(store, encoder, seed,
                                                       long=(encoder, seed) == ("gru", 1))
    ids["probe"] = _probe_run(store)
    ids["failed"] = _failed_run(store)
    from tympan.track.stores import close_stores

    close_stores()
    return ids


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    _require_browser()
    where = tmp_path_factory.mktemp("ui")
    return where, populate(where)


@pytest.fixture(scope="module")
def server(lab: tuple[Path, dict[str, object]]) -> Iterator[str]:
    from server_fixtures import live_server

    with live_server(str(lab[0] / "store"), auth=False) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1440,900",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1440, "height": 900, "deviceScaleFactor": 1,
                            "mobile": False})
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def signed_in(browser, server, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Sign the browser in as a user does: `tympan ui` opens a private file that sends the
    browser to its sign-in link, which sets the cookie and drops the token from the URL."""
    from tympan.cli.serve import _redirect_page

    folder = tmp_path_factory.mktemp("open")
    browser.get(_redirect_page(folder, server.sign_in_link).as_uri())
    wait(browser, lambda d: d.find_elements("css selector", "#app[data-page]"))
    assert browser.current_url == f"{server}/runs" and not css(browser, "#token-prompt")


@pytest.fixture
def page(browser, server: str, signed_in: None):
    """Open a path on the live server and wait until its page rendered."""
    def open_page(path: str, ready: str = "#app[data-page]") -> object:
        browser.get("about:blank")
        browser.get(server + path)
        wait(browser, lambda d: d.find_elements("css selector", ready))
        return browser

    browser.get_log("browser")  # this test's errors only (the token test's 401s are expected)
    yield open_page
    browser.execute_script("localStorage.clear()")  # the chosen project, columns: per test
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "favicon" not in e["message"] and " 404 " not in e["message"]]
    assert not errors, errors


def wait(driver, condition, timeout: float = 15.0):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=[StaleElementReferenceException]).until(condition)


def css(driver, selector: str):
    return driver.find_elements("css selector", selector)


def texts(driver, selector: str) -> list[str]:
    """The rendered text of every match, read in one go (the page may re-render meanwhile)."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])]"
                                 ".map(e => e.innerText)", selector)


def shoot(driver, name: str) -> None:
    """Save SHOTS/NAME.png at 1440x900 (what the page looks like, checked by eye)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    time.sleep(0.3)  # canvases redraw on the next frame
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def rows(driver) -> list[str]:
    return texts(driver, ".runs-table tbody td.name a")


def click(driver, selector: str) -> None:
    """Click the first visible match, retrying while the page re-renders it."""
    def attempt(d) -> bool:
        element = next((e for e in css(d, selector) if e.is_displayed()), None)
        if element is None:
            return False
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        return True

    wait(driver, attempt)


# ---------------------------------------------------------------------------- the pages

def test_runs_page_filters_sorts_and_shows_columns(page) -> None:
    driver = page("/runs", ".runs-table tbody tr")
    names = rows(driver)
    assert {"gru-s1", "gru-s2", "conformer-s1", "conformer-s2", "probed-conformer",
            "lstm-diverged"} <= set(names)
    assert len(names) == RUNS  # asr runs, then the trials that started a run
    headers = texts(driver, ".runs-table thead th")
    assert "model.encoder" in headers and "val/wer" in headers

    # the project picker narrows the table, and the URL says so
    driver.execute_script("const s = document.getElementById('project'); s.value = 'asr';"
                          "s.dispatchEvent(new Event('change'));")
    wait(driver, lambda d: len(rows(d)) == 6)
    assert "project=asr" in driver.current_url
    shoot(driver, "runs")
    driver.execute_script("const s = document.getElementById('project'); s.value = '';"
                          "s.dispatchEvent(new Event('change'));")
    wait(driver, lambda d: len(rows(d)) == RUNS)

    search = css(driver, "#run-search")[0]
    search.send_keys("conformer")
    wait(driver, lambda d: sorted(rows(d)) == ["conformer-s1", "conformer-s2", "probed-conformer"])
    assert "/runs?q=conformer" in driver.current_url
    search.clear()
    search.send_keys(" ")
    wait(driver, lambda d: len(rows(d)) == RUNS)

    click(driver, '.status-filter [data-status="failed"]')
    wait(driver, lambda d: rows(d) == ["lstm-diverged"])
    assert css(driver, ".runs-table tbody .badge")[0].text == "failed"
    click(driver, '.status-filter [data-status="failed"]')
    wait(driver, lambda d: len(rows(d)) == RUNS)

    # a config cell filters by its value
    cell = next(e for e in css(driver, ".runs-table tbody .cell-filter") if e.text == "gru")
    cell.click()
    wait(driver, lambda d: sorted(rows(d)) == ["gru-s1", "gru-s2"])
    assert texts(driver, ".filter-chip") == ["model.encoder = gru\n×"]
    click(driver, ".filter-chip .chip-x")
    wait(driver, lambda d: len(rows(d)) == RUNS)

    # sort by a metric column: ascending, then descending; runs without it stay last
    click(driver, '.runs-table th[data-sort="metric:val/wer"]')
    column = driver.execute_script("return document.querySelector("
                                   "'.runs-table th[data-sort=\"metric:val/wer\"]').cellIndex")

    def values(d) -> list[float]:
        cells = d.execute_script("return [...document.querySelectorAll('.runs-table tbody tr')]"
                                 ".map(r => r.cells[arguments[0]].innerText)", column)
        return [float(c) for c in cells if c not in ("–", "")]

    header = '.runs-table th[data-sort="metric:val/wer"]'
    wait(driver, lambda d: css(d, f'{header}[aria-sort="ascending"]'))
    wait(driver, lambda d: len(values(d)) == 4 and values(d) == sorted(values(d)))
    click(driver, header)
    wait(driver, lambda d: css(d, f'{header}[aria-sort="descending"]'))
    wait(driver, lambda d: len(values(d)) == 4 and values(d) == sorted(values(d), reverse=True))
    assert "sort=metric" in driver.current_url and "desc=1" in driver.current_url


def test_grouping_by_config_shows_mean_and_95_ci_across_seeds(page, lab) -> None:
    from scipy import stats

    import tympan

    where, ids = lab
    driver = page("/runs?project=asr", ".runs-table tbody tr")
    click(driver, "#group-by")
    box = next(e for e in css(driver, ".pop-panel label.check") if e.text == "model.encoder")
    box.find_element("css selector", "input").click()
    driver.execute_script("const s = document.getElementById('group-metric');"
                          "s.value = 'val/wer'; s.dispatchEvent(new Event('change'));")
    click(driver, "#group-apply")
    wait(driver, lambda d: len(css(d, ".groups-table tr.group")) == 3)  # gru, conformer, lstm
    assert "group=model.encoder" in driver.current_url

    for encoder in ("gru", "conformer"):
        values = [tympan.load_run(ids["asr"][(encoder, seed)], store=str(where / "store"))
                  .summary["val/wer"].last for seed in (1, 2)]
        mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
        half = stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
        row = next(r for r in css(driver, ".groups-table tr.group")
                   if r.find_element("css selector", "td.group-value").text == encoder)
        shown_mean = float(row.find_element("css selector", ".mean").text)
        shown_half = float(row.find_element("css selector", ".pm").text.replace("±", ""))
        low, high = (float(v) for v in row.find_element("css selector", "td.interval")
                     .text.strip("[]").split(","))
        assert shown_mean == pytest.approx(mean, rel=1e-3)
        assert shown_half == pytest.approx(half, rel=1e-2)
        assert (low, high) == (pytest.approx(mean - half, rel=1e-3),
                               pytest.approx(mean + half, rel=1e-3))
        n = row.find_element("css selector", "td.n").text
        assert n.startswith("2")
    shoot(driver, "runs-grouped")

    # a group's checkbox selects its runs for Compare
    gru = next(r for r in css(driver, ".groups-table tr.group")
               if r.find_element("css selector", "td.group-value").text == "gru")
    gru.find_element("css selector", "input.group-check").click()
    wait(driver, lambda d: d.find_element("id", "compare-selected").text == "Compare 2")

    # A shared link that names the grouping but no metric aggregates the usual one (val/...).
    driver = page("/runs?project=asr&group=model.encoder", ".groups-table tr.group")
    wait(driver, lambda d: "metric=val" in d.current_url)
    first = css(driver, ".groups-table tr.group .mean")
    assert first and all(e.text not in ("", "–") for e in first[:2])


def test_selecting_runs_opens_compare_with_overlaid_metrics_and_config_diff(page, lab) -> None:
    _, ids = lab
    driver = page("/runs", ".runs-table tbody tr")
    for name in ("gru-s1", "conformer-s1"):
        row = next(r for r in css(driver, ".runs-table tbody tr")
                   if r.find_element("css selector", "td.name a").text == name)
        row.find_element("css selector", "input.row-check").click()
    click(driver, "#compare-selected")
    wait(driver, lambda d: "/compare?runs=" in d.current_url)
    wait(driver, lambda d: len(css(d, '.chart-card[data-key="train/loss"][data-points]')) == 1)
    assert set(driver.current_url.split("runs=")[1].split("&")[0].split(",")) == {
        ids["asr"][("gru", 1)], ids["asr"][("conformer", 1)]}
    assert texts(driver, ".legend .legend-item") == ["gru-s1", "conformer-s1"] or \
        texts(driver, ".legend .legend-item") == ["conformer-s1", "gru-s1"]
    series = driver.execute_script(
        "return document.querySelector('.chart-card[data-key=\"train/loss\"] .chart')"
        ".chart.series.map(s => [s.name, s.colour, s.x.length])")
    assert len(series) == 2 and series[0][1] != series[1][1] and all(s[2] > 100 for s in series)
    shoot(driver, "compare")

    click(driver, '.tab[data-tab="config"]')
    wait(driver, lambda d: css(d, '.diff-table tr.differs[data-key="model.encoder"]'))
    cells = texts(driver, '.diff-table tr[data-key="model.encoder"] td')
    assert sorted(cells) == ["conformer", "gru"]
    assert not css(driver, '.diff-table tr[data-key="optim.lr"]')  # the same in both
    shoot(driver, "compare-config")


def test_run_page_shows_images_by_step_and_sortable_tables(page, lab) -> None:
    _, ids = lab
    run_id = ids["asr"][("gru", 1)]
    driver = page(f"/runs/{run_id}?tab=images", ".media-key .logged-image img")
    key = css(driver, '.media-key[data-key="val/alignment"]')[0]
    assert key.get_attribute("data-step") == str(AUDIO_STEPS[-1])
    assert TEXTS[-1] in key.text and "60×40 L" in key.text
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('.logged-image img').naturalWidth") == 60)
    driver.execute_script("const s = document.querySelector('.media-key .step-slider');"
                          "s.value = 0; s.dispatchEvent(new Event('input'));")
    wait(driver, lambda d: css(d, ".media-key")[0].get_attribute("data-step") == "0")
    assert TEXTS[0] in css(driver, ".media-key")[0].text
    shoot(driver, "run-images")

    click(driver, '.tab[data-tab="tables"]')
    wait(driver, lambda d: css(d, ".logged-table tbody tr"))
    utts = texts(driver, ".logged-table tbody td:first-child")
    assert utts == [f"utt-{i}" for i in range(12)]  # as logged until sorted
    click(driver, '.logged-table th[data-column="wer"]')
    wers = texts(driver, ".logged-table tbody td:nth-child(3)")
    assert wers[-1] == "NaN"  # NaN sorts last, whatever the direction
    assert [float(w) for w in wers[:-1]] == sorted(float(w) for w in wers[:-1])
    click(driver, '.logged-table th[data-column="wer"]')
    wers = texts(driver, ".logged-table tbody td:nth-child(3)")
    assert [float(w) for w in wers[:-1]] == sorted((float(w) for w in wers[:-1]), reverse=True)
    assert css(driver, '.logged-table th[aria-sort="descending"]')[0].text.startswith("wer")
    assert css(driver, ".logged-table .pager")[0].text == "12 rows"
    shoot(driver, "run-tables")


def test_compare_shows_images_and_tables_side_by_side(page, lab) -> None:
    _, ids = lab
    runs = f"{ids['asr'][('gru', 1)]},{ids['asr'][('conformer', 1)]}"
    driver = page(f"/compare?runs={runs}&tab=images", ".image-grid.compare .logged-image img")
    wait(driver, lambda d: d.execute_script(
        "return [...document.querySelectorAll('.image-grid.compare img')]"
        ".filter(i => i.naturalWidth === 60).length") == 2)
    assert texts(driver, ".image-grid.compare .image-run") == ["gru-s1", "conformer-s1"]
    shoot(driver, "compare-images")
    click(driver, '.tab[data-tab="tables"]')
    wait(driver, lambda d: len(css(d, ".table-compare .logged-table")) == 2)


def test_run_page_chart_zoom_refetches_full_fidelity(page, lab) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    _, ids = lab
    card = '.chart-card[data-key="train/loss"]'
    driver = page(f"/runs/{ids['asr'][('gru', 1)]}", f"{card}[data-points]")
    assert css(driver, card)[0].get_attribute("data-downsampled") == "1"
    # the downsampled series keeps the single-step spike
    top = driver.execute_script(f"return Math.max(...document.querySelector('{card} .chart')"
                                ".chart.series[0].y)")
    assert top == pytest.approx(9.0)
    shoot(driver, "run")

    canvas = css(driver, f"{card} canvas")[0]
    width = canvas.size["width"]
    # hovering shows every series' value at that step
    ActionChains(driver).move_to_element_with_offset(canvas, width // 4, 0).perform()
    tip = wait(driver, lambda d: next((e for e in css(d, f"{card} .chart-tooltip")
                                       if e.is_displayed()), None))
    assert "gru-s1" in tip.text

    step = int(width * 0.05)  # offsets count from the canvas' centre
    ActionChains(driver).move_to_element_with_offset(canvas, -4 * step, 0).click_and_hold() \
        .move_by_offset(step, 0).move_by_offset(step, 0).release().perform()
    wait(driver, lambda d: css(d, card)[0].get_attribute("data-downsampled") == "0")
    x0, x1 = (float(canvas.get_attribute(a)) for a in ("data-x0", "data-x1"))
    assert 0 < x0 < x1 < 6000 and x1 - x0 < 1200
    points = int(css(driver, card)[0].get_attribute("data-points"))
    assert points == pytest.approx(x1 - x0, abs=3)  # every step of the window, none dropped
    assert "full fidelity" in css(driver, f"{card} .chart-info")[0].text
    ActionChains(driver).double_click(canvas).perform()
    wait(driver, lambda d: css(d, card)[0].get_attribute("data-downsampled") == "1")

    # smoothing, log scale and x = time reach every chart
    driver.execute_script("const s = document.querySelector('input.smoothing'); s.value = 0.9;"
                          "s.dispatchEvent(new Event('input'));")
    click(driver, "input.log-y")
    state = driver.execute_script(f"const c = document.querySelector('{card} .chart').chart;"
                                  "return [c.options.smoothing, c.options.logY]")
    assert state == [0.9, True]
    assert "smooth=0.9" in driver.current_url and "log=1" in driver.current_url
    driver.execute_script("const s = document.querySelector('select.x-mode'); s.value = 'time';"
                          "s.dispatchEvent(new Event('change'));")
    wait(driver, lambda d: d.execute_script(  # x is now seconds since the run started
        f"const c = document.querySelector('{card} .chart').chart;"
        "return c.series[0].x.length > 100 && c.series[0].x.at(-1) < 600"))
    assert "x=time" in driver.current_url

    # the other tabs: config, environment, artifacts, health
    click(driver, '.tab[data-tab="config"]')
    wait(driver, lambda d: "model.encoder" in texts(d, ".config-table th"))
    click(driver, '.tab[data-tab="environment"]')
    wait(driver, lambda d: css(d, ".env-grid table.kv"))
    assert "python" in texts(driver, ".env-grid table.kv th")
    assert "numpy" in texts(driver, ".packages td")
    shoot(driver, "run-environment")


def test_run_page_audio_browses_steps_and_plays_with_a_playhead(page, lab) -> None:
    _, ids = lab
    driver = page(f"/runs/{ids['asr'][('conformer', 1)]}?tab=audio", ".audio-key .audio-view")
    key = css(driver, '.audio-key[data-key="val/sample"]')[0]
    assert key.get_attribute("data-step") == str(AUDIO_STEPS[-1])
    assert "play some music please" in key.text
    driver.execute_script("const s = document.querySelector('.audio-key .step-slider');"
                          "s.value = 0; s.dispatchEvent(new Event('input'));")
    wait(driver, lambda d: css(d, ".audio-key")[0].get_attribute("data-step") == "0")
    assert "turn the lights on" in css(driver, ".audio-key")[0].text
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('.audio-view img.spectrogram').naturalWidth > 0 && "
        "document.querySelector('.audio-view .audio-visual').offsetHeight > 150"))
    driver.execute_script("document.querySelector('.audio-view audio').play()")
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('.audio-view audio').currentTime") > 0.3)
    left = driver.execute_script(
        "return parseFloat(document.querySelector('.audio-view .playhead').style.left)")
    assert left > 5
    driver.execute_script("document.querySelector('.audio-view audio').pause()")
    shoot(driver, "run-audio")


def test_compare_audio_ab_switch_keeps_the_position(page, lab) -> None:
    _, ids = lab
    runs = [ids["asr"][("gru", 1)], ids["asr"][("conformer", 1)], ids["asr"][("gru", 2)]]
    driver = page(f"/compare?runs={','.join(runs)}&tab=audio", ".sync-player .sync-item")
    assert len(css(driver, ".sync-item")) == 3
    audio = "document.querySelectorAll('.sync-item audio')"
    click(driver, ".transport .play")
    wait(driver, lambda d: d.execute_script(f"return {audio}[0].currentTime") > 0.4)
    driver.execute_script(  # note where A is at the moment B is clicked
        f"const a = {audio}; document.querySelector('.ab-group .btn:nth-child(2)')"
        ".addEventListener('click', () => { window.__before = a[0].currentTime; }, "
        "{capture: true, once: true});")
    click(driver, ".ab-group .btn:nth-child(2)")  # B
    state = driver.execute_script(
        f"const a = {audio}; return [a[0].paused, a[1].paused, window.__before, "
        "a[1].currentTime, document.querySelector('.sync-player').dataset.active]")
    assert state[0] is True and state[1] is False and state[4] == "1"
    assert state[2] > 0.4
    assert state[3] == pytest.approx(state[2], abs=0.1)  # B goes on from where A was
    wait(driver, lambda d: d.execute_script(f"return {audio}[1].currentTime") > state[3] + 0.1)
    click(driver, ".transport .play")  # pause
    assert driver.execute_script(f"return [...{audio}].every(a => a.paused)")
    shoot(driver, "compare-audio")

    # play all from t: each run's clip from the same moment, in turn
    driver.execute_script("const p = document.querySelector('.sync-player').player;"
                          "p.segmentInput.value = 0.3; p.seek(0.5); window.__seen = [];"
                          "setInterval(() => p.sequence && window.__seen.push(p.active + ':' + "
                          "p.current().audio.currentTime.toFixed(2)), 20);")
    click(driver, ".play-all")
    wait(driver, lambda d: d.execute_script(
        "return !document.querySelector('.sync-player').classList.contains('sequencing')"))
    seen = driver.execute_script("return window.__seen")
    order = [int(s.split(":")[0]) for s in seen]
    assert [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k] == [0, 1, 2]
    for who in (0, 1, 2):  # each played from t = 0.5 s for about 0.3 s
        times = [float(s.split(":")[1]) for s in seen if s.startswith(f"{who}:")]
        assert 0.45 <= times[0] <= 0.7 and 0.7 <= times[-1] <= 1.0


def test_study_and_findings_pages(page) -> None:
    driver = page("/studies", ".studies-table tbody tr")
    assert sorted(e.get_attribute("data-name") for e in css(driver, ".studies-table tbody tr")) \
        == ["encoder-ablation", "encoder-replication"]
    shoot(driver, "studies")
    click(driver, '.studies-table tr[data-name="encoder-ablation"] td.name a')
    wait(driver, lambda d: css(d, ".verdicts-table tbody tr"))
    verdicts = {r.get_attribute("data-label"): r.get_attribute("data-verdict")
                for r in css(driver, ".verdicts-table tbody tr")}
    assert verdicts == {"enc=b": "improves", "enc=c": "no detectable effect"}
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('img.forest').naturalWidth") > 0)
    statuses = [r.get_attribute("data-status") for r in css(driver, ".trials-table tbody tr")]
    assert len(statuses) == 9 and statuses.count("failed") == 1
    shoot(driver, "study")

    driver = page("/findings", ".finding")
    found = {e.find_element("css selector", "h2").text: e.get_attribute("data-contradiction")
             for e in css(driver, ".finding")}
    assert found == {"enc=b vs a": "1", "enc=c vs a": "0"}
    shoot(driver, "findings")
    click(driver, "#finding-contradictions")
    wait(driver, lambda d: len(css(d, ".finding")) == 1)
    assert "contradictions=1" in driver.current_url


def test_probe_page_highlights_the_first_divergent_layer(page, lab) -> None:
    _, ids = lab
    driver = page(f"/runs/{ids['probe']}/probe", ".probe-stats-body[data-layers]")
    assert css(driver, ".probe-stats-body")[0].get_attribute("data-layers") == str(len(LAYERS))
    assert len(css(driver, ".events-table tbody tr")) == 2
    firsts = css(driver, ".anomaly-table td.first-divergent")
    assert len(firsts) == 3
    header = texts(driver, ".anomaly-table thead th")
    for cell in firsts:
        index = driver.execute_script("return arguments[0].cellIndex", cell)
        assert header[index] == "encoder.1"
    assert "encoder.1" in css(driver, ".highlight-fact")[0].text
    # each input's z profile is a small bar plot, the stage where it enters in red
    plots = css(driver, ".anomaly-table svg.z-plot")
    assert len(plots) == 8
    bars = plots[0].find_elements("css selector", "rect")
    assert [b.get_attribute("data-stage") for b in bars] == [*LAYERS, "output"]
    assert [b.get_attribute("fill") for b in bars].count("#e03131") == 1
    assert texts(driver, ".anomaly-table td.anomaly-score")[0] == "9.5"
    assert "1/121" in css(driver, ".anomaly .card-head")[0].text
    assert len(css(driver, ".drift tbody tr.flagged")) == 3
    shoot(driver, "probe")
    click(driver, '.view-toggle [data-view="small"]')
    wait(driver, lambda d: len(css(d, ".small-multiples .chart-card")) == len(LAYERS))
    assert [e.get_attribute("data-layer") for e in css(driver, ".small-multiples .highlighted")] \
        == ["encoder.1"]


def test_api_errors_show_in_a_banner(page) -> None:
    driver = page("/runs/no-such-run", ".page-error")
    assert "Not found" in css(driver, ".page-error h1")[0].text
    banner = wait(driver, lambda d: css(d, "#banners .banner-error"))[0]
    assert "no-such-run" in banner.text


def test_the_token_prompt_signs_in_when_auth_is_on(browser, lab) -> None:
    from server_fixtures import live_server

    where, _ = lab
    store = str(where / "store")
    made = subprocess.run([sys.executable, "-m", "tympan.cli.app", "token", "create",
                           "--scope", "read", "--name", "browser-test"],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "TYMPAN_STORE": store})
    token = made.stdout.split()[0]
    with live_server(store, auth=True) as url:
        browser.get("about:blank")
        browser.get(f"{url}/runs")
        prompt = wait(browser, lambda d: css(d, "#token-prompt #token-input"))[0]
        shoot(browser, "token")
        prompt.send_keys("tympan_wrong_token")
        click(browser, "#token-submit")
        wait(browser, lambda d: css(d, ".form-error:not([hidden])"))
        prompt.clear()
        prompt.send_keys(token)
        click(browser, "#token-submit")
        wait(browser, lambda d: len(css(d, ".runs-table tbody tr")) == RUNS)
        assert not css(browser, "#token-prompt")
        assert "browser-test" in css(browser, "#who")[0].text
        # the cookie carries the token for <audio src>: a clip loads
        browser.get(f"{url}/compare?runs=" + ",".join(
            lab[1]["asr"][(e, 1)] for e in ("gru", "conformer")) + "&tab=audio")
        wait(browser, lambda d: d.execute_script(
            "const a = document.querySelector('.sync-item audio'); return a && a.readyState >= 1"))


# ---------------------------------------------------------------------------- issue 17, item 3

def _shade(driver, element) -> float:
    """The mean brightness (0-255) of what the screen shows inside ``element``."""
    import io

    from PIL import Image

    box = driver.execute_script("const r = arguments[0].getBoundingClientRect();"
                                "return [r.left, r.top, r.right, r.bottom]", element)
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    inner = [int(box[0]) + 4, int(box[1]) + 4, int(box[2]) - 4, int(box[3]) - 4]
    return float(np.asarray(shot.crop(inner)).mean())


def test_forest_plot_follows_the_dark_theme_and_findings_axes_have_ticks(page) -> None:
    driver = page("/findings", ".finding")
    for card in css(driver, ".finding"):  # each card's shared axis says what its numbers are
        ticks = [t.text for t in card.find_elements("css selector", ".forest-tick")]
        assert len(ticks) >= 3 and all(t for t in ticks)
        values = [float(t.replace("−", "-")) for t in ticks]
        assert values == sorted(values)
    driver = page("/studies/encoder-ablation", ".verdicts-table tbody tr")
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('img.forest').naturalWidth") > 0)
    light = _shade(driver, css(driver, "img.forest")[0])
    click(driver, "#theme")
    wait(driver, lambda d: d.execute_script("return document.documentElement.dataset.theme")
         == "dark")
    time.sleep(0.3)
    dark = _shade(driver, css(driver, "img.forest")[0])
    click(driver, "#theme")  # back to light for the other tests
    assert light > 180 and dark < 90, (light, dark)


def test_ab_captions_are_read_whole_on_a_laptop_screen(page, lab) -> None:
    _, ids = lab
    runs = [ids["asr"][("gru", 1)], ids["asr"][("conformer", 1)], ids["asr"][("gru", 2)]]
    driver = page(f"/compare?runs={','.join(runs)}&tab=audio", ".sync-player .sync-item")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1024, "height": 768, "deviceScaleFactor": 1,
                            "mobile": False})
    try:
        wait(driver, lambda d: len(css(d, ".sync-item .caption")) == 3)
        cut = driver.execute_script(
            "return [...document.querySelectorAll('.sync-item .caption')].filter("
            "c => c.scrollWidth > c.clientWidth + 1 || c.getBoundingClientRect().width < 40)"
            ".map(c => c.textContent)")
        assert cut == []
    finally:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1440, "height": 900, "deviceScaleFactor": 1,
                                "mobile": False})


def test_question_mark_lists_the_shortcuts(page) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = page("/runs", ".runs-table tbody tr")
    body = css(driver, "body")[0]
    body.send_keys("?")
    wait(driver, lambda d: css(d, "#shortcuts .shortcuts-table tr"))
    listed = texts(driver, "#shortcuts td.keys")
    assert "/" in listed and "?" in listed and "Space" in listed
    css(driver, "#shortcuts button")[0].send_keys(Keys.ESCAPE)
    wait(driver, lambda d: not css(d, "#shortcuts"))
    css(driver, "#run-search")[0].send_keys("?")  # typed into a field: a character, no list
    assert not css(driver, "#shortcuts")


def test_run_api_and_probe_api_agree_on_the_reports(server, lab) -> None:
    import httpx

    _, ids = lab
    run = httpx.get(f"{server}/api/runs/{ids['probe']}", headers=server.headers).json()
    probe = httpx.get(f"{server}/api/runs/{ids['probe']}/probe", headers=server.headers).json()
    summary = run["probe"]
    assert summary["available"] is True
    assert summary["anomaly"] == [r["label"] for r in probe["anomaly"]] == ["noisy-test"]
    assert summary["drift"] == [r["label"] for r in probe["drift"]]
    assert summary["events"] == len(probe["events"]) == 2
