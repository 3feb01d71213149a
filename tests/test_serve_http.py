"""`tympan serve` as a client sees it: a real server process, real HTTP, real speech.

One server (guard in warn mode at p <= 0.05) serves an ASR model whose probe profile was
fitted on 60 clips; the test split's clips of unseen voices are the clean traffic.
"""

from __future__ import annotations

import io
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf
from tests.serving_fixtures import (
    guarded_model,
    live_serve,
    metric,
    one_thread,
    serving_corpus,
    split_waves,
)

import tympan
from tympan.audio.io import resample
from tympan.probe.sources import apply_shifts
from tympan.serve.audio import encode_wav

THRESHOLD = 0.05


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    corpus = serving_corpus(tmp_path_factory)
    store = str(tmp_path_factory.mktemp("serve-store"))
    with one_thread():
        uri = guarded_model(store, corpus)
    clean = [w for _, w in split_waves(corpus, "test")]
    args = ("--guard", "warn", "--threshold", str(THRESHOLD), "--sample", "0",
            "--max-audio-seconds", "20", "--max-wait-ms", "20", "--window", "20",
            "--min-window", "10")
    with live_serve(store, uri, *args) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield {"url": url, "client": client, "store": store, "uri": uri, "clean": clean}


def _flac(wave: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="FLAC")
    return buffer.getvalue()


def test_predict_answers_with_transcript_and_verdict_at_any_rate(served):
    client, wave = served["client"], served["clean"][0]
    at_22k = resample(wave, 16000, 22050)
    response = client.post("/v1/predict", content=encode_wav(at_22k, 22050),
                           headers={"Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "asr-serve" and body["version"] == 1
    assert isinstance(body["answer"]["transcript"], str)
    assert body["audio_seconds"] == pytest.approx(len(wave) / 16000, abs=0.01)
    guard = body["guard"]
    assert 0 < guard["p_value"] <= 1 and isinstance(guard["flagged"], bool)
    assert set(guard["z"]) and all(isinstance(z, float) for z in guard["z"].values())
    assert response.headers["X-Tympan-Guard"] == ("flagged" if guard["flagged"] else "pass")
    # The same clip at its own rate gets the same transcript.
    same = client.post("/v1/predict", content=encode_wav(wave, 16000)).json()
    assert same["answer"] == body["answer"]


def test_multipart_flac_upload(served):
    wave = served["clean"][1]
    response = served["client"].post(
        "/v1/predict", files={"audio": ("clip.flac", _flac(wave, 16000), "audio/flac")})
    assert response.status_code == 200, response.text
    assert "transcript" in response.json()["answer"]


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"", 400, "holds no audio"),
    (b"RIFF not really a wave file" * 4, 400, "cannot decode"),
])
def test_bad_audio_is_a_4xx_with_the_reason(served, body, status, words):
    response = served["client"].post("/v1/predict", content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "AudioError" and words in error["message"]


def test_a_model_that_enrolls_nothing_refuses_enrollment(served):
    wave = served["clean"][0]
    response = served["client"].post("/v1/enroll/alice", content=encode_wav(wave, 16000))
    assert response.status_code == 400
    assert "enrolls nothing" in response.json()["error"]["message"]


def test_too_long_and_empty_multipart(served):
    client = served["client"]
    long = np.zeros(16000 * 21, np.float32)
    response = client.post("/v1/predict", content=encode_wav(long, 16000))
    assert response.status_code == 413
    assert "at most 20 s" in response.json()["error"]["message"]
    response = client.post("/v1/predict", files={"other": ("x.wav", b"abc", "audio/wav")})
    assert response.status_code == 400 and "'audio'" in response.json()["error"]["message"]


def test_model_health_and_readiness(served):
    client = served["client"]
    model = client.get("/v1/model").json()
    assert model["uri"] == "models:/asr-serve/1" and "champion" in model["aliases"]
    assert model["signature"]["audio"]["sample_rate"] == 16000
    assert model["guard"]["layers"] and model["guard"]["threshold"] == THRESHOLD
    assert model["card"] is not None
    assert model["serving_run"] and model["serving"]["threads"] == 1  # live_serve's --threads
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/readyz").json() == {"ready": True}


def test_a_clip_gets_the_same_answer_and_verdict_alone_as_in_any_batch(served):
    """The conv encoder masks its padding, so the engine runs a batch of mixed lengths as one
    padded forward pass, and each clip still gets what it gets alone."""
    from tympan.serve.engine import Engine

    with one_thread():
        engine = Engine.load(served["uri"], store=served["store"], threshold=THRESHOLD)
        try:
            assert engine.padding == "batch"
            clips = served["clean"][:5]
            assert len({len(c) for c in clips}) == 5
            batched = engine.answer(clips)
            alone = [engine.answer([c])[0] for c in clips]
        finally:
            engine.close()
    assert [a.answer for a in alone] == [b.answer for b in batched]
    assert [a.verdict.p_value for a in alone] == [b.verdict.p_value for b in batched]
    for a, b in zip(alone, batched, strict=True):
        assert a.verdict.z == pytest.approx(b.verdict.z, rel=1e-5, abs=1e-5)


def test_guard_flags_shifted_audio_and_passes_clean_held_out_audio(served):
    client, clean = served["client"], served["clean"]

    def flagged(waves):
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(lambda w: client.post(
                "/v1/predict", content=encode_wav(w, 16000)).json(), waves))
        return [b["guard"]["flagged"] for b in bodies], bodies

    clean_flags, _ = flagged(clean)
    # At p <= 0.05 about 1 in 20 clean clips is flagged; 5 of 20 would be off (P < 0.003).
    assert sum(clean_flags) <= 4, clean_flags
    noisy = apply_shifts(clean, [("white", 5.0)], 16000, seed=0)
    noisy_flags, bodies = flagged(noisy)
    assert sum(noisy_flags) >= 18, noisy_flags
    entry = [b["guard"]["entry_layer"] for b in bodies if b["guard"]["flagged"]]
    assert all(entry), "every flagged input names where its divergence enters"
    # Concurrent clients shared batches.
    text = client.get("/metrics").text
    count = _metric(text, "tympan_serve_batch_size_count")
    total = _metric(text, "tympan_serve_batch_size_sum")
    assert total > count, "no batch held more than one request"
    # the guard's scoring time, one observation a batch (recorded once its answers are out)
    assert _metric(text, "tympan_serve_guard_seconds_count") == count
    assert 0 < _metric(text, "tympan_serve_guard_seconds_sum") < _metric(
        text, "tympan_serve_batch_seconds_sum")
    assert _metric(text, "tympan_serve_guard_flagged_total") >= 18
    assert _metric(text, "tympan_serve_requests_total", status="200") >= 40
    assert _metric(text, "tympan_serve_traffic_share") == 1
    # 40+ requests in windows of 20: the noisy windows raised the drift alarm.
    assert _metric(text, "tympan_serve_drift_windows_total") >= 2
    assert _metric(text, "tympan_serve_drift_alarm") == 1


