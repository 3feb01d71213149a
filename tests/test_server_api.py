"""The read API against a real server process over a store of real runs: filters, sorting,
paging, groups with their intervals, downsampled series, audio, images and tables, artifacts,
compare, studies, findings, the probe, and project-scoped tokens."""

from __future__ import annotations

import io
import json
import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from scipy import stats as scipy_stats

import tympan
from server_fixtures import live_server
from speech import speech
from test_study_report import make_study
from tympan.store import open_store, tokens
from tympan.study.analysis import StudyAnalysis
from tympan.study.findings import record_findings

SPIKE_STEP = 12_345
POINTS = 20_000
WER = {("gru", 0): 0.21, ("gru", 1): 0.23, ("gru", 2): 0.22,
       ("conv", 0): 0.30, ("conv", 1): 0.26, ("conv", 2): 0.31}
ANOMALY = {"label": "noisy", "alpha": 0.05, "layers": ["enc.0", "enc.1"],
           "inputs": [{"id": "utt-1", "p_value": 0.01, "flagged": True,
                       "first_divergent_layer": "enc.1", "scores": {"enc.0": 1.0, "enc.1": 9.0},
                       "p_values": {"enc.0": 0.4, "enc.1": 0.01}},
                      {"id": "utt-2", "p_value": 0.6, "flagged": False,
                       "first_divergent_layer": None, "scores": {"enc.0": 0.5, "enc.1": 0.4},
                       "p_values": {"enc.0": 0.7, "enc.1": 0.6}}]}
EVENTS = [{"step": 30, "layer": "enc.1", "rule": "dead_units", "value": 0.97,
           "message": "97% of enc.1 is zero", "phase": "forward"},
          {"step": 10, "layer": "enc.0", "rule": "nonfinite", "value": 1.0,
           "message": "NaN in enc.0", "phase": "forward"}]


class Lab:
    """The populated store: what was logged, to check what the API returns against."""

    def __init__(self, root: Path) -> None:
        self.study: StudyAnalysis = make_study(root, "toy", "[a, b]", seeds=3)
        self.store = str(root / "store")
        self.runs: dict[tuple[str, int], str] = {}
        self.audio: dict[str, np.ndarray] = {}
        self.sample_rate = 16000
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TYMPAN_CAPTURE_ENV", "0")
            for (encoder, seed), wer in WER.items():
                config = {"model": {"encoder": encoder, "layers": 4}, "lr": 0.001, "seed": seed}
                with tympan.init(project="asr", name=f"{encoder}-{seed}", config=config,
                                 tags=["sweep", encoder], store=self.store) as run:
                    run.log({"val/wer": wer + 0.1, "train/loss": 2.0}, step=0)
                    run.log({"val/wer": wer, "train/loss": 1.0 + seed}, step=100)
                    text = "turn the lights on" if seed == 0 else "play some music"
                    wave, rate = speech(text, sample_rate=self.sample_rate)
                    run.log_audio("val/sample", wave, rate, step=100, caption=text)
                    if encoder == "gru" and seed == 0:
                        run.log_audio("val/sample", wave * 2.5, rate, step=200)  # louder than 1
                    if seed < 2:  # an attention map and an error table per run
                        run.log_image("val/attention", attention_map(seed), step=100,
                                      caption=text)
                        run.log_table("val/errors", [[text, wer, float("nan")]],
                                      columns=["utt", "wer", "cer"], step=100)
                    self.audio[run.id] = np.asarray(wave)
                    self.runs[(encoder, seed)] = run.id
            with tympan.init(project="asr", name="long", config={"lr": 0.01},
                             tags=["long"], store=self.store) as run:
                values = np.sin(np.arange(POINTS) / 500.0) * 0.1 + 1.0
                values[SPIKE_STEP] = 50.0
                for step, value in enumerate(values.tolist()):
                    run.log({"train/loss": value}, step=step)
                run.log({"probe/enc.0/mean": 0.1, "probe/enc.1/mean": 0.5,
                         "probe/enc.0/std": 1.0}, step=0)
                run.log({"probe/enc.0/mean": 0.2, "probe/enc.1/mean": 0.7}, step=10)
                run.log_artifact(json.dumps(EVENTS).encode(), name="probe/events.json")
                run.log_artifact(json.dumps(ANOMALY).encode(), name="probe/anomaly/noisy.json")
                run.log_artifact(b"# notes\n", name="notes/readme.md", media_type="text/markdown")
                self.long = run.id
            try:
                with tympan.init(project="asr", name="broken", config={"lr": 1.0},
                                 store=self.store) as run:
                    run.log({"train/loss": float("nan")}, step=0)
                    raise RuntimeError("diverged")
            except RuntimeError:
                pass
            self.failed = run.id
        with tympan.init(project="secret", name="hidden", config={"lr": 0.5},
                         store=self.store) as run:  # captures its environment
            run.log({"val/wer": 0.5}, step=0)
            run.log_audio("val/sample", speech("hello")[0], 16000, step=0)
            run.log_artifact(b"top secret", name="secret.txt")
            self.secret = run.id
        with open_store(self.store) as store:
            record_findings(store, self.study)
            with store.write() as conn:
                self.asr_token, _ = tokens.create(conn, "read", project="asr")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def api(lab: Lab) -> Iterator[httpx.Client]:
    with live_server(lab.store, auth=False) as url, \
            httpx.Client(base_url=url, headers=url.headers, timeout=30) as client:
        yield client


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_projects_count_their_runs(api: httpx.Client) -> None:
    projects = {p["name"]: p["runs"] for p in get(api, "/api/projects")["projects"]}
    assert projects["asr"] == 8 and projects["secret"] == 1 and projects["toy"] == 6


