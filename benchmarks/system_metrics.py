"""System metrics' overhead: what sampling CPU, memory, disk, network (and GPUs) costs.

Two figures, measured in one run:

1. the cost of one sample (``SystemMetrics.sample()``: psutil's reads, NVML where a GPU is
   present), median and 95th percentile of ``--samples`` samples, in wall and CPU time; and
   from it the share of one core the sampler takes at the default interval
   (TYMPAN_SYSTEM_INTERVAL, 10 s) and at 1 s;
2. a training loop's time (a small MLP's forward, backward and Adam step on random data,
   torch's default threads, ``run.log`` of the loss every step) in a run without system
   metrics, with them at the default interval, and with them every 0.1 s (100x the default
   rate), in alternating rounds, as the median of ``--rounds`` rounds of ``--steps`` steps.

    .venv/bin/python benchmarks/system_metrics.py [--samples 500] [--rounds 7] [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def sample_cost(samples: int) -> tuple[list[float], list[float], int]:
    from tympan.track.system import SystemMetrics

    metrics = SystemMetrics()
    metrics.sample()
    walls, cpus = [], []
    for _ in range(samples):
        wall, cpu = time.perf_counter(), time.thread_time()
        keys = len(metrics.sample())
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return walls, cpus, keys


def training_round(store: str, steps: int, system: bool, interval: float) -> float:
    import torch

    import tympan

    os.environ["TYMPAN_SYSTEM_INTERVAL"] = str(interval)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
    run = tympan.init(project="bench", store=store, system_metrics=system, console=False)
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log({"loss": loss.item()})
    elapsed = time.perf_counter() - start
    run.finish()
    return elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    os.environ["TYMPAN_CAPTURE_ENV"] = "0"

    walls, cpus, keys = sample_cost(args.samples)
    wall_ms, cpu_ms = np.array(walls) * 1e3, np.array(cpus) * 1e3
    print(f"one sample ({keys} metrics): wall median {np.median(wall_ms):.3f} ms, "
          f"p95 {np.percentile(wall_ms, 95):.3f} ms; CPU median {np.median(cpu_ms):.3f} ms")
    for interval in (10.0, 1.0):
        print(f"  share of one core at a {interval:g} s interval: "
              f"{np.median(cpu_ms) / (interval * 1e3) * 100:.4f}%")

    configs = [("off", False, 10.0), ("on, every 10 s (default)", True, 10.0),
               ("on, every 0.1 s", True, 0.1)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    with tempfile.TemporaryDirectory() as folder:
        store = os.path.join(folder, "store")
        training_round(store, 20, False, 10.0)  # warm-up: imports, store creation
        for r in range(args.rounds):
            for name, system, interval in configs[r % 3:] + configs[:r % 3]:
                times[name].append(training_round(store, args.steps, system, interval))
    import torch

    print(f"\ntraining step (MLP 256-512-512-10, batch 64, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads), median of {args.rounds} rounds x "
          f"{args.steps} steps:")
    base = statistics.median(times["off"])
    for name, _, _ in configs:
        step = statistics.median(times[name])
        print(f"  {name:28s} {step * 1e3:8.3f} ms/step   x{step / base:.3f} of off")


if __name__ == "__main__":
    sys.exit(main())
