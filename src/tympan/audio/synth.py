"""Offline speech synthesis with espeak-ng, for tests, demos and synthetic corpora.

espeak-ng is driven through ctypes on the shared library that the ``espeakng-loader``
wheel ships, so no system package is needed. The library keeps global state and is not
thread-safe: every call goes through one module lock. Nothing is loaded at import; each call
loads, initialises and unloads the library (about 5 ms), because a library left loaded
carries state between calls and the same text would not give the same samples twice.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tympan.errors import AudioError, InvalidInputError

RATE_RANGE = (80, 450)  # words per minute; espeakRATE_MINIMUM / espeakRATE_MAXIMUM
PITCH_RANGE = (0, 100)

# espeak_AUDIO_OUTPUT, espeak_Initialize options, espeak_Synth flags (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH = 1, 2, 3
_EE_OK = 0

# espeak_EVENT_TYPE values -> the names Speech.events uses.
_EVENT_NAMES = {1: "word", 2: "sentence", 3: "mark", 5: "end", 7: "phoneme"}
_LIST_TERMINATED = 0

_NOISE_SEED = 1

_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]+)*")
_VARIANT = re.compile(r"[A-Za-z0-9_-]+")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class SpeechEvent:
    """One espeak event: a word, phoneme or sentence starting at ``start`` seconds.

    ``text`` is the phoneme mnemonic for phonemes and the word as written for words.
    """

    kind: str  # "word" | "phoneme" | "sentence" | "mark" | "end"
    start: float
    text: str = ""


@dataclass(frozen=True, eq=False)  # eq would compare numpy arrays: compare waveforms yourself
class Speech:
    """Synthesized speech: a mono float32 waveform in [-1, 1] and its timing events."""

    waveform: np.ndarray
    sample_rate: int
    text: str
    voice: str
    events: list[SpeechEvent] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.waveform) / self.sample_rate


class _Session:
    """One freshly loaded copy of libespeak-ng, started for one job and unloaded after it.

    espeak-ng carries state from one synthesis to the next (glottal phase, noise
    generators), so reusing a loaded library makes the same call give slightly different
    samples. Loading it afresh per call (about 5 ms) makes every call byte-identical,
    whatever ran before: corpora rebuild exactly. Use under ``_LOCK`` only.
    """

    def __init__(self) -> None:
        import espeakng_loader  # the wheel that ships libespeak-ng and its data

        self.data_path = Path(espeakng_loader.get_data_path())
        self.lib = ctypes.CDLL(_private_copy(espeakng_loader.get_library_path()))
        _declare(self.lib)
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _CALLBACK(self._on_synth)  # must outlive every call into espeak

    def __enter__(self) -> _Session:
        # DONT_EXIT: a bad data path must come back as an error, not end the process.
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                          str(self.data_path).encode(),
                                          _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            self._unload()
            raise AudioError(f"espeak-ng could not start with data at {self.data_path}; "
                             "reinstall the espeakng-loader package")
        self.sample_rate = int(rate)
        self.lib.espeak_SetSynthCallback(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        self.lib.espeak_Terminate()
        self._unload()

    def _unload(self) -> None:
        import _ctypes

        # Drop the only reference so the next session maps a copy with fresh globals.
        _ctypes.dlclose(self.lib._handle)

    def _on_synth(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _LIST_TERMINATED:
            ev = events[i]
            # Phoneme events carry their mnemonic packed into id.string (up to 8 bytes).
            raw = bytes(ev.id.string) if ev.type == 7 else b""
            self.events.append((ev.type, ev.audio_position, ev.text_position, ev.length, raw))
            i += 1
        return 0  # 0 = keep synthesizing


_COPY: dict[str, str] = {}


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)  # the C library already in the process
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand.restype = None
    return libc


def _private_copy(library: str) -> str:
    """A copy of ``library`` that only tympan loads (made once per process, removed at exit).

    Were the wheel's own file also loaded by someone else (phonemizer, kokoro...), our
    dlclose would not unload it and our Initialize/Terminate would reset their engine.
    """
    if library not in _COPY or not Path(_COPY[library]).exists():  # e.g. a forked child
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="tympan-espeak-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _COPY[library] = shutil.copy(library, Path(folder) / Path(library).name)
    return _COPY[library]


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of the espeak functions we call."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))


# espeak-ng keeps process-wide state and is not thread-safe: one session at a time.
_LOCK = threading.Lock()


def voices() -> list[str]:
    """Language voices espeak-ng can speak (``"en"``, ``"en-us"``, ``"ko"``, ...)."""
    names: set[str] = set()
    with _LOCK, _Session() as session:
        listing = session.lib.espeak_ListVoices(None)
        i = 0
        while listing[i]:
            # Voice files are named by their identifier's last part ("gmw/en-US" -> "en-US"),
            # which is what espeak_SetVoiceByName looks up.
            identifier = listing[i].contents.identifier or b""
            names.add(identifier.decode("ascii", "replace").rsplit("/", 1)[-1])
            i += 1
    names = {name for name in names if _LANGUAGE.fullmatch(name)}
    return sorted(names)


def variants() -> list[str]:
    """Speaker variants (``"f3"``, ``"m1"``, ``"klatt"``...) that ``synthesize`` accepts."""
    import espeakng_loader

    root = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in root.iterdir() if p.is_file() and _VARIANT.fullmatch(p.name))


def synthesize(text: str, voice: str = "en", *, variant: str | None = None, rate: int = 175,
               pitch: int = 50, sample_rate: int | None = None) -> Speech:
    """Speak ``text`` with espeak-ng and return the waveform and its word/phoneme timings.

    ``voice`` is a language voice (see ``voices()``), ``variant`` a speaker variant (see
    ``variants()``), ``rate`` in words per minute (80-450), ``pitch`` 0-100. The audio comes
    at espeak's native 22050 Hz unless ``sample_rate`` asks for another rate. The same
    arguments always give the same samples.
    """
    _check(text, voice, variant, rate, pitch, sample_rate)
    name = voice if variant is None else f"{voice}+{variant}"
    with _LOCK, _Session() as session:
        lib = session.lib
        if lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise InvalidInputError(f"unknown voice {voice!r}: use one of "
                                    "tympan.audio.synth.voices(), e.g. 'en' or 'ko'")
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        lib.espeak_SetParameter(_VOLUME, 100, 0)
        # Breathy variants (f2, f3, f5...) add noise from rand(), which espeak seeds from the
        # clock at start-up: seed it (and espeak's own generator) for repeatable samples.
        # This resets the process's C rand() sequence, which Python and numpy do not use.
        lib.espeak_ng_SetRandSeed(_NOISE_SEED)
        _libc().srand(_NOISE_SEED)
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0,
                                  _CHARS_UTF8 | _ENDPAUSE, None, None)
        lib.espeak_Synchronize()
        chunks, raw_events, native = session.chunks, session.events, session.sample_rate
    if status != _EE_OK:
        raise AudioError(f"espeak-ng failed to synthesize {text!r} (status {status})")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    waveform = pcm.astype(np.float32) / 32768.0
    events = [_event(raw, text) for raw in raw_events if raw[0] in _EVENT_NAMES]
    out_rate = native
    if sample_rate is not None and sample_rate != native:
        waveform = _resample(waveform, native, sample_rate)
        out_rate = sample_rate
    return Speech(waveform=waveform, sample_rate=out_rate, text=text, voice=name,
                  events=events)


def _check(text: object, voice: object, variant: object, rate: object, pitch: object,
           sample_rate: object) -> None:
    """Raise InvalidInputError naming the first argument espeak could not use."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"cannot synthesize empty text {text!r}: pass some words")
    if isinstance(rate, bool) or not isinstance(rate, int) \
            or not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise InvalidInputError(f"speaking rate {rate!r} is out of range: use "
                                f"{RATE_RANGE[0]}-{RATE_RANGE[1]} words per minute")
    if isinstance(pitch, bool) or not isinstance(pitch, int) \
            or not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise InvalidInputError(f"pitch {pitch!r} is out of range: use "
                                f"{PITCH_RANGE[0]}-{PITCH_RANGE[1]}")
    if sample_rate is not None and (isinstance(sample_rate, bool)
                                    or not isinstance(sample_rate, int) or sample_rate <= 0):
        raise AudioError(f"sample rate {sample_rate!r} must be a positive number of Hz")
    # espeak falls back to a default voice for names it half-recognises: check first.
    if not isinstance(voice, str) or not _LANGUAGE.fullmatch(voice):
        raise InvalidInputError(f"unknown voice {voice!r}: pass a language voice such as "
                                "'en' or 'ko' (tympan.audio.synth.voices() lists them); "
                                "choose a speaker with variant=")
    if variant is not None and variant not in variants():
        raise InvalidInputError(f"unknown voice variant {variant!r}: use one of "
                                "tympan.audio.synth.variants(), e.g. 'f3' or 'm1'")


def _event(raw: tuple[int, int, int, int, bytes], text: str) -> SpeechEvent:
    kind, ms, position, length, mnemonic = raw
    if kind == 7:
        label = mnemonic.split(b"\0", 1)[0].decode("utf-8", "replace")
    elif kind == 1:
        # text_position is 1-based in characters of the input.
        label = text[position - 1:position - 1 + length] if position > 0 else ""
    else:
        label = ""
    return SpeechEvent(kind=_EVENT_NAMES[kind], start=ms / 1000.0, text=label)


def _resample(waveform: np.ndarray, source: int, target: int) -> np.ndarray:
    from tympan.audio.io import resample  # scipy only when a rate change is asked for

    out = resample(waveform, source, target).astype(np.float32)
    return np.clip(out, -1.0, 1.0)  # the polyphase filter can overshoot full scale
