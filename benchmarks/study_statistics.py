"""Do the seed-paired statistics hold their level? Simulated studies with known effects.

For each noise distribution and seed count, ``--studies`` simulated comparisons go through
``tympan.study.stats.effect_from_differences``, once with the default test (exact sign-flip,
its inverted interval widened to bootstrap-t) and once with ``test="t-test"`` (the paired
t-test with the bootstrap-t / Student t interval, what tympan did before). Printed:

- coverage: share of 95% intervals that contain the true effect;
- verdicts under no effect: share of studies with a verdict (p < 0.05 and the interval
  excluding 0), the false-positive rate of one comparison; ``t p<.05`` is the bare
  t-test's rate, the figure issue 11 quoted;
- power: share of studies with the right verdict when the true effect is 1 noise sd.

The noise is centred and scaled to sd 1. ``--model differences`` draws the paired
differences from it directly (skewed differences: a treatment that changes the shape of
the results, not their mean); ``--model arms`` draws each arm's noise and takes the
difference (what "no effect at all" gives: symmetric differences).

    .venv/bin/python benchmarks/study_statistics.py [--studies 1000] [--model differences]
"""

from __future__ import annotations

import argparse
import math
import sys
import zlib
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from tympan.study.stats import NO_EFFECT, effect_from_differences, verdict  # noqa: E402

LOGNORMAL_MEAN, LOGNORMAL_SD = math.exp(0.5), math.sqrt((math.e - 1) * math.e)
NOISES = {
    "normal": lambda rng, shape: rng.normal(size=shape),
    "t(3)": lambda rng, shape: rng.standard_t(3, size=shape) / math.sqrt(3),
    "exponential": lambda rng, shape: rng.exponential(size=shape) - 1.0,
    "log-normal": lambda rng, shape: (rng.lognormal(0, 1, size=shape) - LOGNORMAL_MEAN)
    / LOGNORMAL_SD,
}


def draw(rng: np.random.Generator, noise: str, model: str, shape: tuple[int, int]) -> np.ndarray:
    if model == "differences":
        return NOISES[noise](rng, shape)
    return (NOISES[noise](rng, shape) - NOISES[noise](rng, shape)) / math.sqrt(2)


def cell(diffs: np.ndarray, shift: float, test: str) -> tuple[float, float]:
    """(coverage, share of studies with the right-signed verdict) at true effect ``shift``."""
    covered = decided = 0
    for i, d in enumerate(diffs + shift):
        e = effect_from_differences(d, lower_is_better=False, n_boot=2000, seed=i, test=test)
        covered += e.low <= shift <= e.high
        said = verdict(e, e.p_value, lower_is_better=False)
        decided += said != NO_EFFECT and (shift == 0 or said == "improves")
    return covered / len(diffs), decided / len(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000, help="studies per cell")
    parser.add_argument("--model", choices=("differences", "arms"), default="differences")
    args = parser.parse_args()
    print(f"{args.studies} studies per cell, noise drawn for the {args.model}; "
          "tympan = sign-flip (default), before = t-test")
    print("| noise | seeds | coverage tympan | coverage before | verdicts, no effect: "
          "tympan | before | t p<.05 | power at 1 sd: tympan | before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for noise in NOISES:
        for n in (3, 5, 10, 20):
            rng = np.random.default_rng(zlib.crc32(f"{noise} {n} {args.model}".encode()))
            diffs = draw(rng, noise, args.model, (args.studies, n))
            t_rate = float((sps.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05).mean())
            cov, fpr = cell(diffs, 0.0, "sign-flip")
            cov_b, fpr_b = cell(diffs, 0.0, "t-test")
            power = cell(diffs, 1.0, "sign-flip")[1]
            power_b = cell(diffs, 1.0, "t-test")[1]
            print(f"| {noise} | {n} | {cov:.3f} | {cov_b:.3f} | {fpr:.3f} | {fpr_b:.3f} | "
                  f"{t_rate:.3f} | {power:.3f} | {power_b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
