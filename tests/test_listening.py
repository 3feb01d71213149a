"""Blind preference tests of a study's arms: pairs, judgements stored per listener, the
preference rate with its interval, the study metric they become, the routes (blind clips,
write scope), the 0006 migration, and the page in a real Chromium.

The study is real: a toy recipe runs as the trials' child processes (baseline and arm
``enc=b``, two seeds) and logs two clips of the same texts per run, captioned with the text
and an arm-specific note that listeners must not see.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect
from tests.test_ui_browser import _require_browser, browser, click, css, shoot, texts, wait

import tympan
from tympan.errors import InvalidInputError, NotFoundError
from tympan.store import open_store, upgrade_store
from tympan.store.versioning import HEAD, MIGRATIONS
from tympan.study import listening
from tympan.study.analysis import analyse
from tympan.study.records import load_stored_study
from tympan.study.runner import run_study
from tympan.study.spec import load_study
from tympan.track.stores import close_stores, shared_store

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

__all__ = ["browser"]  # the module-scoped Chromium of the UI tests, shared here

TOY = """\
import sys
import numpy as np
import tympan

args = dict(a.split("=", 1) for a in sys.argv[1:])
pitch = {"a": 220.0, "b": 330.0}[args["enc"]]
with tympan.init(project="listen", config=args) as run:
    t = np.arange(8000) / 16000
    for step in (0, 5):
        for k, text in enumerate(["one two three", "four five"]):
            tone = 0.3 * np.sin(2 * np.pi * (pitch + 20 * k + step) * t).astype(np.float32)
            run.log_audio(f"test/clip{k}", tone, 16000, step=step,
                          caption=f'{text} · heard "{args["enc"]} {k}"')
    run.log({"test/score": 1.0}, step=5)
"""

STUDY = """\
name: listen
command: python train.py
factors:
  enc: {levels: [a, b], baseline: a}
seeds: 2
metrics:
  - {name: score, split: test, direction: higher}
  - {name: preference, split: listen, direction: higher}
"""


def make_study(folder: Path, store: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(TOY)
    (folder / "study.yaml").write_text(textwrap.dedent(STUDY))
    stored = run_study(load_study(folder / "study.yaml"), store=store, workers=2)
    assert {t.status for t in stored.current_trials()} == {"finished"}
    close_stores()
    return stored.id


@pytest.fixture(scope="module")
def study_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store holding the finished toy study (shared: judgements are per test)."""
    where = tmp_path_factory.mktemp("listen")
    store = str(where / "store")
    make_study(where / "study", store)
    return store


def stored_study(store: str):
    return load_stored_study(shared_store(store), "listen")


def test_pairs_are_seed_matched_clips_at_the_last_step_with_only_the_shared_text(
        study_store: str) -> None:
    stored = stored_study(study_store)
    assert listening.test_arms(stored) == ["enc=b"]
    pairs = listening.pairs_for(stored, "enc=b")
    assert [p.id for p in pairs] == ["0:test/clip0", "0:test/clip1", "1:test/clip0",
                                     "1:test/clip1"]
    runs = {(t.arm, t.seed): t.run_id for t in stored.current_trials()}
    for p in pairs:
        assert (p.arm_run, p.baseline_run) == (runs[("enc=b", p.seed)],
                                                runs[("baseline", p.seed)])
        arm_clips = [s for s in tympan.load_run(p.arm_run, store=study_store).audio_samples()
                     if s.key == p.key]
        assert p.arm_sample == max(arm_clips, key=lambda s: s.step).id  # the last step's
        assert p.text in ("one two three", "four five")  # not the arm-specific note
    with pytest.raises(NotFoundError, match="no arm 'enc=c'.*its arms: enc=b"):
        listening.pairs_for(stored, "enc=c")
    # Every listener gets every pair, in an order (and clip order) of their own.
    orders = {name: [p.id for p in listening.ordered_pairs(stored, "enc=b", name)]
              for name in ("ann", "bob", "cyd", "dee")}
    assert all(sorted(o) == sorted(p.id for p in pairs) for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) > 1
    firsts = {p.arm_first(name, stored.id, "enc=b") for p in pairs for name in orders}
    assert firsts == {True, False}


