"""What the serving tests share: a registered ASR model with a probe profile, and a real
``tympan serve`` process.

    corpus = serving_corpus(tmp_path_factory)              # 4 voices x 20 digit strings, once
    uri = guarded_model(store, corpus)                     # models:/asr-serve@champion
    with live_serve(store, uri, "--guard", "warn") as url: # a real server on a free port
        httpx.post(f"{url}/v1/predict", content=wav_bytes)

The model is the recipe's untrained CTCModel (serving, export and the guard do not need a
good one); its profile is fitted the way a user fits it (``tympan probe fit RUN --data
split:train,valid``), on 60 clips, so the test split's 20 clips of unseen voices are clean
held-out traffic.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.registry_fixtures import REPO, asr_run

import tympan

CORPUS = {"voices": 4, "per_speaker": 20}


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread while a test module runs: two threads on a CPU that other
    processes share wait for each other (a forward pass was 20x slower in tests)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
_URL = re.compile(r" at (http://\S+) ")


def serving_corpus(factory: pytest.TempPathFactory) -> Path:
    from tympan.audio.corpus import synth_corpus

    root = factory.getbasetemp() / "serving-corpus"  # one per session
    synth_corpus(root, voices=CORPUS["voices"], utterances_per_speaker=CORPUS["per_speaker"],
                 progress=False)
    return root


def guarded_model(store: str, corpus: Path, name: str = "asr-serve", encoder: str = "conv",
                  alias: str = "champion", seed: int = 0) -> str:
    """Register an ASR run as ``name`` with ``alias`` and fit its probe profile; the URI."""
    from tympan.probe.jobs import fit_profile

    run = asr_run(store, corpus, encoder=encoder, seed=seed, **CORPUS)
    fit_profile(run.id, store=store, recipe=str(REPO / "recipes" / "asr_ctc"),
                data="split:train,valid", calibration=0.5)
    version = tympan.models.register(run.id, name, recipe=str(REPO / "recipes" / "asr_ctc"),
                                     store=store)
    tympan.models.set_alias(f"{name}@{alias}", version.version, reason="test", admin=True,
                            store=store)
    return f"models:/{name}@{alias}"


def split_waves(corpus: Path, split: str) -> list[tuple[str, np.ndarray]]:
    """(text, 16 kHz waveform) of a split of the serving corpus."""
    from tympan.audio.corpus import synth_corpus
    from tympan.audio.io import load

    c = synth_corpus(corpus, voices=CORPUS["voices"],
                     utterances_per_speaker=CORPUS["per_speaker"], progress=False)
    return [(u.text, load(c.file(u), mono=True)[0]) for u in c.split(split)]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the series ``name{labels}`` in a ``GET /metrics`` answer."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no series {name}{labels} in /metrics")


class ServeURL(str):
    pid: int
    stdout: Path
    stderr: Path


@contextmanager
def live_serve(store: str, model: str, *args: str, timeout: float = 90.0
               ) -> Iterator[ServeURL]:
    """``tympan serve MODEL --port 0 ARGS`` as a user starts it; SIGTERM on exit."""
    logs = Path(tempfile.mkdtemp(prefix="tympan-serve-"))
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    command = [sys.executable, "-m", "tympan.cli.app", "--store", store, "serve", model,
               "--port", "0", "--threads", "1", *args]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            found = _URL.search(out_path.read_text())
            if found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tympan serve did not start (exit {proc.poll()}):\n"
                                   f"{out_path.read_text()}\n{err_path.read_text()}")
            time.sleep(0.05)
        url = ServeURL(found.group(1))
        url.pid, url.stdout, url.stderr = proc.pid, out_path, err_path
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def assert_batch_features_match(batch_features: Any, features: Any, cfg: Any,
                                lengths: tuple[int, ...]) -> None:
    """A recipe's ``batch_features`` (a serving batch in one pass) gives each clip of random
    audio of these lengths the frames and features its ``features`` gives the clip alone."""
    import torch

    from tympan.audio.features import pad_features, pad_waves

    gen = torch.Generator().manual_seed(2)
    clips = [0.1 * torch.randn(n, generator=gen) for n in lengths]
    x, frames = batch_features(cfg, *pad_waves(clips))
    want, want_frames = pad_features([features(cfg, c.numpy()) for c in clips])
    assert torch.equal(frames, want_frames)
    torch.testing.assert_close(x, want, rtol=1e-4, atol=1e-4)