def test_runs_filters(api: httpx.Client, lab: Lab) -> None:
    page = get(api, "/api/runs", project="asr")
    assert page["total"] == 8
    assert {"model.encoder", "model.layers", "lr", "seed"} <= set(page["config_keys"])
    assert {"val/wer", "train/loss", "probe/enc.0/mean"} <= set(page["metric_keys"])
    gru = get(api, "/api/runs", project="asr", where="model.encoder=gru")
    assert {r["id"] for r in gru["runs"]} == {lab.runs[("gru", s)] for s in range(3)}
    assert gru["runs"][0]["config"]["model.encoder"] == "gru"
    numeric = get(api, "/api/runs", project="asr", where=["lr=1e-3", "seed=2"])
    assert {r["id"] for r in numeric["runs"]} == {lab.runs[("gru", 2)], lab.runs[("conv", 2)]}
    tagged = get(api, "/api/runs", tag=["sweep", "conv"])
    assert {r["name"] for r in tagged["runs"]} == {"conv-0", "conv-1", "conv-2"}
    failed = get(api, "/api/runs", status="failed,crashed")
    assert [r["id"] for r in failed["runs"]] == [lab.failed]
    assert get(api, "/api/runs", q="LON")["runs"][0]["id"] == lab.long
    assert get(api, "/api/runs", q=lab.secret[:6])["runs"][0]["name"] == "hidden"
    assert get(api, "/api/runs", project="nope")["total"] == 0
    bad = api.get("/api/runs", params={"where": "model.encoder ="})  # no value
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "InvalidInputError"
    typo = api.get("/api/runs", params={"project": "asr", "where": "model.encodr = gru"})
    assert typo.status_code == 400 and "model.encoder" in typo.json()["error"]["message"]
    assert api.get("/api/runs", params={"status": "sleeping"}).status_code == 400


def test_runs_sort_and_paging(api: httpx.Client, lab: Lab) -> None:
    by_wer = get(api, "/api/runs", project="asr", sort="metric:val/wer", limit=3)
    assert by_wer["total"] == 8 and len(by_wer["runs"]) == 3
    assert [r["metrics"]["val/wer"]["last"] for r in by_wer["runs"]] == [0.21, 0.22, 0.23]
    desc = get(api, "/api/runs", project="asr", sort="val/wer.max", desc="true")["runs"]
    assert desc[0]["metrics"]["val/wer"]["max"] == pytest.approx(0.41)
    assert [r["id"] for r in desc[-2:]] and "val/wer" not in desc[-1]["metrics"]  # missing last
    pages = [get(api, "/api/runs", sort="metric:val/wer", limit=4, offset=o)["runs"]
             for o in range(0, 24, 4)]
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == len(set(ids)) == 8 + 1 + 6  # asr, secret, toy: each run once
    by_name = get(api, "/api/runs", project="asr", sort="name")["runs"]
    assert [r["name"] for r in by_name] == sorted(r["name"] for r in by_name)
    by_config = get(api, "/api/runs", project="asr", sort="config:model.encoder",
                    where="lr=0.001")["runs"]
    assert [r["config"]["model.encoder"] for r in by_config] == ["conv"] * 3 + ["gru"] * 3
    by_seed = get(api, "/api/runs", project="asr", sort="config:seed", desc=True)["runs"]
    assert [r["config"].get("seed") for r in by_seed][:2] == [2, 2]
    assert by_seed[-1]["config"].get("seed") is None
    newest = get(api, "/api/runs", project="asr")["runs"]
    assert [r["started_at"] for r in newest] == sorted((r["started_at"] for r in newest),
                                                       reverse=True)


