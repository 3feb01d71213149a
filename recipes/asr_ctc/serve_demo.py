"""Serve a registered ASR model for a few seconds and send it a clean and a shifted clip.

    TYMPAN_STORE=.tympan .venv/bin/python -m recipes.asr_ctc.serve_demo models:/asr-digits@champion
    ... serve_demo models:/asr-digits@champion --threshold 0.05   # the rest goes to tympan serve

Starts ``tympan serve`` as a user would (a real process on a free port), synthesizes a digit
string with an espeak-ng voice, sends it clean and with white noise at 0 dB SNR, prints each
answer with the guard's verdict, then stops the server (which finishes its serving run, where
the flagged clip is kept as audio).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from tympan.audio.augment import add_noise
from tympan.audio.synth import synthesize

TEXT = "four one nine two"


def wav(wave: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def main(model: str, *serve_args: str) -> None:
    """``serve_args`` go to ``tympan serve`` (e.g. ``--threshold 0.05``)."""
    log = Path(tempfile.mkdtemp(prefix="tympan-serve-demo-")) / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "tympan.cli.app", "serve", model,
                                   "--port", "0", "--guard", "warn", *serve_args], stdout=out,
                                  stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (found := re.search(r" at (http://\S+) ", log.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"tympan serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        url = found.group(1)
        print(log.read_text().strip())
        speech = synthesize(TEXT, "en", variant="m3", sample_rate=22050)  # any rate will do
        clips = {"clean": speech.waveform,
                 "white noise, 0 dB SNR": add_noise(speech.waveform, 0.0, "white", rng=0)}
        print(f"said: {TEXT!r}")
        for name, wave in clips.items():
            body = httpx.post(f"{url}/v1/predict", content=wav(wave, speech.sample_rate),
                              headers={"Content-Type": "audio/wav"}, timeout=60).json()
            guard = body["guard"]
            verdict = (f"FLAGGED (divergence enters at {guard['entry_layer']})"
                       if guard["flagged"] else "pass")
            print(f"{name:>22}: heard {body['answer']['transcript']!r}; guard p="
                  f"{guard['p_value']:.3g} score={guard['score']:.2f} -> {verdict}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(log.parent, ignore_errors=True)


if __name__ == "__main__":
    main(*(sys.argv[1:] or ["models:/asr-digits@champion"]))
