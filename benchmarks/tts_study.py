"""The TTS study's figures, per arm, from what its runs stored (nothing is re-measured).

    .venv/bin/python benchmarks/tts_study.py --store .tympan --study tts_components_quick

For each arm (a trial's levels) across its seeds: the ASR judge's CER on the held-out texts
(mean and range), MCD (dB), F0 RMSE (Hz) and correlation, the free-running alignment's
diagonality, the alignment-failure rate (``test/align_fail``), how many runs the probe's
``attention_alignment`` rule fired in (and its first step), and the wall time of a trial;
each arm's CER and MCD as a ratio of the baseline's. Then the judge: its CER on espeak's
originals of the same texts and on the originals through the vocoder, the floor any arm
can reach. Last, the issue's targets: the best arm's CER <= 10%, and the baseline's
diagonality above the recipe's ``align_threshold``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict

import tympan
from tympan.study.records import load_stored_study
from tympan.track.stores import shared_store

METRICS = ("test/cer", "test/mcd", "test/f0_rmse", "test/f0_corr", "test/diagonality",
           "test/align_fail", "wall_seconds")


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _span(values: list[float], digits: int) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "-"
    return (f"{_mean(finite):.{digits}f} [{min(finite):.{digits}f}, "
            f"{max(finite):.{digits}f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="the study's store (default: TYMPAN_STORE)")
    parser.add_argument("--study", default="tts_components_quick")
    args = parser.parse_args()
    stored = load_stored_study(shared_store(args.store), args.study)
    arms: dict[str, list] = defaultdict(list)
    for trial in stored.current_trials():
        if trial.status == "finished" and trial.run_id:
            arms[trial.arm].append(tympan.load_run(trial.run_id, store=args.store))
    if not arms:
        raise SystemExit(f"study {args.study}: no finished trial yet")
    values = {arm: {m: [r.summary[m].last if m in r.summary else math.nan for r in runs]
                    for m in METRICS} for arm, runs in arms.items()}
    base = values.get("baseline")
    print(f"study {stored.name}: {sum(map(len, arms.values()))} finished runs in "
          f"{len(arms)} arms\n")
    print("| arm | seeds | CER by ASR | CER / baseline | MCD (dB) | MCD / baseline | F0 RMSE (Hz)"
          " | F0 corr | diagonality | alignment failures | rule fired (first step) | s/trial |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arm in sorted(arms, key=lambda a: (a != "baseline", a)):
        v, runs = values[arm], arms[arm]
        fired = []
        for r in runs:
            events = json.loads(r.read_artifact("probe/events.json"))
            steps = [e["step"] for e in events if e["rule"] == "attention_alignment"]
            if steps:
                fired.append(min(steps))
        ratio = {m: (_mean(v[m]) / _mean(base[m]) if base else math.nan)
                 for m in ("test/cer", "test/mcd")}
        print(f"| {arm} | {len(runs)} | {_span(v['test/cer'], 3)} | {ratio['test/cer']:.2f}x | "
              f"{_span(v['test/mcd'], 2)} | {ratio['test/mcd']:.2f}x | "
              f"{_mean(v['test/f0_rmse']):.1f} | {_mean(v['test/f0_corr']):.2f} | "
              f"{_span(v['test/diagonality'], 2)} | "
              f"{int(sum(v['test/align_fail']))}/{len(runs)} | "
              f"{len(fired)}/{len(runs)}{f' ({min(fired)})' if fired else ''} | "
              f"{_mean(v['wall_seconds']):.0f} |")
    first = next(iter(arms.values()))[0]
    judge = json.loads(first.read_artifact("judge.json"))
    print(f"\njudge {judge['judge']} (run {judge['judge_run']}): CER {judge['cer_original']:.3f} "
          f"on espeak's originals of the held-out texts, {judge['cer_vocoded']:.3f} on them "
          f"through the vocoder")
    best = min(arms, key=lambda a: _mean(values[a]["test/cer"]))
    cer = _mean(values[best]["test/cer"])
    print(f"target: best arm's CER <= 0.10: {best} {cer:.3f} "
          f"({'met' if cer <= 0.10 else 'NOT met'})")
    if base:
        threshold = first.config["align_threshold"]
        diag = _mean(base["test/diagonality"])
        print(f"target: baseline diagonality > align_threshold {threshold}: {diag:.2f} "
              f"({'met' if diag > threshold else 'NOT met'})")


if __name__ == "__main__":
    main()
