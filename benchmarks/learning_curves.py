"""Backtest of tympan's learning curves: are the 80% intervals honest on real training runs?

For every stored learning-curve study, metric, subset of seeds and cut-off, fit the curve on
the smaller sizes only, predict the mean at the largest size (the mean of the same seeds),
and check whether the observed value falls inside the 80% interval. Every estimator
(``averaged`` over curve shapes, the default; ``weighted``, one power law, the default before
it; ``unweighted``, the common practice) runs on the same points.
Also reports the point estimate's error in data-size terms: the size at which the fitted
curve reaches the value observed at the largest size, against the largest size itself
(log2 ratio: 1.0 means the curve thought twice the data would be needed).

Target (issue 15): 80% intervals cover 75-85% of held-out points.

    .venv/bin/tympan ablate studies/asr_learning_curve.yaml --workers 2       # ~10 min
    .venv/bin/tympan ablate studies/speaker_learning_curve.yaml --workers 2   # ~10 min
    .venv/bin/python benchmarks/learning_curves.py --store .tympan

The studies' runs are the expensive part; this script only reads them (seconds).
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass

import numpy as np

from tympan.errors import InvalidInputError
from tympan.store import open_store, studies
from tympan.study.curves import curve_data, fit_curve
from tympan.study.quantify import curve_points, utterance_variances
from tympan.study.records import load_stored_study

LEVEL = 0.8
# the average over curve shapes and the weighted power law, both with the seeds' and the test
# utterances' noise (what tympan quantify does when the runs logged per-utterance errors),
# the weighted power law with the seeds' noise only, and the unweighted power law.
METHODS = ("averaged", "weighted", "weighted-seeds", "unweighted")


@dataclass
class Case:
    study: str
    metric: str
    seeds: tuple[int, ...]
    cut: int  # sizes fitted (the smallest ones)
    method: str
    covered: bool
    width: float
    log2_size_error: float  # log2(size where the fit reaches the observed value / largest)


def backtest(store: object, name: str) -> list[Case]:
    stored = load_stored_study(store, name)  # type: ignore[arg-type]
    cases = []
    for metric in stored.spec.metrics:
        points = curve_points(stored, metric, None)
        seeds_all = sorted({p.seed for p in points})
        sizes = sorted({p.size for p in points})
        largest = sizes[-1]
        subsets = [tuple(s) for k in range(2, len(seeds_all) + 1)
                   for s in itertools.combinations(seeds_all, k)]
        for seeds, cut in itertools.product(subsets, range(3, len(sizes))):
            chosen = [p for p in points if p.seed in seeds]
            fitted = [p for p in chosen if p.size in sizes[:cut]]
            truth = float(np.mean([p.value for p in chosen if p.size == largest]))
            extra = utterance_variances(stored, metric, fitted, [])
            values = [[p.value for p in fitted if p.size == s] for s in sizes[:cut]]
            if not all(values) or not any(p.size == largest for p in chosen):
                continue  # a trial of these seeds failed: no paired curve to test
            for method in METHODS:
                data = curve_data(sizes[:cut], values, lower_is_better=metric.lower_is_better,
                                  extra_variances=[extra.get(s, 0.0) for s in sizes[:cut]]
                                  if extra and method in ("averaged", "weighted") else None)
                try:
                    fit = fit_curve(data, method=method.partition("-")[0],  # type: ignore[arg-type]
                                    max_extrapolation=1e6)
                except InvalidInputError:
                    continue
                p = fit.predict(largest, LEVEL, seeds=len(seeds))
                reach = fit.size_for(truth, LEVEL).estimate
                error = math.log2(reach / largest) if math.isfinite(reach) and reach > 0 \
                    else math.inf
                cases.append(Case(name, metric.key, seeds, cut, method,
                                  p.low <= truth <= p.high, p.high - p.low, error))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=".tympan")
    parser.add_argument("--study", action="append",
                        help="learning-curve studies to backtest (default: all in the store)")
    args = parser.parse_args()
    store = open_store(args.store)
    with store.read() as conn:
        names = args.study or sorted({row.name for row in studies.all_studies(conn)
                                      if (row.spec or {}).get("spec", {}).get("design")
                                      == "learning_curve"})
    cases = [c for name in names for c in backtest(store, name)]
    if not cases:
        raise SystemExit(f"no finished learning-curve study in {args.store}: run the studies "
                         "in this script's docstring first")
    print(f"backtest of {LEVEL:.0%} intervals: fit the smaller sizes, predict the largest "
          f"({len(names)} studies)\n")
    header = (f"{'study':<24} {'metric':<18} {'method':<14} {'cases':>5} {'coverage':>8} "
              f"{'median width':>12} {'median |log2 size error|':>24} {'unreached':>9}")
    print(header)
    print("-" * len(header))
    groups: dict[tuple[str, str, str], list[Case]] = {}
    for c in cases:
        groups.setdefault((c.study, c.metric, c.method), []).append(c)
        groups.setdefault(("all", "all", c.method), []).append(c)
    for (study, metric, method), group in groups.items():
        errors = [abs(c.log2_size_error) for c in group if math.isfinite(c.log2_size_error)]
        unreached = sum(not math.isfinite(c.log2_size_error) for c in group)
        print(f"{study:<24} {metric:<18} {method:<14} {len(group):>5} "
              f"{np.mean([c.covered for c in group]):>8.0%} "
              f"{np.median([c.width for c in group]):>12.3g} "
              f"{np.median(errors) if errors else math.nan:>24.2f} {unreached:>9}")
    print("\nby cut-off (all studies and metrics):")
    for method in METHODS:
        for cut in sorted({c.cut for c in cases}):
            group = [c for c in cases if c.method == method and c.cut == cut]
            print(f"  {method:<14} fitted on the {cut} smallest sizes: "
                  f"{np.mean([c.covered for c in group]):.0%} of {len(group)}")
    for method in METHODS:
        coverage = np.mean([c.covered for c in cases if c.method == method])
        verdict = "within" if 0.75 <= coverage <= 0.85 else "OUTSIDE"
        print(f"{method} coverage {coverage:.0%}: {verdict} the 75-85% target")


if __name__ == "__main__":
    main()
