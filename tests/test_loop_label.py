"""``tympan loop label``: the audio a serving run sampled, labelled, becomes one new batch of a
pipeline's data folder that the asr recipe trains on (docs/loop.md)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tests.server_fixtures import make_token, served
from tests.speech import speech
from tests.test_cli import assert_one_line_error, tympan_cli

import tympan
from tympan.audio.io import load
from tympan.loop.iteration import manifests_in
from tympan.probe.scorer import Verdict
from tympan.serve.engine import Answer
from tympan.serve.recording import ServingRun

SAID = ["one two three", "seven", "four five"]
HEARD = ["wun two three", "heaven", "for five"]  # the model's answers


def _serving_run(store: str) -> tuple[str, list[np.ndarray]]:
    """A serving run that kept all three requests; the second one flagged, the third louder
    than full scale (stored scaled down, with its gain)."""
    waves = [speech(text)[0].copy() for text in SAID]
    waves[2] *= 1.5 / float(np.abs(waves[2]).max())
    flagged = Verdict(score=9.0, p_value=0.004, flagged=True, alpha=0.05,
                      z={"enc.0": 9.0, "output": 1.0}, entry_layer="enc.0", outputs={})
    version = SimpleNamespace(project="asr", model="asr-digits", version=1, run_id=None)
    serving = ServingRun(version, {"model": "asr-digits"}, store=store, sample_rate=1.0)
    serving.requests(waves, 16000, [Answer({"transcript": HEARD[0]}, None),
                                    Answer({"transcript": HEARD[1]}, flagged),
                                    Answer({"transcript": HEARD[2]}, None)], [0.01] * 3)
    serving.finish()
    return serving.id, waves


def _sheet(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_labelled_serving_run_is_one_new_batch_the_recipe_reads(tmp_path: Path) -> None:
    from recipes.asr_ctc.train import Config, extra_utterances

    store = str(tmp_path / "store")
    run_id, waves = _serving_run(store)
    printed = tympan_cli("--store", store, "loop", "label", run_id)
    assert printed.code == 0, printed
    rows = _sheet(printed.stdout)
    assert [(r["clip"], r["verdict"], r["transcript"], r["keep"]) for r in rows] == [
        ("requests/sampled@0", "sampled", HEARD[0], ""),
        ("requests/flagged@1", "flagged", HEARD[1], ""),
        ("requests/sampled@2", "sampled", HEARD[2], "")]
    assert rows[1]["p_value"] == "0.004" and rows[0]["p_value"] == ""

    # The labeller corrects two answers, keeps them and leaves the second clip out.
    rows[0].update(transcript=SAID[0], keep="yes")
    rows[1].update(keep="no")
    rows[2].update(transcript=f"  {SAID[2]} ", keep="Yes")
    labels = _write(tmp_path / "sheet.csv", rows)
    data = tmp_path / "data"
    data.mkdir()
    (data / "old.jsonl").write_text("")  # a batch the loop already had
    before = set(manifests_in(data))
    out = data / "served-1"
    done = tympan_cli("--store", store, "loop", "label", run_id, "--labels", str(labels),
                      "--out", str(out))
    assert done.code == 0, done
    assert "wrote 2 labelled clip(s)" in done.stdout

    new = set(manifests_in(data)) - before
    assert new == {out / "manifest.jsonl"}
    read = extra_utterances(Config(extra_train=str(out / "manifest.jsonl")))
    assert [u.text for u, _ in read] == [SAID[0], SAID[2]]
    assert {u.split for u, _ in read} == {"train"}
    record = tympan.load_run(run_id, store=store)
    for (u, file), step, wave in zip(read, (0, 2), (waves[0], waves[2]), strict=True):
        samples, rate = load(file, mono=True)
        stored, stored_rate, _ = record.read_audio("requests/sampled", step)
        assert rate == stored_rate == u.sample_rate == 16000
        np.testing.assert_array_equal(samples, stored.astype(np.float32))  # the same samples
        np.testing.assert_allclose(samples, wave, atol=1e-4 * max(1.0, np.abs(wave).max()))
        assert u.duration == pytest.approx(len(wave) / 16000)
    assert np.abs(load(read[1][1])[0]).max() > 1.4  # the loud clip kept its level

    again = tympan_cli("--store", store, "loop", "label", run_id, "--labels", str(labels),
                       "--out", str(out))
    assert_one_line_error(again, "already holds a manifest.jsonl")


def test_sheets_that_would_make_a_wrong_batch_are_refused(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    run_id, _ = _serving_run(store)
    rows = _sheet(tympan_cli("--store", store, "loop", "label", run_id).stdout)

    def label(sheet: list[dict[str, str]], *extra: str) -> object:
        path = _write(tmp_path / "sheet.csv", sheet)
        return tympan_cli("--store", store, "loop", "label", run_id, "--labels", str(path),
                          "--out", str(tmp_path / "batch"), *extra)

    unknown = [*rows, {**rows[0], "clip": "requests/sampled@99"}]
    assert_one_line_error(label(unknown), "unknown clip id(s) requests/sampled@99")
    empty = [{**rows[0], "transcript": " ", "keep": "yes"}, rows[1]]
    assert_one_line_error(label(empty), "requests/sampled@0", "empty transcript")
    odd = [{**rows[0], "keep": "maybe"}]
    assert_one_line_error(label(odd), "keep='maybe'", "yes to keep it")
    assert_one_line_error(label(rows), "no row is marked keep=yes")
    assert not (tmp_path / "batch").exists()  # nothing written by a refused sheet

    with tympan.init(project="asr", name="training", store=store) as training:
        pass
    assert_one_line_error(tympan_cli("--store", store, "loop", "label", training.id),
                          "is not a serving run")
    assert_one_line_error(tympan_cli("--store", store, "loop", "label", run_id, "--out",
                                     str(tmp_path / "batch")), "--labels FILE and --out DIR")


def test_labels_a_serving_run_stored_behind_a_team_server(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        run_id, _ = _serving_run(server.store)
        env = {"TYMPAN_STORE": server.url, "TYMPAN_TOKEN": make_token(server.store)}
        rows = _sheet(tympan_cli("loop", "label", run_id, env=env).stdout)
        assert [r["transcript"] for r in rows] == HEARD
        rows[1].update(transcript="seven", keep="yes")
        out = tmp_path / "data" / "served"
        done = tympan_cli("loop", "label", run_id, "--labels",
                          str(_write(tmp_path / "sheet.csv", rows)), "--out", str(out), env=env)
    assert done.code == 0, done
    assert (out / "manifest.jsonl").read_text().count("\n") == 1
    assert load(out / "000001-flagged.wav")[0].shape == speech(SAID[1])[0].shape
