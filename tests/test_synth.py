"""tympan.audio.synth: real espeak-ng speech, its timings, determinism and its errors."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from speech import speech
from tympan.audio.synth import Speech, synthesize, variants, voices
from tympan.errors import AudioError, InvalidInputError


def mean_f0(waveform: np.ndarray, sample_rate: int) -> float:
    """Median autocorrelation pitch (60-400 Hz) over the loud 40 ms frames."""
    size = int(0.04 * sample_rate)
    frames = [waveform[i:i + size] for i in range(0, len(waveform) - size, size // 2)]
    loud = max(float(np.sqrt(np.mean(f ** 2))) for f in frames) / 4
    lo, hi = sample_rate // 400, sample_rate // 60
    f0s = []
    for frame in frames:
        if np.sqrt(np.mean(frame ** 2)) < loud:
            continue
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[size - 1:]
        f0s.append(sample_rate / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0s))


def test_speech_has_a_sensible_duration_and_energy() -> None:
    spoken = synthesize("the quick brown fox jumps over the lazy dog")
    assert isinstance(spoken, Speech)
    assert spoken.sample_rate == 22050  # espeak's own rate when none is asked for
    assert spoken.waveform.dtype == np.float32 and spoken.waveform.ndim == 1
    assert 1.5 < spoken.duration < 5.0
    assert float(np.abs(spoken.waveform).max()) <= 1.0
    assert float(np.sqrt(np.mean(spoken.waveform ** 2))) > 0.02
    assert spoken.text == "the quick brown fox jumps over the lazy dog" and spoken.voice == "en"


def test_resampling_keeps_the_duration() -> None:
    native = synthesize("three one four")
    resampled = synthesize("three one four", sample_rate=16000)
    assert resampled.sample_rate == 16000
    assert resampled.duration == pytest.approx(native.duration, abs=1e-3)
    assert float(np.abs(resampled.waveform).max()) <= 1.0


def test_the_same_arguments_give_the_same_samples_whatever_ran_before() -> None:
    first = synthesize("hello there", variant="f3", pitch=60)
    synthesize("something else entirely", "ko", variant="m1", rate=300)
    again = synthesize("hello there", variant="f3", pitch=60)
    assert np.array_equal(first.waveform, again.waveform)


def test_breathy_voices_repeat_across_seconds() -> None:
    # espeak seeds its breath noise from the clock: a later second must not change the samples.
    first = synthesize("zero four one", variant="f5", pitch=60, rate=185)
    time.sleep(1.05)
    again = synthesize("zero four one", variant="f5", pitch=60, rate=185)
    assert np.array_equal(first.waveform, again.waveform) and first.events == again.events


def test_pitch_and_variant_change_the_voice() -> None:
    low = synthesize("one two three four five", variant="m3", pitch=15, sample_rate=16000)
    high = synthesize("one two three four five", variant="m3", pitch=85, sample_rate=16000)
    assert mean_f0(high.waveform, 16000) > 1.2 * mean_f0(low.waveform, 16000)
    female = synthesize("one two three four five", variant="f3", sample_rate=16000)
    male = synthesize("one two three four five", variant="m1", sample_rate=16000)
    assert mean_f0(female.waveform, 16000) > 1.2 * mean_f0(male.waveform, 16000)


def test_rate_changes_the_duration() -> None:
    slow = synthesize("one two three four five", rate=100)
    fast = synthesize("one two three four five", rate=300)
    assert slow.duration > 1.8 * fast.duration


def test_korean_is_spoken() -> None:
    spoken = synthesize("안녕하세요 하나 둘 셋", "ko")
    assert 0.8 < spoken.duration < 5.0
    assert float(np.sqrt(np.mean(spoken.waveform ** 2))) > 0.02
    words = [e.text for e in spoken.events if e.kind == "word"]
    assert words == ["안녕하세요", "하나", "둘", "셋"]


def test_events_are_in_order_and_within_the_audio() -> None:
    spoken = synthesize("the quick brown fox", variant="f2")
    starts = [e.start for e in spoken.events]
    assert starts == sorted(starts)
    assert all(0.0 <= s <= spoken.duration + 1e-3 for s in starts)
    kinds = {e.kind for e in spoken.events}
    assert {"word", "phoneme", "sentence", "end"} <= kinds
    assert [e.text for e in spoken.events if e.kind == "word"] == ["the", "quick", "brown", "fox"]
    assert all(e.text for e in spoken.events if e.kind == "phoneme")
    assert spoken.events[-1].kind == "end"


def test_voices_and_variants_are_listed() -> None:
    assert {"en", "ko", "en-US", "de"} <= set(voices())
    assert {"f3", "m1", "klatt"} <= set(variants())


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({"text": ""}, InvalidInputError, "empty text"),
    ({"text": "   "}, InvalidInputError, "empty text"),
    ({"text": "hi", "voice": "xx"}, InvalidInputError, "'xx'"),
    ({"text": "hi", "voice": "en+f3"}, InvalidInputError, "'en+f3'"),
    ({"text": "hi", "variant": "nobody"}, InvalidInputError, "'nobody'"),
    ({"text": "hi", "rate": 10}, InvalidInputError, "rate 10"),
    ({"text": "hi", "rate": 1000}, InvalidInputError, "rate 1000"),
    ({"text": "hi", "pitch": -1}, InvalidInputError, "pitch -1"),
    ({"text": "hi", "pitch": 101}, InvalidInputError, "pitch 101"),
    ({"text": "hi", "sample_rate": 0}, AudioError, "sample rate 0"),
])
def test_bad_input_is_a_clear_error(kwargs: dict, error: type, named: str) -> None:
    with pytest.raises(error, match=re.escape(named)):
        synthesize(**kwargs)


def test_concurrent_calls_are_serialized_and_correct() -> None:
    expected = synthesize("seven eight nine", variant="m2").waveform
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(synthesize("seven eight nine", variant="m2").waveform)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.array_equal(r, expected) for r in results)


def test_the_test_helper_caches_read_only_speech() -> None:
    waveform, rate = speech("turn the lights on", sample_rate=16000)
    again, _ = speech("turn the lights on", sample_rate=16000)
    assert rate == 16000 and again is waveform and not waveform.flags.writeable
    assert 0.5 < len(waveform) / rate < 3.0


def test_importing_the_audio_modules_loads_neither_espeak_nor_the_store() -> None:
    # `import tympan` brings its own light modules; the audio layer must add no store/track.
    code = (
        "import sys, tympan\n"
        "before = set(sys.modules)\n"
        "import tympan.audio.synth, tympan.audio.corpus\n"
        "added = set(sys.modules) - before\n"
        "assert not [m for m in added if m.startswith(('tympan.store', 'tympan.track'))], added\n"
        "assert 'libespeak' not in open('/proc/self/maps').read()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