def test_judgements_are_kept_per_listener_and_give_a_rate_with_an_interval(
        tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    make_study(tmp_path / "study", store)
    handle = shared_store(store)
    stored = load_stored_study(handle, "listen")
    pairs = listening.pairs_for(stored, "enc=b")

    def prefer(listener: str, pair: listening.Pair, side: str) -> None:
        arm_is_1 = pair.arm_first(listener, stored.id, "enc=b")
        choice = 1 if (side == "arm") == arm_is_1 else 2
        listening.record_preference(handle, stored, "enc=b", listener, pair.id, choice, "tok1")

    for pair in pairs:
        prefer("ann", pair, "arm")
    prefer("bob", pairs[0], "baseline")
    prefer("bob", pairs[0], "arm")  # changed their mind: replaces, not adds
    prefer("bob", pairs[1], "baseline")
    rows = listening.judgements(handle, stored.id, "enc=b")
    assert len(rows) == 6
    assert {(r.listener, r.token_id) for r in rows} == {("ann", "tok1"), ("bob", "tok1")}
    assert all(r.shown_first in ("arm", "baseline") for r in rows)
    result = listening.preference_result(handle, stored, "enc=b")
    assert (result.judgements, result.listeners, result.prefer_arm) == (6, 2, 5)
    assert result.rate == pytest.approx(5 / 6)
    assert result.low < result.rate <= result.high <= 1.0
    # As a listener sees it: what they chose, as they heard it; never the arm.
    view = {p.id: p.choice for p in listening.listener_pairs(handle, stored, "enc=b", "bob")}
    expected = 1 if pairs[0].arm_first("bob", stored.id, "enc=b") else 2
    assert view[pairs[0].id] == expected and view[pairs[2].id] is None
    with pytest.raises(InvalidInputError, match="say 1 or 2"):
        listening.record_preference(handle, stored, "enc=b", "ann", pairs[0].id, 3)
    with pytest.raises(InvalidInputError, match="listener"):
        listening.record_preference(handle, stored, "enc=b", "  ", pairs[0].id, 1)
    with pytest.raises(NotFoundError, match="no pair"):
        listening.record_preference(handle, stored, "enc=b", "ann", "9:test/clip0", 1)

    # The study's metric: per arm run, the share preferring it; baselines 0.5.
    analysis = analyse(load_stored_study(handle, "listen"))
    by_trial = {(t.trial.arm, t.trial.seed): t.values["listen/preference"]
                for t in analysis.trials}
    seed0 = [r for r in rows if r.seed == 0]
    assert by_trial[("enc=b", 0)] == pytest.approx(
        sum(r.choice == "arm" for r in seed0) / len(seed0))
    assert by_trial[("baseline", 0)] == by_trial[("baseline", 1)] == 0.5
    (pref,) = [c for c in analysis.comparisons if c.metric.key == "listen/preference"]
    assert pref.effect.estimate == pytest.approx(
        (by_trial[("enc=b", 0)] + by_trial[("enc=b", 1)]) / 2 - 0.5)


def test_a_0005_store_upgrades_to_0006_keeping_its_studies(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    store = str(tmp_path / "store")
    study_id = make_study(tmp_path / "study", store)
    handle = open_store(store)
    with handle.engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
        assert "preferences" not in inspect(conn).get_table_names()
    handle.close()
    close_stores()
    assert upgrade_store(store)[:2] == ("0005", HEAD)
    with open_store(store) as upgraded, upgraded.read() as conn:
        assert "preferences" in inspect(conn).get_table_names()
    assert stored_study(store).id == study_id
    assert len(listening.pairs_for(stored_study(store), "enc=b")) == 4


@pytest.mark.postgres
def test_judgements_on_postgresql(pg_database: str, tmp_path: Path) -> None:
    make_study(tmp_path / "study", pg_database)
    handle = shared_store(pg_database)
    stored = load_stored_study(handle, "listen")
    pair = listening.pairs_for(stored, "enc=b")[0]
    for choice in (1, 2, 2):  # the last one stands
        listening.record_preference(handle, stored, "enc=b", "ann", pair.id, choice)
    (row,) = listening.judgements(handle, stored.id)
    assert (row.choice == row.shown_first) is False
    assert listening.preference_result(handle, stored, "enc=b").judgements == 1


# ---------------------------------------------------------------------------- the routes

@pytest.fixture(scope="module")
def server(study_store: str) -> Iterator[str]:
    from tests.server_fixtures import live_server

    with live_server(study_store, auth=False) as url:
        yield url


def test_routes_serve_clips_blind_and_record_judgements(server: str) -> None:
    base = f"{server}/api/studies/listen/listening"
    with httpx.Client(headers=server.headers) as client:  # `tympan ui`'s launch token
        check_routes(client, base)


def check_routes(client: httpx.Client, base: str) -> None:
    tests = client.get(base).json()
    assert [(t["arm"], t["pairs"]) for t in tests["tests"]] == [("enc=b", 4)]
    view = client.get(f"{base}/enc=b", params={"listener": "eve"}).json()
    first = view["pairs"][0]
    assert set(first) == {"id", "text", "choice"}  # no run, sample or arm
    clips = [client.get(f"{base}/enc=b/clip.wav",
                        params={"listener": "eve", "pair": first["id"], "position": n})
             for n in (1, 2)]
    assert [c.headers["content-type"] for c in clips] == ["audio/wav", "audio/wav"]
    assert clips[0].content != clips[1].content  # the two arms' clips
    done = client.post(f"{base}/enc=b", json={"listener": "eve", "pair": first["id"],
                                               "choice": 2})
    assert done.status_code == 200 and done.json()["result"]["judgements"] >= 1
    again = client.get(f"{base}/enc=b", params={"listener": "eve"}).json()
    assert again["pairs"][0]["choice"] == 2
    bad = client.post(f"{base}/enc=b", json={"listener": "eve", "pair": first["id"],
                                              "choice": 3})
    assert bad.status_code == 422
    missing = client.get(f"{base}/enc=z", params={"listener": "eve"})
    assert missing.status_code == 404 and "no arm 'enc=z'" in missing.json()["error"]["message"]


def test_recording_a_judgement_needs_write_scope(tmp_path: Path, capsys) -> None:
    from tests.server_fixtures import live_server
    from tests.test_server_auth import create_token

    store = str(tmp_path / "store")
    make_study(tmp_path / "study", store)
    reader = create_token(capsys, store, "--scope", "read")
    writer = create_token(capsys, store, "--scope", "write")
    with live_server(store) as url:
        base = f"{url}/api/studies/listen/listening/enc=b"
        pair = httpx.get(base, params={"listener": "ann"},
                         headers={"Authorization": f"Bearer {reader}"}).json()["pairs"][0]
        body = {"listener": "ann", "pair": pair["id"], "choice": 1}
        refused = httpx.post(base, json=body, headers={"Authorization": f"Bearer {reader}"})
        assert refused.status_code == 403
        done = httpx.post(base, json=body, headers={"Authorization": f"Bearer {writer}"})
        assert done.status_code == 200
    handle = shared_store(store)
    (row,) = listening.judgements(handle, stored_study(store).id)
    assert row.token_id == writer.split("_")[1]  # who recorded it, for the audit


# ---------------------------------------------------------------------------- the page

def disabled(driver) -> list[bool]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.choose')].map(b => b.disabled)")


def test_listening_page_plays_both_clips_then_records_each_choice(browser, server: str,
                                                                  study_store: str) -> None:
    _require_browser()
    browser.get(server.sign_in_link)  # what `tympan ui` opens: the cookie, then the page
    browser.get(f"{server}/studies/listen")
    wait(browser, lambda d: css(d, "#listen-link"))
    click(browser, "#listen-link")
    wait(browser, lambda d: css(d, "#listener"))
    listener = css(browser, "#listener")[0]
    listener.clear()
    listener.send_keys("page-listener")
    click(browser, "#listen-start")
    for judged in range(4):
        wait(browser, lambda d: css(d, ".listen-pair .play"))
        assert texts(browser, ".listen-status span")[0] == f"{judged} of 4 pairs judged"
        assert texts(browser, ".listen-text")[0].strip("“”") in ("one two three", "four five")
        assert disabled(browser) == [True, True]  # not before both clips were played
        if judged == 0:
            shoot(browser, "listening-test")
        click(browser, '.play[data-position="1"]')
        click(browser, '.play[data-position="2"]')
        wait(browser, lambda d: disabled(d) == [False, False])
        pair = browser.execute_script(
            "return document.querySelector('.listen-pair').dataset.pair")
        click(browser, f'.choose[data-position="{1 + judged % 2}"]')
        wait(browser, lambda d, p=pair: not d.execute_script(
            "return document.querySelector(`.listen-pair[data-pair=\"${arguments[0]}\"]`)", p))
    wait(browser, lambda d: css(d, ".listen-result .pref-rate"))
    assert texts(browser, ".listen-status span")[0] == "4 of 4 pairs judged"
    assert "interval" in texts(browser, ".pref-interval")[0]
    shoot(browser, "listening-result")
    mine = [r for r in listening.judgements(shared_store(study_store),
                                            stored_study(study_store).id)
            if r.listener == "page-listener"]
    assert len(mine) == 4


def test_the_pair_on_the_listening_page_comes_back_on_reload(browser, server: str,
                                                             study_store: str) -> None:
    _require_browser()
    browser.get(server.sign_in_link)
    study = f"{server}/studies/listen/listen"
    browser.get(f"{study}?pair=3&listener=pair-linker")  # a shared link to the third pair
    wait(browser, lambda d: css(d, ".listen-pair"))
    assert texts(browser, ".listen-pair h2")[0] == "Pair 3 of 4"
    click(browser, '.listen-progress .dot[title="pair 2"]')
    wait(browser, lambda d: texts(d, ".listen-pair h2")[0] == "Pair 2 of 4")
    assert "pair=2" in browser.current_url
    browser.refresh()
    wait(browser, lambda d: css(d, ".listen-pair"))
    assert texts(browser, ".listen-pair h2")[0] == "Pair 2 of 4"