def test_groups_have_the_t_interval_numpy_gives(api: httpx.Client, lab: Lab) -> None:
    result = get(api, "/api/runs/groups", project="asr", by="model.encoder",
                 metric="val/wer", where="lr=0.001")
    assert result["total"] == 6 and result["summary"] == "last"
    groups = {g["values"]["model.encoder"]: g for g in result["groups"]}
    assert list(groups) == ["gru", "conv"]  # smallest mean first
    for encoder, group in groups.items():
        values = np.array([WER[(encoder, s)] for s in range(3)])
        half = scipy_stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
        assert group["n"] == 3
        assert group["mean"] == pytest.approx(values.mean())
        assert group["std"] == pytest.approx(values.std(ddof=1))
        assert group["low"] == pytest.approx(values.mean() - half)
        assert group["high"] == pytest.approx(values.mean() + half)
        assert [m["seed"] for m in group["runs"]] == [0, 1, 2]
        assert [m["value"] for m in group["runs"]] == pytest.approx(values.tolist())
    two = get(api, "/api/runs/groups", project="asr", by="model.encoder,seed",
              metric="val/wer", desc=True)
    assert len(two["groups"]) == 6 + 1  # the long and broken runs: no encoder, no seed
    assert two["groups"][-1]["values"] == {"model.encoder": None, "seed": None}
    assert two["groups"][-1]["n"] == 0 and two["groups"][-1]["mean"] is None
    assert len(two["groups"][-1]["runs"]) == 2
    assert two["groups"][0]["values"] == {"model.encoder": "conv", "seed": 2}
    assert two["groups"][0]["n"] == 1 and two["groups"][0]["low"] is None
    assert api.get("/api/runs/groups", params={"by": ""}).status_code == 400


def test_long_series_is_downsampled_keeping_the_spike(api: httpx.Client, lab: Lab) -> None:
    url = f"/api/runs/{lab.long}/metrics/train/loss"
    whole = get(api, url, points=1000)
    assert whole["count"] == whole["total"] == POINTS and whole["downsampled"]
    assert len(whole["x"]) <= 1000 and whole["method"] == "minmax"
    assert max(whole["y"]) == 50.0 and whole["x"][whole["y"].index(50.0)] == SPIKE_STEP
    assert whole["x"] == sorted(whole["x"]) and whole["x"][0] == 0
    assert whole["x"][-1] == POINTS - 1 and whole["x_max"] == POINTS - 1
    zoom = get(api, url, points=1000, start=SPIKE_STEP - 100, end=SPIKE_STEP + 99)
    assert not zoom["downsampled"] and zoom["total"] == 200
    assert zoom["x"] == list(range(SPIKE_STEP - 100, SPIKE_STEP + 100))
    expected = np.sin(np.arange(SPIKE_STEP - 100, SPIKE_STEP + 100) / 500.0) * 0.1 + 1.0
    expected[100] = 50.0
    assert zoom["y"] == pytest.approx(expected.tolist())
    timed = get(api, url, x="time", points=100)
    assert timed["x_axis"] == "time" and 0 <= timed["x"][0] <= timed["x"][-1] < 600
    broken = get(api, f"/api/runs/{lab.failed}/metrics/train/loss")
    assert broken["y"] == [None]
    summaries = {m["key"]: m for m in get(api, f"/api/runs/{lab.long}/metrics")["metrics"]}
    assert summaries["train/loss"]["max"] == 50.0
    assert summaries["train/loss"]["max_step"] == SPIKE_STEP
    missing = api.get(f"/api/runs/{lab.long}/metrics/val/nothing")
    assert missing.status_code == 404 and "val/nothing" in missing.json()["error"]["message"]


