"""Artifacts on S3 for real: a store whose blob root is s3://, against moto's S3 server on
loopback. Runs' files and audio (with range reads, also through the server's audio route),
registered model versions, and a missing-credentials error that names the problem."""

from __future__ import annotations

import hashlib
import io

import httpx
import numpy as np
import pytest
from tests.registry_fixtures import asr_run, tiny_corpus
from tests.s3_fixtures import BUCKET, forget_clients, objects, s3_server, use
from tests.server_fixtures import live_server

import tympan
from tympan.errors import StoreError
from tympan.track.stores import close_stores


@pytest.fixture(scope="module")
def s3():
    with s3_server() as env:
        yield env


@pytest.fixture
def s3_store(s3, store_url, monkeypatch, request):
    """A new store (SQLite or PostgreSQL) whose artifact root is a fresh s3:// prefix."""
    use(monkeypatch, s3)
    prefix = f"blobs-{request.node.name.replace('[', '-').replace(']', '')}"
    monkeypatch.setenv("TYMPAN_ARTIFACTS", f"s3://{BUCKET}/{prefix}")
    yield store_url, prefix
    forget_clients()


def test_run_files_and_audio_live_on_s3(s3, s3_store, tmp_path) -> None:
    store, prefix = s3_store
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights" * 1000)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 2) / 16000).astype(np.float32)
    with tympan.init(project="s3", store=store) as run:
        run.log_artifact(checkpoint)
        run.log_artifact(b'{"a": 1}', name="notes.json")
        run.log_audio("val/tone", tone, 16000, step=3, caption="440 Hz")
    stored = objects(s3, prefix)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert f"{prefix}/{sha[:2]}/{sha[2:]}" in stored and len(stored) == 3
    record = tympan.load_run(run.id, store=store)
    assert record.read_artifact("model.pt") == checkpoint.read_bytes()
    assert record.read_artifact("notes.json") == b'{"a": 1}'
    samples, rate, caption = record.read_audio("val/tone")
    assert rate == 16000 and caption == "440 Hz" and np.allclose(samples, tone, atol=1e-3)

    # A range read is one ranged GET of the object, not a download of all of it.
    from tympan.track.stores import shared_store

    blobs = shared_store(store).blobs
    assert blobs.root == f"s3://{BUCKET}/{prefix}"
    [clip] = record.audio_samples()
    whole = blobs.read(clip.sha256)
    assert blobs.read_range(clip.sha256, 100, 1100) == whole[100:1100]
    assert whole[:4] == b"fLaC"

    if not store.startswith("postgresql"):  # the server's part does not depend on the backend
        check_served_range(store, run.id, clip.id)


def check_served_range(store: str, run_id: str, clip_id: int) -> None:
    """The server streams the clip from S3 and answers a player's range request."""
    close_stores()
    with live_server(store, auth=False) as url:
        full = httpx.get(f"{url}/api/runs/{run_id}/audio/{clip_id}.wav", timeout=30,
                         headers=url.headers)
        part = httpx.get(f"{url}/api/runs/{run_id}/audio/{clip_id}.wav", timeout=30,
                         headers={"Range": "bytes=1000-1999", **url.headers})
    assert full.status_code == 200 and part.status_code == 206
    assert part.content == full.content[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(full.content)}"


def test_model_versions_live_on_s3(s3, tmp_path, tmp_path_factory, monkeypatch) -> None:
    use(monkeypatch, s3)
    prefix = "models"
    monkeypatch.setenv("TYMPAN_ARTIFACTS", f"s3://{BUCKET}/{prefix}")
    store = str(tmp_path / "store")
    run = asr_run(store, tiny_corpus(tmp_path_factory))
    version = tympan.models.register(run.id, "asr", recipe="recipes/asr_ctc", store=store)
    stored = objects(s3, prefix)
    for sha in (version.sha256, version.code_sha256):
        assert f"{prefix}/{sha[:2]}/{sha[2:]}" in stored
    loaded = tympan.models.load("models:/asr/1", store=store)
    assert not loaded.model.training and isinstance(loaded.predict([tone()])[0], str)


def tone() -> np.ndarray:
    return (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)


def test_missing_credentials_are_named(s3, tmp_path, monkeypatch) -> None:
    use(monkeypatch, s3)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("TYMPAN_ARTIFACTS", f"s3://{BUCKET}/no-credentials")
    forget_clients()
    store = str(tmp_path / "store")
    run = tympan.init(project="s3", store=store)
    try:
        with pytest.raises(StoreError, match="no credentials for the artifact root "
                                             f"s3://{BUCKET}/no-credentials.*AWS_ACCESS_KEY_ID"):
            run.log_artifact(io.BytesIO(b"x").getvalue(), name="x.bin")
    finally:
        run.finish()
        forget_clients()
