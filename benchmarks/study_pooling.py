"""Coverage of the pooled interval of findings: simulated meta-analyses of few small studies.

Each simulated study is an ablation with ``--seeds`` seeds (``3,10``: alternating 3 and 10
seeds) whose paired differences are
``effect + u + noise``: ``u ~ N(0, tau²)`` is what differs between studies (data, recipe),
``noise ~ N(0, 1)`` the seed-to-seed variation. The study goes through tympan's own
analysis (``stats.effect_from_differences``, then the standard error read back from its
interval as ``tympan.findings`` does), and 2, 3, 5 or 10 such studies are pooled:

- DerSimonian-Laird with a z interval, each study weighted by its own variance (before),
- Hartung-Knapp-Sidik-Jonkman (t with k - 1 df on the HK variance), own variances,
- the same with the "modified" rule (q floored at 1),
- HKSJ on the per-seed variance pooled over the studies: what ``tympan findings`` uses,
- and that with the modified rule.

It prints the share of meta-analyses whose 95% interval covers the true effect (Monte Carlo
standard error about 0.005 at 2,000) and the median interval width.

    .venv/bin/python benchmarks/study_pooling.py [--sims 1000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from tympan.study.pooling import (  # noqa: E402
    interval_standard_error,
    pooled_standard_errors,
    random_effects,
)
from tympan.study.stats import effect_from_differences  # noqa: E402

TRUE_EFFECT = -0.5


def dersimonian_laird_z(y: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """The interval tympan reported before: DerSimonian-Laird with z (and the z read-back)."""
    v = se ** 2
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    c = w.sum() - (w * w).sum() / w.sum()
    tau2 = max(0.0, (q - (len(y) - 1)) / c) if c > 0 else 0.0
    ws = 1 / (v + tau2)
    pooled = (ws * y).sum() / ws.sum()
    half = 1.959964 * math.sqrt(1 / ws.sum())
    return pooled - half, pooled + half


METHODS = ("DL z, own (before)", "HKSJ, own", "mod. HKSJ, own", "HKSJ, pooled (tympan)",
           "mod. HKSJ, pooled")


def simulate(k: int, tau: float, seeds: list[int], sims: int, rng: np.random.Generator) -> dict:
    hits = dict.fromkeys(METHODS, 0)
    widths: dict[str, list[float]] = {name: [] for name in METHODS}
    z = norm.ppf(0.975)
    for sim in range(sims):
        ys, se_t, se_z, ns = [], [], [], []
        for study in range(k):
            n = seeds[study % len(seeds)]
            d = TRUE_EFFECT + rng.normal(0, tau) + rng.normal(0, 1, size=n)
            e = effect_from_differences(d, lower_is_better=True, n_boot=1000,
                                        seed=sim * 100 + study)
            ys.append(e.estimate)
            ns.append(e.n)
            se_t.append(interval_standard_error(e.low, e.high, e.n, 0.95))
            se_z.append((e.high - e.low) / (2 * z))
        pooled = pooled_standard_errors(se_t, ns)
        intervals = dict(zip(METHODS, (
            dersimonian_laird_z(np.array(ys), np.array(se_z)),
            random_effects(ys, se_t)[1:3],
            random_effects(ys, se_t, modified=True)[1:3],
            random_effects(ys, pooled)[1:3],
            random_effects(ys, pooled, modified=True)[1:3],
        ), strict=True))
        for name, (low, high) in intervals.items():
            hits[name] += low <= TRUE_EFFECT <= high
            widths[name].append(high - low)
    return {name: (hits[name] / sims, float(np.median(widths[name]))) for name in METHODS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="meta-analyses per row")
    parser.add_argument("--seeds", default="3", help="seeds per study, e.g. 3 or 3,10")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rng = np.random.default_rng(2026)
    print(f"coverage of 95% pooled intervals (median width), studies of {args.seeds} seeds, "
          f"{args.sims} meta-analyses per row; seed-to-seed sd 1")
    print("| studies | between-study sd | " + " | ".join(METHODS) + " |")
    print("|---:|---:|" + "---:|" * len(METHODS))
    for tau in (0.0, 0.5, 1.0):
        for k in (2, 3, 5, 10):
            res = simulate(k, tau, seeds, args.sims, rng)
            cells = " | ".join(f"{cov:.3f} ({width:.2f})" for cov, width in res.values())
            print(f"| {k} | {tau:g} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
