"""Synthetic speech corpora: many espeak-ng speakers saying digits, commands or sentences.

``synth_corpus`` writes 16 kHz mono FLAC files under ``out/{split}/{speaker}/{utt}.flac``,
one JSONL manifest per split plus ``manifest.jsonl``, and ``corpus.json`` with the
arguments. Splits are by speaker, so a model is always tested on voices it never heard.
The same arguments give byte-identical files, and a second call with them reuses the corpus.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tympan.audio.synth import SpeechEvent, synthesize
from tympan.errors import InvalidInputError

SAMPLE_RATE = 16000
SPLITS = ("train", "valid", "test")
VOCABS = ("digits", "commands", "sentences")
FORMAT = 1  # bump when the layout or the texts change, so old caches are not reused

# Speaker identities are a variant x pitch x rate; variants that sound like people, not robots.
_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_PITCHES = (30, 40, 50, 60, 70)
_RATES = (140, 155, 170, 185, 200)
MAX_SPEAKERS = len(_VARIANTS) * len(_PITCHES) * len(_RATES)

_DIGITS = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "ko": ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"),
}
_COMMANDS = {
    "en": ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
           "turn the lights on", "turn the lights off", "play some music", "pause",
           "next track", "volume up", "volume down", "what time is it", "call home",
           "open the door"),
    "ko": ("네", "아니요", "위로", "아래로", "왼쪽", "오른쪽", "켜", "꺼", "멈춰", "가",
           "불 켜 줘", "불 꺼 줘", "음악 틀어 줘", "일시 정지", "다음 곡", "소리 크게",
           "소리 작게", "지금 몇 시야", "집에 전화해", "문 열어 줘"),
}
_SENTENCES = {
    "en": ("the quick brown fox jumps over the lazy dog",
           "she sells sea shells by the sea shore",
           "a cup of hot tea warms the cold hands",
           "the train leaves the station at noon",
           "please close the window before it rains",
           "the children played in the park all day",
           "my brother reads a book every week",
           "the river runs quietly under the old bridge",
           "we planted tomatoes in the garden in spring",
           "the museum opens at nine in the morning",
           "turn left at the second traffic light",
           "the bakery sells fresh bread every morning"),
    "ko": ("오늘은 날씨가 맑습니다",
           "기차는 정오에 출발합니다",
           "창문을 닫아 주세요",
           "아이들이 공원에서 놀고 있습니다",
           "저는 매주 책을 한 권 읽습니다",
           "강물이 다리 아래로 조용히 흐릅니다",
           "봄에 정원에 토마토를 심었습니다",
           "박물관은 아침 아홉 시에 문을 엽니다",
           "두 번째 신호등에서 왼쪽으로 가세요",
           "빵집은 매일 아침 신선한 빵을 팝니다",
           "따뜻한 차 한 잔이 손을 녹입니다",
           "내일 친구를 만나러 서울에 갑니다"),
}
LANGS = tuple(sorted(_DIGITS))


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak variant at a pitch (0-100) and rate (words/minute)."""

    name: str
    variant: str
    pitch: int
    rate: int
    split: str


