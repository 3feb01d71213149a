"""The TTS recipe's data: one espeak speaker's utterances as (tokens, durations, log-mel).

Tokens are espeak's phonemes (the corpus records each phoneme's start time: their
differences, on the frame grid, are the durations the non-autoregressive decoder learns)
or the characters of the text. The speaker's last ``valid_utterances`` utterances are the
held-out texts every arm is judged on; the others are its training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tympan.audio.corpus import Corpus, Utterance
from tympan.audio.io import load
from tympan.errors import ConfigError

PAD = "<pad>"
CHARACTERS = " abcdefghijklmnopqrstuvwxyz'"


def phonemes(utterance: Utterance) -> list[tuple[str, float]]:
    """(phoneme, start in seconds) of an utterance, as espeak spoke it."""
    return [(e.text, e.start) for e in utterance.events if e.kind == "phoneme" and e.text]


def tokens_of(utterance: Utterance, text: str) -> list[str]:
    if text == "phonemes":
        return [p for p, _ in phonemes(utterance)]
    return list(utterance.text.lower())


def durations_of(utterance: Utterance, frames: int, sample_rate: int, hop: int) -> list[int]:
    """Frames each phoneme lasts: from the frame nearest its start to the next one's (the
    first takes the leading silence, the last runs to the end); they sum to ``frames``."""
    starts = [round(start * sample_rate / hop) for _, start in phonemes(utterance)]
    starts = [0] + [min(max(s, 0), frames) for s in starts[1:]] + [frames]
    starts = np.maximum.accumulate(starts)  # espeak's events are in order; be safe anyway
    return np.diff(starts).tolist()


@dataclass
class Vocabulary:
    """Token <-> id; id 0 pads. Built from the training texts and saved with the model."""

    symbols: list[str]

    @classmethod
    def build(cls, text: str, utterances: list[Utterance]) -> Vocabulary:
        if text == "chars":
            return cls([PAD, *CHARACTERS])
        return cls([PAD, *sorted({t for u in utterances for t in tokens_of(u, text)})])

    def encode(self, tokens: list[str]) -> torch.Tensor:
        index = {s: i for i, s in enumerate(self.symbols)}
        unknown = sorted({t for t in tokens if t not in index})
        if unknown:
            raise ConfigError(f"tokens {unknown} are not in the model's vocabulary: the "
                              "recipe only speaks what its training texts contained")
        return torch.tensor([index[t] for t in tokens])


@dataclass
class Example:
    utterance: Utterance
    wave: np.ndarray
    tokens: torch.Tensor  # (tokens,) ids
    mel: torch.Tensor  # (frames, n_mels) normalized log-mel
    durations: torch.Tensor | None  # (tokens,) frames per phoneme; None for characters


def speaker_utterances(corpus: Corpus, speaker: str | None) -> list[Utterance]:
    """The utterances of ``speaker`` (default: the corpus's first training speaker)."""
    if speaker is None:
        speaker = corpus.split("train")[0].speaker
    utts = [u for u in corpus.utterances if u.speaker == speaker]
    if not utts:
        known = ", ".join(sorted({u.speaker for u in corpus.utterances}))
        raise ConfigError(f"speaker={speaker!r} is not in the corpus (its speakers: {known})")
    return utts


def load_examples(utterances: list[Utterance], corpus: Corpus, vocab: Vocabulary, text: str,
                  scale, raw: list[torch.Tensor] | None = None) -> list[Example]:
    """Examples with normalized log-mel (``scale``: the recipe's ``MelScale``)."""
    out = []
    for k, u in enumerate(utterances):
        wave = load(corpus.file(u), mono=True)[0]
        log_mel = raw[k] if raw is not None else scale.log_mel(wave)
        durations = None
        if text == "phonemes":
            durations = torch.tensor(durations_of(u, log_mel.shape[0], scale.sample_rate,
                                                  scale.hop))
        out.append(Example(u, wave, vocab.encode(tokens_of(u, text)), scale.normalize(log_mel),
                           durations))
    return out


@dataclass
class Batch:
    tokens: torch.Tensor  # (batch, tokens) padded with 0
    token_lengths: torch.Tensor
    mel: torch.Tensor  # (batch, frames, n_mels) padded with 0
    mel_lengths: torch.Tensor
    durations: torch.Tensor | None  # (batch, tokens) padded with 0


def collate(examples: list[Example]) -> Batch:
    pad = torch.nn.utils.rnn.pad_sequence
    durations = None
    if all(e.durations is not None for e in examples):
        durations = pad([e.durations for e in examples], batch_first=True)
    return Batch(pad([e.tokens for e in examples], batch_first=True),
                 torch.tensor([len(e.tokens) for e in examples]),
                 pad([e.mel for e in examples], batch_first=True),
                 torch.tensor([len(e.mel) for e in examples]), durations)


def batches(examples: list[Example], batch_size: int, generator: torch.Generator) -> list[Batch]:
    """Shuffled batches of similar lengths (sorted within buckets of 4 batches): less
    padding, so fewer wasted decoder steps."""
    order = torch.randperm(len(examples), generator=generator).tolist()
    bucket = 4 * batch_size
    out = []
    for i in range(0, len(order), bucket):
        chunk = sorted(order[i:i + bucket], key=lambda j: len(examples[j].mel))
        out += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(out), generator=generator).tolist()
    return [collate([examples[j] for j in out[k]]) for k in shuffled]
