"""Word and character error rates with bootstrap confidence intervals.

Counts come from jiwer (``jiwer.process_words`` / ``jiwer.process_characters`` with their
default transforms: words are split on whitespace, characters include the spaces between
words). Normalization is the caller's: lower-case, strip punctuation, expand numbers, etc.
*before* calling, the same way for references and hypotheses, or the rate counts
formatting differences as errors.

The rate is the corpus-level one: total errors (substitutions + deletions + insertions) over
total reference tokens, not the mean of per-utterance rates (which over-weights short
utterances). Its uncertainty comes from a percentile bootstrap that resamples utterances
(and, given speakers, a clustered one that resamples whole speakers: utterances of one
speaker are correlated, so the utterance bootstrap is too narrow when speakers differ).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError

__all__ = [
    "ConfidenceInterval",
    "ErrorCounts",
    "ErrorRateReport",
    "UtteranceErrors",
    "character_error_rate",
    "word_error_rate",
]

# Bootstrap resamples are drawn in chunks so the index matrix stays ~32 MB however many
# utterances there are.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class ErrorCounts:
    """Alignment counts, and the error rate they give (one utterance or a whole corpus)."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_length(self) -> int:
        """Reference tokens (words or characters)."""
        return self.substitutions + self.deletions + self.hits

    @property
    def rate(self) -> float:
        """errors / reference length; an empty reference gives 0.0 (no errors) or inf."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else math.inf
        return self.errors / self.reference_length


@dataclass(frozen=True)
class UtteranceErrors(ErrorCounts):
    """Alignment counts of one reference/hypothesis pair."""

    reference: str
    hypothesis: str


@dataclass(frozen=True)
class ConfidenceInterval:
    """Percentile bootstrap interval of the corpus-level rate."""

    low: float
    high: float
    level: float  # e.g. 0.95
    n_boot: int
    resampled: str  # "utterances" or "speakers"

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ErrorRateReport(ErrorCounts):
    """Corpus-level error rate (total errors over total reference length), its counts,
    per-utterance results and confidence intervals."""

    unit: str  # "word" or "character"
    utterances: tuple[UtteranceErrors, ...]
    ci: ConfidenceInterval  # resampling utterances
    speaker_ci: ConfidenceInterval | None  # resampling speakers; None without speakers


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str],
                    speakers: Sequence[Any] | None = None, *, n_boot: int = 10_000,
                    ci: float = 0.95, seed: int = 0) -> ErrorRateReport:
    """Corpus WER of ``hypotheses`` against ``references`` (one string per utterance).

    ``speakers`` (one hashable label per utterance) adds ``speaker_ci``, a clustered
    bootstrap over speakers. ``n_boot`` resamples, ``ci`` the interval's coverage, ``seed``
    makes the intervals reproducible. Normalize the text before calling (see the module).
    """
    import jiwer

    return _report("word", jiwer.process_words, references, hypotheses, speakers,
                   n_boot, ci, seed)


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str],
                         speakers: Sequence[Any] | None = None, *, n_boot: int = 10_000,
                         ci: float = 0.95, seed: int = 0) -> ErrorRateReport:
    """Corpus CER, as :func:`word_error_rate` but counting characters (spaces included)."""
    import jiwer

    return _report("character", jiwer.process_characters, references, hypotheses, speakers,
                   n_boot, ci, seed)


def _report(unit: str, process: Callable[..., Any], references: Sequence[str],
            hypotheses: Sequence[str], speakers: Sequence[Any] | None, n_boot: int,
            ci: float, seed: int) -> ErrorRateReport:
    refs, hyps = _checked_texts(references, hypotheses, speakers)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InvalidInputError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (isinstance(ci, (int, float)) and 0.0 < ci < 1.0):
        raise InvalidInputError(f"ci must be a coverage between 0 and 1 (e.g. 0.95), got {ci!r}")

    # One jiwer call for the whole corpus; per-utterance counts come from its alignments.
    out = process(refs, hyps)
    utterances = tuple(_utterance(r, h, chunks) for r, h, chunks in
                       zip(refs, hyps, out.alignments, strict=True))
    errors = np.array([u.errors for u in utterances], dtype=np.float64)
    lengths = np.array([u.reference_length for u in utterances], dtype=np.float64)
    if lengths.sum() == 0:
        raise InvalidInputError(f"all {len(refs)} references are empty: the {unit} error "
                                "rate is undefined")

    rng = np.random.default_rng(seed)
    utt_ci = _bootstrap(errors, lengths, n_boot, ci, rng, "utterances")
    speaker_ci = None
    if speakers is not None:
        # Clustered bootstrap: a speaker's utterances always travel together, so resampling
        # speakers' summed counts is exactly resampling speakers with all their utterances.
        index: dict[Any, int] = {}
        group = np.array([index.setdefault(s, len(index)) for s in speakers])
        spk_errors = np.bincount(group, weights=errors)
        spk_lengths = np.bincount(group, weights=lengths)
        speaker_ci = _bootstrap(spk_errors, spk_lengths, n_boot, ci, rng, "speakers")

    return ErrorRateReport(
        unit=unit, substitutions=int(out.substitutions), deletions=int(out.deletions),
        insertions=int(out.insertions), hits=int(out.hits), utterances=utterances,
        ci=utt_ci, speaker_ci=speaker_ci)


def _checked_texts(references: Sequence[str], hypotheses: Sequence[str],
                   speakers: Sequence[Any] | None) -> tuple[list[str], list[str]]:
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise InvalidInputError("references and hypotheses must be lists of strings (one per "
                                "utterance), not a single string")
    refs, hyps = list(references), list(hypotheses)
    if not refs:
        raise InvalidInputError("no references given: need at least one utterance")
    if len(refs) != len(hyps):
        raise InvalidInputError(f"{len(refs)} references but {len(hyps)} hypotheses: "
                                "give one hypothesis per reference")
    for name, texts in (("references", refs), ("hypotheses", hyps)):
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise InvalidInputError(f"{name}[{bad}] is {type(texts[bad]).__name__}, not str")
    if speakers is not None and len(speakers) != len(refs):
        raise InvalidInputError(f"{len(refs)} references but {len(speakers)} speakers: "
                                "give one speaker label per utterance")
    return refs, hyps


def _utterance(ref: str, hyp: str, chunks: Sequence[Any]) -> UtteranceErrors:
    counts = {"substitute": 0, "delete": 0, "insert": 0, "equal": 0}
    for c in chunks:
        # A chunk spans several tokens; inserts span hypothesis tokens, the rest reference ones.
        span = (c.hyp_end_idx - c.hyp_start_idx if c.type == "insert"
                else c.ref_end_idx - c.ref_start_idx)
        counts[c.type] += span
    return UtteranceErrors(reference=ref, hypothesis=hyp, substitutions=counts["substitute"],
                           deletions=counts["delete"], insertions=counts["insert"],
                           hits=counts["equal"])


def _bootstrap(errors: np.ndarray, lengths: np.ndarray, n_boot: int, level: float,
               rng: np.random.Generator, resampled: str) -> ConfidenceInterval:
    n = errors.size
    rates = np.empty(n_boot)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        e, ln = errors[idx].sum(axis=1), lengths[idx].sum(axis=1)
        # A resample of only empty references has no rate: nan, left out of the quantiles.
        rates[start:stop] = np.where(ln > 0, e / np.where(ln > 0, ln, 1.0), np.nan)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(rates, [alpha, 1.0 - alpha])
    return ConfidenceInterval(float(low), float(high), float(level), int(n_boot), resampled)
