"""The serving pieces that need no server: batching bounds, the drift alarm's error control,
request audio decoding."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tympan.errors import AudioError, InvalidInputError
from tympan.serve.audio import AudioTooLongError, _wav, decode, decodes_quickly, encode_wav
from tympan.serve.batching import Batcher, ServerClosingError
from tympan.serve.config import Batching, GuardSettings
from tympan.serve.drift import DriftMonitor, benjamini_hochberg


def _batcher(settings: Batching, delay: float = 0.0, arrivals: bool = False):
    seen: list[list[float]] = []
    gate = threading.Event()

    def handle(waves):
        gate.wait(5)
        time.sleep(delay)
        seen.append([len(w) / 100 for w in waves])
        return [len(w) for w in waves]

    return Batcher(handle, settings, arrivals=arrivals), seen, gate


def test_batches_are_bounded_by_audio_seconds_and_count():
    batcher, seen, gate = _batcher(Batching(max_size=4, max_seconds=10.0, max_wait_ms=200))
    seconds = [1, 1, 1, 1, 1, 6, 6, 12, 1]
    futures = [batcher.submit(np.zeros(int(s * 100)), float(s)) for s in seconds]
    gate.set()
    assert [f.result(5) for f in futures] == [int(s * 100) for s in seconds]
    batcher.close()
    for batch in seen:
        assert len(batch) <= 4
        assert sum(batch) <= 10 or len(batch) == 1  # a 12 s clip alone
    assert sorted(s for b in seen for s in b) == sorted(seconds)
    assert [12.0] in seen and max(len(b) for b in seen) == 4


def test_max_wait_closes_a_batch_and_close_answers_what_was_accepted():
    batcher, _seen, gate = _batcher(Batching(max_size=64, max_seconds=100, max_wait_ms=1))
    gate.set()
    first = batcher.submit(np.zeros(100), 1.0)
    assert first.result(5) == 100  # alone: nobody else came within 1 ms
    later = [batcher.submit(np.zeros(100), 1.0) for _ in range(5)]
    batcher.close()
    assert [f.result(0) for f in later] == [100] * 5
    with pytest.raises(ServerClosingError):
        batcher.submit(np.zeros(100), 1.0)


def test_a_batch_waits_only_for_requests_on_their_way_in():
    """With arrivals told (the HTTP face's ``receiving``), a lone request does not wait out
    max_wait (a minute here), and a request being received holds the batch open for it."""
    batcher, seen, gate = _batcher(Batching(max_size=8, max_seconds=100, max_wait_ms=60_000),
                                   arrivals=True)
    gate.set()
    assert batcher.submit(np.zeros(100), 1.0).result(10) == 100
    with batcher.receiving():  # the second request's body is being read
        first = batcher.submit(np.zeros(100), 1.0)
        time.sleep(0.05)
        second = batcher.submit(np.zeros(200), 2.0)
    assert (first.result(10), second.result(10)) == (100, 200)
    assert seen == [[1.0], [1.0, 2.0]]
    batcher.close()


def test_a_failing_batch_fails_each_of_its_requests():
    def handle(waves):
        raise RuntimeError("model broke")

    batcher = Batcher(handle, Batching(max_size=8, max_wait_ms=50))
    futures = [batcher.submit(np.zeros(10), 0.1) for _ in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="model broke"):
            f.result(5)
    assert batcher.alive
    batcher.close()


def test_benjamini_hochberg_matches_the_step_up_rule():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 8
    assert benjamini_hochberg(p, 0.5).sum() == 10 - 0  # all at a lenient rate
    assert benjamini_hochberg(np.array([]), 0.05).tolist() == []


def test_drift_alarm_holds_its_false_discovery_rate_on_clean_traffic():
    """1,000 clean servers x 20 windows of 50 uniform p-values: the share of servers that
    ever alarm stays under the FDR (under the global null, FDR = P(any alarm) <= fdr).
    Re-running BH over all windows at each new one would alarm on about 12% of them."""
    rng = np.random.default_rng(1)
    alarmed = naive = 0
    for _ in range(1000):
        monitor = DriftMonitor(window=50, min_window=30, fdr=0.05, level=0.1)
        results = monitor.add(list(rng.random(1000)), now=0.0)
        alarmed += any(r.alarm for r in results)
        p = np.array([r.p_value for r in results])
        naive += any(benjamini_hochberg(p[:k], 0.05)[-1] for k in range(1, len(p) + 1))
    assert alarmed / 1000 <= 0.05
    assert naive / 1000 > 0.08  # what LOND is for


def test_drift_alarm_fires_on_shifted_traffic_and_respects_the_minimum_window():
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(window=50, min_window=30, window_seconds=10, fdr=0.05, level=0.1)
    assert monitor.add(list(rng.random(100)), now=0.0)[-1].alarm is False
    shifted = list(rng.random(50) * 0.1)  # every p-value small
    assert monitor.add(shifted, now=1.0)[-1].alarm
    # An old window with fewer than min_window requests is not tested.
    assert monitor.add(list(rng.random(20)), now=2.0) == []
    assert monitor.add([0.5], now=100.0) == []  # 21 < 30
    closed = monitor.add(list(rng.random(9)), now=100.0)
    assert len(closed) == 1 and closed[0].requests == 30


def test_decode_resamples_mixes_and_refuses_bad_audio():
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype(np.float32)
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, stereo, 8000, format="OGG")
    wave = decode(buffer.getvalue(), 16000, 60)
    assert wave.dtype == np.float32 and abs(len(wave) - 16000) < 50
    assert 0.3 < np.abs(wave).max() < 0.7  # mixed to mono: half the amplitude
    with pytest.raises(AudioError, match="no audio"):
        decode(b"", 16000, 60)
    with pytest.raises(AudioError, match="cannot decode"):
        decode(b"\x00" * 100, 16000, 60)
    with pytest.raises(AudioTooLongError, match="at most 1 s"):
        decode(encode_wav(np.zeros(32000), 16000), 16000, 1)
    with pytest.raises(AudioError, match="NaN"):
        decode(encode_wav(np.full(100, np.nan), 16000), 16000, 60)
    # Which files the server decodes on its event loop: small WAVs at the model's rate.
    assert decodes_quickly(encode_wav(np.zeros(16000), 16000), 16000)
    assert not decodes_quickly(encode_wav(np.zeros(16000), 8000), 16000)
    assert not decodes_quickly(buffer.getvalue(), 8000)  # OGG


@pytest.mark.parametrize(("subtype", "channels"), [
    *((s, c) for s in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW")
      for c in (1, 2, 3)),
    ("IMA_ADPCM", 1), ("IMA_ADPCM", 2)])  # libsndfile's ADPCM: one or two channels
def test_a_wav_decodes_to_the_samples_libsndfile_reads(subtype, channels):
    """PCM and float WAVs go through scipy's reader, the other WAV codecs through soundfile:
    either way the samples (scaled to [-1, 1), mixed down) are libsndfile's own."""
    import io

    import soundfile as sf

    rng = np.random.default_rng(channels)
    wave = np.clip(0.3 * rng.standard_normal((4000, channels)), -1, 1)
    buffer = io.BytesIO()
    sf.write(buffer, wave, 16000, format="WAV", subtype=subtype)
    data = buffer.getvalue()
    want = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].mean(axis=1)
    got = decode(data, 16000, 60)
    assert (_wav(data) is not None) == (subtype not in ("ULAW", "IMA_ADPCM"))  # which reader
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