@dataclass(frozen=True)
class Utterance:
    """One manifest line: a FLAC file (``path`` relative to the corpus root) and its labels."""

    path: str
    text: str
    speaker: str
    lang: str
    split: str
    duration: float
    sample_rate: int
    sha256: str
    events: list[SpeechEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Utterance:
        events = [SpeechEvent(**event) for event in row.get("events", [])]
        return cls(**{**row, "events": events})


@dataclass(frozen=True)
class Corpus:
    """A synthesized corpus on disk: its root, speakers and manifest."""

    root: Path
    speakers: list[Speaker]
    utterances: list[Utterance]

    def split(self, name: str) -> list[Utterance]:
        """The utterances of split ``name`` (``train``, ``valid`` or ``test``)."""
        if name not in SPLITS:
            raise InvalidInputError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        return [u for u in self.utterances if u.split == name]

    def file(self, utterance: Utterance) -> Path:
        """Where ``utterance``'s audio is."""
        return self.root / utterance.path

    @property
    def duration(self) -> float:
        """Total seconds of audio."""
        return sum(u.duration for u in self.utterances)


def nested_subset(utterances: Sequence[Utterance], fraction: float,
                  seed: int = 0) -> list[Utterance]:
    """The first ``fraction`` of ``utterances`` in an order fixed by their paths (and
    ``seed``), not by how the list is ordered: a larger fraction holds every utterance of a
    smaller one, which is what a learning curve needs (the curve then measures more data, not
    other data). At least one utterance; the list's own order is kept."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        raise InvalidInputError(f"fraction={fraction!r}: use a fraction of the utterances in "
                                "(0, 1], e.g. 0.25")
    ranked = sorted(utterances, key=lambda u: hashlib.sha256(f"{seed}:{u.path}".encode())
                    .hexdigest())
    keep = {u.path for u in ranked[:max(1, math.ceil(fraction * len(ranked) - 1e-9))]}
    return [u for u in utterances if u.path in keep]


def synth_corpus(out: Path | str, vocab: str = "digits", voices: int = 12,
                 langs: Sequence[str] = ("en",), utterances_per_speaker: int = 20,
                 seed: int = 0, progress: bool = True, force: bool = False) -> Corpus:
    """Synthesize a speech corpus into ``out`` (or reuse the one already there).

    ``voices`` speakers (3 to 300) each say ``utterances_per_speaker`` texts of ``vocab``
    in every language of ``langs`` (``en``, ``ko``); speakers are split 2/3 train, 1/6
    valid, 1/6 test. ``out`` holding a corpus made with other arguments is an error unless
    ``force`` is true, which replaces it.
    """
    arguments = _arguments(vocab, voices, langs, utterances_per_speaker, seed)
    root = Path(out)
    key = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()
    cached = _cached(root, key, arguments, force)
    if cached is not None:
        return cached
    speakers = _speakers(voices, seed)
    jobs = [(speaker, lang, index, text) for speaker in speakers for lang in arguments["langs"]
            for index, text in enumerate(_texts(vocab, lang, utterances_per_speaker,
                                                f"{seed}:{speaker.name}:{lang}"))]
    utterances = []
    with _bar(progress, len(jobs)) as advance:
        for speaker, lang, index, text in jobs:
            utterances.append(_write_utterance(root, speaker, lang, index, text))
            advance()
    for split in SPLITS:
        _write_jsonl(root / f"{split}.jsonl", [u for u in utterances if u.split == split])
    _write_jsonl(root / "manifest.jsonl", utterances)
    meta = {"format": FORMAT, "key": key, "arguments": arguments,
            "speakers": [asdict(s) for s in speakers]}
    # Written last: a corpus.json means every file above is complete.
    (root / "corpus.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return Corpus(root=root, speakers=speakers, utterances=utterances)


def load_corpus(root: Path | str) -> Corpus:
    """The corpus ``synth_corpus`` wrote at ``root``."""
    root = Path(root)
    meta = _read_meta(root)
    if meta is None:
        raise InvalidInputError(f"{root} holds no synthesized corpus (no corpus.json): "
                                "make one with tympan.audio.corpus.synth_corpus")
    lines = (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return Corpus(root=root, speakers=[Speaker(**s) for s in meta["speakers"]],
                  utterances=[Utterance.from_json(json.loads(line)) for line in lines if line])


def _arguments(vocab: str, voices: int, langs: Sequence[str], per_speaker: int,
               seed: int) -> dict[str, Any]:
    """Checked arguments, in the form that corpus.json records and hashes."""
    if vocab not in VOCABS:
        raise InvalidInputError(f"unknown vocabulary {vocab!r}: use one of {', '.join(VOCABS)}")
    if isinstance(voices, bool) or not isinstance(voices, int) \
            or not 3 <= voices <= MAX_SPEAKERS:
        raise InvalidInputError(f"voices={voices!r} is out of range: use 3 to {MAX_SPEAKERS} "
                                "speakers (at least one per split)")
    if isinstance(langs, str):
        langs = [part.strip() for part in langs.split(",")]
    langs = list(dict.fromkeys(langs))  # keep order, drop repeats
    unknown = [lang for lang in langs if lang not in LANGS]
    if not langs or unknown:
        raise InvalidInputError(f"unsupported corpus language(s) {unknown or langs!r}: "
                                f"use one or more of {', '.join(LANGS)}")
    if isinstance(per_speaker, bool) or not isinstance(per_speaker, int) or per_speaker < 1:
        raise InvalidInputError(f"utterances_per_speaker={per_speaker!r} must be 1 or more")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed={seed!r} must be an integer")
    return {"format": FORMAT, "vocab": vocab, "voices": voices, "langs": langs,
            "utterances_per_speaker": per_speaker, "seed": seed, "sample_rate": SAMPLE_RATE}


def _read_meta(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "corpus.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{root / 'corpus.json'} is unreadable ({exc}): "
                                "pass force=True (--force) to rebuild the corpus") from exc


def _cached(root: Path, key: str, arguments: dict[str, Any], force: bool) -> Corpus | None:
    """The corpus at ``root`` if it was made with these arguments; else clear the way."""
    meta = _read_meta(root)
    if meta is not None and meta.get("key") == key and (root / "manifest.jsonl").is_file():
        return load_corpus(root)
    if meta is not None and not force:
        old = meta.get("arguments", {})
        changed = ", ".join(f"{k}={old.get(k)!r} (now {v!r})" for k, v in arguments.items()
                            if old.get(k) != v)
        raise InvalidInputError(f"{root} already holds a corpus made with other arguments "
                                f"({changed}): choose another directory or pass force=True "
                                "(--force) to replace it")
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"{root} is a file, not a directory: choose a directory")
    # Replace only what synth_corpus writes; an interrupted run (no corpus.json) is redone.
    for split in SPLITS:
        shutil.rmtree(root / split, ignore_errors=True)
        (root / f"{split}.jsonl").unlink(missing_ok=True)
    for name in ("manifest.jsonl", "corpus.json"):
        (root / name).unlink(missing_ok=True)
    return None


def _speakers(count: int, seed: int) -> list[Speaker]:
    """``count`` distinct (variant, pitch, rate) speakers and their splits, from ``seed``."""
    rng = random.Random(f"speakers:{seed}")
    variants = list(_VARIANTS)
    rng.shuffle(variants)
    combos: list[tuple[str, int, int]] = []
    seen: set[tuple[str, int, int]] = set()
    while len(combos) < count:
        # Cycle through the variants so speakers differ in timbre before pitch and rate.
        combo = (variants[len(combos) % len(variants)], rng.choice(_PITCHES), rng.choice(_RATES))
        if combo not in seen:
            seen.add(combo)
            combos.append(combo)
    held_out = max(1, round(count / 6))
    order = list(range(count))
    rng.shuffle(order)
    split_of = {i: "test" for i in order[:held_out]}
    split_of.update({i: "valid" for i in order[held_out:2 * held_out]})
    return [Speaker(name=f"spk{i:03d}", variant=v, pitch=p, rate=r,
                    split=split_of.get(i, "train"))
            for i, (v, p, r) in enumerate(combos)]


def _texts(vocab: str, lang: str, count: int, seed: str) -> list[str]:
    rng = random.Random(seed)
    if vocab == "digits":
        words = _DIGITS[lang]
        return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 5)))
                for _ in range(count)]
    pool = (_COMMANDS if vocab == "commands" else _SENTENCES)[lang]
    return [rng.choice(pool) for _ in range(count)]


def _write_utterance(root: Path, speaker: Speaker, lang: str, index: int,
                     text: str) -> Utterance:
    import soundfile

    spoken = synthesize(text, lang, variant=speaker.variant, rate=speaker.rate,
                        pitch=speaker.pitch, sample_rate=SAMPLE_RATE)
    relative = f"{speaker.split}/{speaker.name}/{lang}-{index:04d}.flac"
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, spoken.waveform, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return Utterance(path=relative, text=text, speaker=speaker.name, lang=lang,
                     split=speaker.split, duration=round(len(spoken.waveform) / SAMPLE_RATE, 6),
                     sample_rate=SAMPLE_RATE, sha256=_sha256(path), events=spoken.events)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_jsonl(path: Path, utterances: list[Utterance]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for u in utterances:
            f.write(json.dumps(u.to_json(), ensure_ascii=False, default=_plain) + "\n")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")


@contextmanager
def _bar(progress: bool, total: int) -> Iterator[Any]:
    """A rich progress bar on a terminal; a no-op elsewhere (tests, CI logs)."""
    if not (progress and sys.stderr.isatty()):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("synthesizing", total=total)
        yield lambda: bar.advance(task)
