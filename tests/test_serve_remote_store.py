"""`tympan serve` with a `tympan server` as its store (``--store http://...``): the model comes
over HTTP, and the serving run with its sampled audio lands on the server, as it does for a
team that shares one store."""

from __future__ import annotations

import os
import signal
import time

import httpx
from tests.server_fixtures import live_server
from tests.serving_fixtures import (
    guarded_model,
    live_serve,
    one_thread,
    serving_corpus,
    split_waves,
)

import tympan
from tympan.serve.audio import encode_wav
from tympan.store import open_store, tokens
from tympan.track.stores import close_stores


def test_serve_from_a_remote_store_records_its_serving_run_there(tmp_path_factory,
                                                                  monkeypatch) -> None:
    corpus = serving_corpus(tmp_path_factory)
    store = str(tmp_path_factory.mktemp("remote-serve-store"))
    with one_thread():
        uri = guarded_model(store, corpus)
    close_stores()
    with open_store(store) as opened, opened.write() as conn:
        token = tokens.create(conn, "write", None, name="serve")[0]
    clean = [w for _, w in split_waves(corpus, "test")[:3]]
    monkeypatch.setenv("TYMPAN_TOKEN", token)  # the serving process's token for the server
    # The guard reads the model run's probe profile through the server's read API.
    with live_server(store) as server, live_serve(server, uri, "--guard", "warn", "--threshold",
                                                  "0.05", "--sample", "1") as url:
        serving_run = httpx.get(f"{url}/v1/model", timeout=30).json()["serving_run"]
        answers = [httpx.post(f"{url}/v1/predict", content=encode_wav(w, 16000),
                              timeout=60) for w in clean]
        assert [a.status_code for a in answers] == [200] * 3
        assert all(a.json()["answer"]["transcript"] is not None for a in answers)
        assert all(0 < a.json()["guard"]["p_value"] <= 1 for a in answers)
        os.kill(url.pid, signal.SIGTERM)
        close_stores()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the server wrote it into its own store
            record = tympan.load_run(serving_run, store=store)
            if record.status == "finished":
                break
            time.sleep(0.2)
    assert record.status == "finished"
    assert "serving" in record.tags and record.parent_id
    clips = record.audio_samples()
    assert sorted(c.key for c in clips) == ["requests/sampled"] * 3  # --sample 1: each one
    assert record.summary["serve/latency_ms"].count == 3
    close_stores()
