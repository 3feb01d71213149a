"""Blind preference tests: listeners compare a study arm's clips with the baseline's.

A test is one arm of a one-at-a-time study against the baseline arm. Its pairs are the clips
both logged under the same audio key at their last step, seed by seed: the arm's seed-s run
against the baseline's seed-s run, so a pair differs only in the component the arm changes.
Each listener hears the pairs in an order of their own, each pair's two clips as "1" and "2"
in an order of their own (both drawn from a hash of the listener and the pair, so a reload
shows the same test, and the page never learns which clip is which arm), and says which clip
they prefer. Every judgement is stored with the listener, the order shown and the token that
sent it (store/preferences.py).

What the judgements give:

- ``preference_result``: the share of judgements preferring the arm, with a 95% interval
  from a two-stage bootstrap (listeners, then each listener's judgements), so that one keen
  listener cannot make it look surer than it is;
- ``listening_metrics``: the study metric ``listen/preference`` of each trial run, which the
  study's analysis compares like any other metric (add ``{name: preference, split: listen,
  direction: higher}`` to the study's metrics): for an arm's run, the share of judgements
  that preferred its clips to the baseline run's of the same seed; for a baseline run, 0.5
  (a clip against itself), so the effect is "preferred over the baseline, above chance".
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError, NotFoundError
from tympan.store import Store, preferences
from tympan.store.schema import PREFERENCE_SIDES
from tympan.store.summaries import Summary

__all__ = ["METRIC", "ListenerPair", "Pair", "PreferenceResult", "clip_of", "listener_pairs",
           "listening_metrics", "pairs_for", "preference_result", "record_preference",
           "test_arms"]

METRIC = "listen/preference"
BASELINE = "baseline"
N_BOOT = 2000
MAX_LISTENER = 200


@dataclass(frozen=True)
class Pair:
    """Two clips of the same text: the arm run's and the baseline run's, at their last step."""

    seed: int
    key: str
    arm_sample: int
    baseline_sample: int
    arm_run: str
    baseline_run: str
    captions: tuple[str | None, str | None]  # the arm's clip's and the baseline's

    @property
    def text(self) -> str | None:
        """What a listener may read: the part of both captions before " · " when they agree
        on it (the text said), never what differs (a recognizer's transcript of one arm)."""
        heads = [(c or "").split(" · ", 1)[0].strip() for c in self.captions]
        return heads[0] if heads[0] and heads[0] == heads[1] else None

    @property
    def id(self) -> str:
        return f"{self.seed}:{self.key}"

    def arm_first(self, listener: str, study_id: str, arm: str) -> bool:
        """Whether this listener hears the arm's clip as "1" (a fair coin per listener and
        pair, the same on every visit)."""
        return _draw(listener, study_id, arm, self.id) % 2 == 0


@dataclass(frozen=True)
class PreferenceResult:
    arm: str
    judgements: int
    listeners: int
    prefer_arm: int
    rate: float  # share of judgements preferring the arm (NaN with none)
    low: float
    high: float
    confidence: float


def test_arms(stored: Any) -> list[str]:
    """The arms of a study that a preference test can compare with the baseline."""
    if stored.spec.design != "one-at-a-time":
        return []
    return sorted({t.arm for t in stored.current_trials() if t.arm != BASELINE})


def pairs_for(stored: Any, arm: str) -> list[Pair]:
    """The pairs of ``arm``'s test: per seed where both arms finished, per audio key both
    runs logged, their clips at each run's last step of that key."""
    arms = test_arms(stored)
    if arm not in arms:
        raise NotFoundError(f"study {stored.name} has no arm {arm!r} to compare with the "
                            f"baseline" + (f" (its arms: {', '.join(arms)})" if arms else
                                           ": preference tests need a one-at-a-time study"))
    runs: dict[str, dict[int, str]] = {}
    for t in stored.current_trials():
        if t.status == "finished" and t.run_id and t.arm in (arm, BASELINE):
            runs.setdefault(t.arm, {})[t.seed] = t.run_id
    out = []
    clips = stored.studies.runs.audio_samples
    for seed in sorted(set(runs.get(arm, {})) & set(runs.get(BASELINE, {}))):
        mine = _last_clips(clips(runs[arm][seed]))
        theirs = _last_clips(clips(runs[BASELINE][seed]))
        for key in sorted(set(mine) & set(theirs)):
            out.append(Pair(seed, key, mine[key].id, theirs[key].id, runs[arm][seed],
                            runs[BASELINE][seed], (mine[key].caption, theirs[key].caption)))
    return out


def _last_clips(rows: list[Any]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for row in rows:  # ordered by key, step, id
        last[row.key] = row
    return last


def ordered_pairs(stored: Any, arm: str, listener: str) -> list[Pair]:
    """The pairs in this listener's own order."""
    return sorted(pairs_for(stored, arm),
                  key=lambda p: _draw(listener, stored.id, arm, "order", p.id))


@dataclass(frozen=True)
class ListenerPair:
    """A pair as its listener sees it: no run, sample or arm, only what they chose."""

    id: str
    text: str | None
    choice: int | None  # 1 or 2, as they heard the clips; None before they judged it


def listener_pairs(store: Store, stored: Any, arm: str, listener: str) -> list[ListenerPair]:
    """``arm``'s pairs in this listener's order, with the clip they preferred so far."""
    name = check_listener(listener)
    chosen = {f"{row.seed}:{row.key}": 1 if row.choice == row.shown_first else 2
              for row in judgements(store, stored.id, arm) if row.listener == name}
    return [ListenerPair(p.id, p.text, chosen.get(p.id))
            for p in ordered_pairs(stored, arm, name)]


def clip_of(stored: Any, arm: str, listener: str, pair_id: str,
            position: int) -> tuple[str, int]:
    """(run id, sample id) of the clip this listener hears at ``position`` (1 or 2)."""
    name = check_listener(listener)
    pair = _pair(stored, arm, pair_id)
    if pair.arm_first(name, stored.id, arm) == (position == 1):
        return pair.arm_run, pair.arm_sample
    return pair.baseline_run, pair.baseline_sample


def _pair(stored: Any, arm: str, pair_id: str) -> Pair:
    pair = next((p for p in pairs_for(stored, arm) if p.id == pair_id), None)
    if pair is None:
        raise NotFoundError(f"arm {arm!r} of study {stored.name} has no pair {pair_id!r}")
    return pair


def check_listener(listener: str) -> str:
    name = (listener or "").strip()
    if not name or len(name) > MAX_LISTENER or any(ord(c) < 32 for c in name):
        raise InvalidInputError(f"listener {listener!r}: give a name of 1 to {MAX_LISTENER} "
                                "printable characters, so each listener's judgements are "
                                "kept apart")
    return name


def record_preference(store: Store, stored: Any, arm: str, listener: str, pair_id: str,
                      choice: int, token_id: str | None = None) -> Pair:
    """Store that ``listener`` preferred clip ``choice`` (1 or 2, as they heard them) of
    the pair ``pair_id`` of ``arm``'s test; returns the pair."""
    listener = check_listener(listener)
    if choice not in (1, 2):
        raise InvalidInputError(f"choice {choice!r}: say 1 or 2, the clip you prefer")
    pair = _pair(stored, arm, pair_id)
    first = "arm" if pair.arm_first(listener, stored.id, arm) else "baseline"
    chosen = first if choice == 1 else next(s for s in PREFERENCE_SIDES if s != first)
    with store.write() as conn:
        preferences.record(conn, study_id=stored.id, arm=arm, seed=pair.seed, key=pair.key,
                           arm_sample=pair.arm_sample, baseline_sample=pair.baseline_sample,
                           listener=listener, shown_first=first, choice=chosen,
                           token_id=token_id, created_at=time.time())
    return pair


def judgements(store: Store, study_id: str, arm: str | None = None) -> list[Any]:
    with store.read() as conn:
        return preferences.for_study(conn, study_id, arm)


def preference_result(store: Store, stored: Any, arm: str, confidence: float = 0.95,
                      n_boot: int = N_BOOT, seed: int = 0) -> PreferenceResult:
    """The share of ``arm``'s judgements that preferred the arm, with its interval."""
    rows = judgements(store, stored.id, arm)
    by_listener: dict[str, list[int]] = {}
    for row in rows:
        by_listener.setdefault(row.listener, []).append(int(row.choice == "arm"))
    prefer = sum(sum(v) for v in by_listener.values())
    n = len(rows)
    rate = prefer / n if n else math.nan
    low, high = _two_stage_interval(list(by_listener.values()), confidence, n_boot, seed)
    return PreferenceResult(arm, n, len(by_listener), prefer, rate, low, high, confidence)


def _two_stage_interval(groups: list[list[int]], confidence: float, n_boot: int,
                        seed: int) -> tuple[float, float]:
    """Percentile interval of the pooled share, resampling listeners and then each chosen
    listener's judgements. NaN with no judgement."""
    if not groups:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(g, dtype=float) for g in groups]
    shares = np.empty(n_boot)
    for b in range(n_boot):
        picked = rng.integers(0, len(arrays), len(arrays))
        wins = total = 0.0
        for i in picked:
            values = arrays[i][rng.integers(0, len(arrays[i]), len(arrays[i]))]
            wins += values.sum()
            total += len(values)
        shares[b] = wins / total
    tail = (1 - confidence) / 2
    return float(np.quantile(shares, tail)), float(np.quantile(shares, 1 - tail))


def listening_metrics(store: Store, stored: Any) -> dict[str, Summary]:
    """``listen/preference`` per trial run id (see the module docstring); runs nobody judged
    are left out."""
    rows = judgements(store, stored.id)
    if not rows:
        return {}
    trials = {(t.arm, t.seed): t.run_id for t in stored.current_trials() if t.run_id}
    shares: dict[str, list[int]] = {}
    judged_seeds = set()
    for row in rows:
        run_id = trials.get((row.arm, row.seed))
        if run_id is not None:
            shares.setdefault(run_id, []).append(int(row.choice == "arm"))
            judged_seeds.add(row.seed)
    out = {run_id: _summary(sum(v) / len(v), len(v)) for run_id, v in shares.items()}
    for seed in judged_seeds:
        run_id = trials.get((BASELINE, seed))
        if run_id is not None:
            out[run_id] = _summary(0.5, 1)
    return out


def _summary(value: float, count: int) -> Summary:
    return Summary(last=value, last_step=0, min=value, min_step=0, max=value, max_step=0,
                   count=count)


def _draw(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")
