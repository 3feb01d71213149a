"""Real speech for tests, synthesized offline with espeak-ng and cached per pytest process.

    from speech import speech
    waveform, sample_rate = speech("turn the lights on", voice="en", sample_rate=16000)

The waveform is float32 mono in [-1, 1]; the same arguments give the same samples. Treat it
as read-only: the cache hands every caller the same array.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tympan.audio.synth import synthesize


def speech(text: str = "the quick brown fox", voice: str = "en", sample_rate: int = 16000,
           **kw: Any) -> tuple[np.ndarray, int]:
    """(waveform, sample_rate) of ``text`` spoken by ``voice``; ``kw`` goes to ``synthesize``
    (``variant=``, ``rate=``, ``pitch=``)."""
    return _speech(text, voice, sample_rate, tuple(sorted(kw.items())))


@functools.lru_cache(maxsize=256)
def _speech(text: str, voice: str, sample_rate: int,
            kw: tuple[tuple[str, Any], ...]) -> tuple[np.ndarray, int]:
    spoken = synthesize(text, voice, sample_rate=sample_rate, **dict(kw))
    waveform = spoken.waveform
    waveform.flags.writeable = False  # shared by every caller: a write would leak across tests
    return waveform, spoken.sample_rate