def _metric(text: str, name: str, **labels: str) -> float:
    """The served version's series ``name``."""
    return metric(text, name, model="asr-serve", version="1", role="champion", **labels)


def test_serving_run_keeps_flagged_requests_and_drift_events(served):
    """Runs last: stops the server, whose serving run then holds what it saw."""
    client = served["client"]
    serving_run = client.get("/v1/model").json()["serving_run"]
    os.kill(served["url"].pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record = tympan.load_run(serving_run, store=served["store"])
        if record.status == "finished":
            break
        time.sleep(0.2)
    assert record.status == "finished"
    assert "serving" in record.tags and record.parent_id
    flagged = [c for c in record.audio_samples() if c.key == "requests/flagged"]
    assert len(flagged) >= 18
    assert all("FLAGGED at" in (c.caption or "") for c in flagged)
    assert record.summary["guard/p_value"].count >= 40
    assert record.summary["drift/alarm"].max == 1


def test_serve_refuses_a_model_without_profile_or_unknown(served, tmp_path, capsys):
    """One line on stderr, exit 1, before anything listens."""
    from tests.registry_fixtures import REPO, asr_run

    from tympan.cli.app import main

    store = served["store"]
    bare = asr_run(store, tmp_path, project="asr-ctc")
    tympan.models.register(bare.id, "asr-bare", recipe=str(REPO / "recipes" / "asr_ctc"),
                           store=store)
    for model, words in (("models:/asr-bare/1", "--guard off"),
                         ("models:/nothing@champion", "nothing")):
        assert main(["--store", store, "serve", model, "--port", "0", "--no-record"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err
        assert len(err.strip().splitlines()) == 1