def test_run_detail(api: httpx.Client, lab: Lab) -> None:
    run = get(api, f"/api/runs/{lab.runs[('gru', 0)]}")
    assert run["config"] == {"model": {"encoder": "gru", "layers": 4}, "lr": 0.001, "seed": 0}
    assert run["config_flat"]["model.encoder"] == "gru" and run["status"] == "finished"
    assert run["audio"] == {"count": 2, "keys": {"val/sample": [100, 200]}}
    assert run["metrics"]["val/wer"]["last"] == 0.21 and run["study"] is None
    assert run["environment"] is None and run["probe"]["available"] is False
    secret = get(api, f"/api/runs/{lab.secret}")
    assert secret["environment"]["python"]["version"]
    assert secret["environment_facts"]["python.version"] == secret["environment"]["python"][
        "version"]
    long = get(api, f"/api/runs/{lab.long}")
    assert long["probe"] == {"available": True, "runs": [], "layers": 2, "events": 2,
                             "anomaly": ["noisy"], "drift": [], "profile": False}
    assert long["children"] == []
    assert {"probe/events.json", "notes/readme.md"} <= {a["path"] for a in long["artifacts"]}
    broken = get(api, f"/api/runs/{lab.failed}")
    assert broken["status"] == "failed" and "diverged" in broken["error"]
    assert broken["metrics"]["train/loss"]["last"] == "NaN"
    trial = next(t for t in lab.study.trials if t.trial.run_id)
    linked = get(api, f"/api/runs/{trial.trial.run_id}")
    assert linked["study"]["name"] == "toy" and linked["study"]["trial"]["arm"] == trial.trial.arm
    gone = api.get("/api/runs/doesnotexist")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "RunNotFoundError"


