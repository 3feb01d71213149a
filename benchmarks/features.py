"""Audio features: tympan (torch) vs librosa, same clips, same parameters, same run.

Computes log-mel (power_to_db of an 80-band mel spectrogram) and 20 MFCCs of 64 clips x
4 s of 16 kHz speech (n_fft=512, hop=160, Slaney mel, float32) with librosa (clip by
clip, and on the stacked (64, time) array, which librosa >= 0.9 accepts) and with
tympan.audio.features (clip by clip and batched; on CUDA too when there is a GPU). Prints
seconds of audio processed per second of wall time (median of --repeats) and the ratio to
librosa per clip. Torch gets --threads threads (default 2, the CI machine's cores).

    .venv/bin/python benchmarks/features.py [--clips 64] [--seconds 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import librosa
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from tympan.audio import features

SR = 16000
PARAMS = {"n_fft": 512, "hop_length": 160, "n_mels": 80}
SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "turn the lights on in the kitchen please",
    "what is the weather going to be like tomorrow morning",
    "she sells sea shells by the sea shore",
    "play some quiet music while I read",
    "set a timer for twenty five minutes",
)


def speech_clips(n: int, seconds: float) -> tuple[np.ndarray, str]:
    """n clips of real synthesized speech (windows into the concatenated sentences)."""
    try:
        from tympan.audio.synth import synthesize

        audio = np.concatenate([synthesize(s, "en", sample_rate=SR).waveform for s in SENTENCES])
        source = "espeak-ng speech"
    except Exception as exc:  # no espeak-ng here: the timing does not depend on the content
        print(f"speech synthesis unavailable ({exc}); using noise", file=sys.stderr)
        audio = np.random.default_rng(0).standard_normal(SR * 30).astype(np.float32) * 0.1
        source = "white noise"
    length = int(seconds * SR)
    audio = np.tile(audio, 1 + (n * length) // len(audio) + 1)
    offsets = np.linspace(0, len(audio) - length, n).astype(int)
    return np.stack([audio[o:o + length] for o in offsets]).astype(np.float32), source


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()  # warm-up: caches, allocator, lazy imports
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clips, source = speech_clips(args.clips, args.seconds)
    batch = torch.from_numpy(clips)
    audio_s = args.clips * args.seconds

    def lr_logmel(y: np.ndarray) -> np.ndarray:
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, **PARAMS))

    def lr_mfcc(y: np.ndarray) -> np.ndarray:
        return librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, **PARAMS)

    def ty_logmel(y: torch.Tensor) -> torch.Tensor:
        return features.log_mel(y, SR, **PARAMS)

    def ty_mfcc(y: torch.Tensor) -> torch.Tensor:
        return features.mfcc(y, SR, n_mfcc=20, **PARAMS)

    rows: list[tuple[str, str, str, float]] = []  # feature, tool, mode, seconds
    with torch.inference_mode():
        for name, lr, ty in (("log-mel", lr_logmel, ty_logmel), ("MFCC", lr_mfcc, ty_mfcc)):
            r = args.repeats
            rows.append((name, "librosa", "per clip",
                         timed(lambda lr=lr: [lr(c) for c in clips], r)))
            rows.append((name, "librosa", "batched", timed(lambda lr=lr: lr(clips), r)))
            rows.append((name, "tympan CPU", "per clip",
                         timed(lambda ty=ty: [ty(c) for c in batch], r)))
            rows.append((name, "tympan CPU", "batched", timed(lambda ty=ty: ty(batch), r)))
            if torch.cuda.is_available():
                on_gpu = batch.cuda()
                rows.append((name, "tympan CUDA", "batched (data on GPU)",
                             timed(lambda ty=ty, g=on_gpu: ty(g), r, torch.cuda.synchronize)))

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    table = Table(title=(f"{args.clips} clips x {args.seconds:g} s of {source} at 16 kHz, "
                         f"n_fft=512, hop=160, 80 mels, float32; torch threads "
                         f"{args.threads}, {os.cpu_count()} CPUs{gpu}"), title_justify="left")
    for col in ("feature", "tool", "mode", "wall (s)", "audio s / s", "vs librosa per clip"):
        table.add_column(col, justify="left" if col in ("feature", "tool", "mode") else "right")
    for name, tool, mode, secs in rows:
        base = next(s for f, t, m, s in rows if f == name and t == "librosa" and m == "per clip")
        table.add_row(name, tool, mode, f"{secs:.3f}", f"{audio_s / secs:,.0f}",
                      f"{base / secs:.1f}x")
    Console().print(table)
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"librosa {librosa.__version__}, numpy {np.__version__}, {platform.machine()}")


if __name__ == "__main__":
    main()