def test_a_malformed_wav_is_refused_with_libsndfiles_reason():
    data = encode_wav(np.zeros(1000), 16000)
    broken = {"no data chunk": data[:40], "a header that ends early": b"RIFF\0\0\0\0WAVEjunk",
              "no channels": data[:22] + b"\0\0" + data[24:],
              "a rate of 0": data[:24] + b"\0\0\0\0" + data[28:]}
    for what, bad in broken.items():
        with pytest.raises(AudioError, match=r"cannot decode the request's audio \(.+\)"):
            decode(bad, 16000, 60)
            pytest.fail(f"{what} was decoded")
    with pytest.raises(AudioError, match="no frames"):
        decode(data[:data.index(b"data") + 8], 16000, 60)


def test_settings_are_checked():
    with pytest.raises(InvalidInputError, match="policy"):
        GuardSettings(policy="block")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="minimum drift window"):
        GuardSettings(min_window=5)
    with pytest.raises(InvalidInputError, match="batch size"):
        Batching(max_size=0)


class _Recorded:
    """What the HTTP face needs of a served model, answering at once; ``observe`` records
    what it is given, or fails as a full disk would."""

    def __init__(self, fail: bool) -> None:
        from types import SimpleNamespace

        from tympan.serve.config import ServingConfig

        self.config = ServingConfig(model="models:/m@champion", record=False)
        self.engine = SimpleNamespace(sample_rate=16000)
        self.fail, self.observed, self.closing = fail, [], False
        self._version = SimpleNamespace(model="m", version=1)

    def receiving(self):
        import contextlib

        return contextlib.nullcontext()

    async def predict(self, wave, request_id=None):
        from tympan.serve.engine import Answer

        return Answer({"samples": len(wave)}, None)

    def answered_by(self, answer):
        return self._version, None

    def metrics_of(self, answer):
        from types import SimpleNamespace

        return SimpleNamespace(answered=lambda status, seconds=None: None)

    def observe(self, wave, answer, latency):
        if self.fail:
            raise OSError("No space left on device")
        self.observed.append((len(wave), answer.answer, latency))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("fail", [False, True])