def test_audio_decodes_to_what_was_logged(api: httpx.Client, lab: Lab) -> None:
    run_id = lab.runs[("gru", 0)]
    listing = get(api, f"/api/runs/{run_id}/audio")
    assert [(s["key"], s["step"]) for s in listing["samples"]] == [("val/sample", 100),
                                                                   ("val/sample", 200)]
    assert listing["samples"][0]["caption"] == "turn the lights on"
    assert get(api, f"/api/runs/{run_id}/audio", step=200)["samples"][0]["step"] == 200
    logged = lab.audio[run_id]
    for sample, scale in zip(listing["samples"], (1.0, 2.5), strict=True):
        response = api.get(f"/api/runs/{run_id}/audio/{sample['sample_id']}.wav")
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        data, rate = soundfile.read(io.BytesIO(response.content), dtype="float32")
        assert rate == lab.sample_rate and data.shape == logged.shape
        assert np.abs(data - logged * scale).max() < 1e-3 * scale  # FLAC's 16-bit steps
    # A player seeks with byte ranges: 206 with exactly those bytes, 416 past the end.
    url = f"/api/runs/{run_id}/audio/{listing['samples'][0]['sample_id']}.wav"
    whole = api.get(url).content
    part = api.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == whole[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(whole)}"
    tail = api.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    assert api.get(url, headers={"Range": "bytes=2-"}).content == whole[2:]
    beyond = api.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416 and beyond.json()["error"]["message"].startswith("range")
    png = api.get(f"/api/runs/{run_id}/audio/{listing['samples'][0]['sample_id']}"
                  "/spectrogram.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    width, height, pixels = decode_png(png.content)
    assert height == 80 and width == pytest.approx(len(logged) / 160, abs=2)
    assert pixels.std() > 10  # speech, not a flat image
    peaks = get(api, f"/api/runs/{run_id}/audio/{listing['samples'][0]['sample_id']}"
                     "/waveform.json", points=100)
    assert peaks["points"] == len(peaks["min"]) == len(peaks["max"]) <= 100
    assert max(peaks["max"]) == pytest.approx(float(logged.max()), abs=1e-3)
    assert min(peaks["min"]) == pytest.approx(float(logged.min()), abs=1e-3)
    other = get(api, f"/api/runs/{lab.secret}/audio")["samples"][0]["sample_id"]
    assert api.get(f"/api/runs/{run_id}/audio/{other}.wav").status_code == 404


def attention_map(seed: int) -> np.ndarray:
    """A diagonal alignment in logits (outside [0, 1], so stored scaled)."""
    return np.eye(6, 10) * (4.0 + seed) - 1.0


def test_images_and_tables(api: httpx.Client, lab: Lab) -> None:
    run_id = lab.runs[("gru", 1)]
    run = get(api, f"/api/runs/{run_id}")
    assert run["images"] == {"count": 1, "keys": {"val/attention": [100]}}
    assert run["tables"] == {"count": 1, "keys": {"val/errors": [100]}}
    assert get(api, f"/api/runs/{lab.runs[('gru', 2)]}")["images"] == {"count": 0, "keys": {}}
    (image,) = get(api, f"/api/runs/{run_id}/images")["images"]
    assert image == {"image_id": image["image_id"], "key": "val/attention", "step": 100,
                     "caption": "play some music", "width": 10, "height": 6, "mode": "L",
                     "scaled_from": [-1.0, 4.0]}
    assert get(api, f"/api/runs/{run_id}/images", step=7)["images"] == []
    response = api.get(f"/api/runs/{run_id}/images/{image['image_id']}.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    (table,) = get(api, f"/api/runs/{run_id}/tables", key="val/errors")["tables"]
    assert (table["columns"], table["types"], table["rows"]) == (
        ["utt", "wer", "cer"], ["string", "number", "number"], 1)
    rows = get(api, f"/api/runs/{run_id}/tables/{table['table_id']}")
    assert rows["rows"] == [["play some music", 0.23, "NaN"]] and rows["step"] == 100
    # An item id of another run, or of the other kind, is not found.
    assert api.get(f"/api/runs/{run_id}/tables/{image['image_id']}").status_code == 404
    assert api.get(f"/api/runs/{lab.long}/images/{image['image_id']}.png").status_code == 404


def decode_png(data: bytes) -> tuple[int, int, np.ndarray]:
    """Check every chunk's CRC and return (width, height, RGB pixels) of an 8-bit RGB PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    return width, height, rows[:, 1:].reshape(height, width, 3)


def test_artifacts(api: httpx.Client, lab: Lab) -> None:
    response = api.get(f"/api/runs/{lab.long}/artifacts/probe/events.json")
    assert response.status_code == 200 and response.json() == EVENTS
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-security-policy"] == "sandbox"
    notes = api.get(f"/api/runs/{lab.long}/artifacts/notes/readme.md")
    assert notes.content == b"# notes\n" and notes.headers["content-type"].startswith(
        "text/markdown")
    assert notes.headers["content-disposition"].startswith("attachment")
    listing = get(api, f"/api/runs/{lab.long}/artifacts")["artifacts"]
    assert {a["path"]: a["size"] for a in listing}["notes/readme.md"] == 8
    for path in ("notes/%2E%2E/%2E%2E/secret.txt", "..%2Fsecret.txt", "%2Fetc%2Fpasswd",
                 "notes%5C..%5Cx"):
        bad = api.get(f"/api/runs/{lab.long}/artifacts/{path}")
        assert bad.status_code == 400, path
        assert bad.json()["error"]["type"] == "InvalidInputError"
    assert api.get(f"/api/runs/{lab.long}/artifacts/secret.txt").status_code == 404


def test_compare(api: httpx.Client, lab: Lab) -> None:
    ids = [lab.runs[("gru", 0)], lab.runs[("conv", 1)], lab.long]
    result = get(api, "/api/compare", runs=",".join(ids))
    assert [r["id"] for r in result["runs"]] == ids
    assert result["metric_keys"]["shared"] == ["train/loss"]
    assert "val/wer" in result["metric_keys"]["all"]
    diff = result["config_diff"]
    assert diff["keys"] == ["lr", "model.encoder", "model.layers", "seed"]
    assert diff["values"]["model.encoder"] == ["gru", "conv", None]
    assert diff["values"]["lr"] == [0.001, 0.001, 0.01] and diff["same"] == 0
    assert result["audio"] == [{"key": "val/sample", "step": 100, "in_all": False,
                                "samples": result["audio"][0]["samples"]}]
    samples = result["audio"][0]["samples"]
    assert samples[2] is None and None not in samples[:2]
    pair = get(api, "/api/compare", runs=[lab.runs[("gru", 1)], lab.runs[("gru", 2)]])
    assert pair["config_diff"]["keys"] == ["seed"] and pair["config_diff"]["same"] == 3
    assert pair["audio"][0]["in_all"] is True
    assert pair["images"] == pair["tables"] == []  # only one of them logged any
    three = get(api, "/api/compare", runs=[lab.runs[("gru", 0)], lab.runs[("conv", 1)],
                                           lab.runs[("gru", 2)]])
    assert three["images"] == [{"key": "val/attention", "step": 100, "in_all": False,
                                "samples": three["images"][0]["samples"]}]
    assert three["images"][0]["samples"][2] is None and None not in three["images"][0][
        "samples"][:2]
    assert three["tables"][0]["key"] == "val/errors" and not three["tables"][0]["in_all"]
    assert api.get("/api/compare", params={"runs": ids[0]}).status_code == 400
    assert api.get("/api/compare", params={"runs": f"{ids[0]},nope"}).status_code == 404


def test_studies_match_the_analysis(api: httpx.Client, lab: Lab) -> None:
    listed = get(api, "/api/studies")["studies"]
    assert [(s["name"], s["trials"]["total"], s["trials"]["finished"]) for s in listed] == [
        ("toy", 6, 6)]
    detail = get(api, "/api/studies/toy")
    study = lab.study
    assert detail["id"] == study.study_id and detail["design"] == "one-at-a-time"
    assert [(c["label"], c["verdict"], c["estimate"], c["low"], c["high"], c["p_adjusted"])
            for c in detail["comparisons"]] == [
        (c.label, c.verdict, c.effect.estimate, c.effect.low, c.effect.high, c.p_adjusted)
        for c in study.comparisons]
    assert detail["comparisons"][0]["verdict"] == "improves"
    assert len(detail["trials"]) == 6 and detail["trials"][0]["arm"] == "baseline"
    assert detail["context"]["base_config_hash"] == study.context["base_config_hash"]
    assert get(api, f"/api/studies/{study.study_id}")["name"] == "toy"
    svg = api.get("/api/studies/toy/forest.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.count('class="marker"') == len(study.comparisons)
    report = api.get("/api/studies/toy/report.html")
    assert report.headers["content-type"].startswith("text/html") and "<script" not in report.text
    assert f'href="/runs/{study.trials[0].trial.run_id}"' in report.text
    assert api.get("/api/studies/nope").status_code == 404
    findings = get(api, "/api/findings", component="enc")["findings"]
    assert [(f["level"], f["baseline"], f["studies"], f["contradiction"]) for f in findings] == [
        ("b", "a", 1, False)]
    assert findings[0]["estimate"] == study.comparisons[0].effect.estimate
    assert get(api, "/api/findings", contradictions="true")["findings"] == []


def test_probe(api: httpx.Client, lab: Lab) -> None:
    probe = get(api, f"/api/runs/{lab.long}/probe")
    assert probe["layers"] == [{"layer": "enc.0", "stats": ["mean", "std"]},
                               {"layer": "enc.1", "stats": ["mean"]}]
    assert [e["step"] for e in probe["events"]] == [10, 30]
    anomaly = probe["anomaly"][0]
    assert anomaly["label"] == "noisy" and anomaly["flagged"] == 1
    assert anomaly["inputs"][0]["first_divergent_layer"] == "enc.1"
    means = get(api, f"/api/runs/{lab.long}/probe/stats", stat="mean")
    assert [(layer["layer"], layer["x"], layer["y"]) for layer in means["layers"]] == [
        ("enc.0", [0, 10], [0.1, 0.2]), ("enc.1", [0, 10], [0.5, 0.7])]
    empty = get(api, f"/api/runs/{lab.runs[('gru', 0)]}/probe")
    assert empty == {"layers": [], "stats": [], "events": [], "anomaly": [], "drift": [],
                     "profile": False, "snapshot": False}


def test_a_project_token_sees_only_its_project(lab: Lab) -> None:
    with live_server(lab.store) as url:
        anonymous = httpx.get(f"{url}/api/runs")
        assert anonymous.status_code == 401
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {lab.asr_token}"})
        with client:
            runs = client.get("/api/runs").json()
            assert runs["total"] == 8 and {r["project"] for r in runs["runs"]} == {"asr"}
            assert [p["name"] for p in client.get("/api/projects").json()["projects"]] == ["asr"]
            audio = get(client, f"/api/runs/{lab.runs[('gru', 0)]}/audio")["samples"][0]
            assert client.get(f"/api/runs/{lab.runs[('gru', 0)]}/audio/"
                              f"{audio['sample_id']}.wav").status_code == 200
            hidden = [f"/api/runs/{lab.secret}", f"/api/runs/{lab.secret}/audio",
                      f"/api/runs/{lab.secret}/artifacts/secret.txt",
                      f"/api/runs/{lab.secret}/audio/1.wav",
                      f"/api/runs/{lab.secret}/metrics/val/wer", "/api/studies/toy"]
            for path in hidden:
                response = client.get(path)
                assert response.status_code == 404, path
                assert "secret" not in response.text
            assert client.get("/api/runs", params={"project": "secret"}).status_code == 404
            assert client.get("/api/compare", params={
                "runs": f"{lab.runs[('gru', 0)]},{lab.secret}"}).status_code == 404
            assert client.get("/api/studies").json()["studies"] == []
            assert client.get("/api/findings").json()["findings"] == []