def test_a_request_is_observed_after_its_answer_and_a_failure_there_is_logged(fail, caplog):
    """The metrics, drift window and serving-run sample are recorded once the answer is
    sent, with the latency measured when it was ready; when recording fails the client still
    has its answer and the log says what is missing."""
    from fastapi.testclient import TestClient

    from tympan.serve.app import create_app

    service = _Recorded(fail)
    clip = encode_wav(np.zeros(8000, np.float32), 16000)
    with TestClient(create_app(service)) as client, caplog.at_level("ERROR", "tympan.serve"):
        response = client.post("/v1/predict", content=clip,
                               headers={"Content-Type": "audio/wav"})
    assert response.status_code == 200 and response.json()["answer"] == {"samples": 8000}
    if fail:
        assert not service.observed
        assert "recording an answered request (0.50 s of audio) failed" in caplog.text
        assert "No space left on device" in caplog.text
    else:
        ((samples, answer, latency),) = service.observed
        assert samples == 8000 and answer == {"samples": 8000}
        assert 0 < latency <= response.json()["latency_ms"] / 1000


def test_an_answer_renders_a_verdict_as_its_to_json_says():
    import json

    from tympan.probe.scorer import Verdict
    from tympan.serve.app import Rendered

    verdict = Verdict(float("inf"), 0.0322, True, 0.05,
                      {"encoder.0": 1.25, "encoder.1": float("nan"), "output": -0.5},
                      "encoder.1", {"energy": -3.5, "msp": float("-inf"), "blank_ratio": 0.75})
    body = {"answer": {"transcript": "four one"}, "guard": verdict,
            "audio_seconds": np.float32(1.5), "scores": np.arange(3.0)}
    got = json.loads(Rendered(body).body)
    assert got["guard"] == verdict.to_json()
    assert got["guard"]["score"] is None and got["guard"]["z"]["encoder.1"] is None
    assert got["audio_seconds"] == 1.5 and got["scores"] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(("cores", "engines", "want"), [(1, 1, 1), (2, 1, 1), (8, 1, 7),
                                                         (8, 2, 3), (2, 2, 1)])
def test_a_server_leaves_its_event_loop_a_core(monkeypatch, cores, engines, want):
    import torch

    from tympan.serve.config import in_process_threads

    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    assert in_process_threads(engines) == want


@pytest.mark.parametrize(("args", "want"), [
    ({}, None), ({"threads": 3}, 3), ({"runtime": "onnx"}, 7),
    ({"challenger": "models:/m/2", "split": 10.0}, 3), ({"engine": "ray"}, 1),
    ({"engine": "ray", "threads": 2}, 2)])
def test_serve_starts_its_engines_on_the_default_threads_unless_told(monkeypatch, args, want):
    """Without --threads a lone torch engine in process chooses its threads batch by batch
    (None), onnxruntime and a split's engines share torch's threads less one, and each Ray
    replica takes one; --threads always wins."""
    import torch

    import tympan.serve.fleet
    import tympan.serve.ray_engine
    import tympan.serve.service
    from tympan.serve.config import ServingConfig
    from tympan.serve.server import start

    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    started = []
    for module, name in ((tympan.serve.service.Service, "start"),
                         (tympan.serve.fleet, "embedded"), (tympan.serve.ray_engine, "start")):
        monkeypatch.setattr(module, name, lambda config, *rest: started.append(config))
    start(ServingConfig(model="models:/m/1", **args))
    assert [c.threads for c in started] == [want]
