"""Probe overhead: training-step time of the CTC ASR recipe's model with and without
``tympan.probe.attach``, measured in the same run.

One full training step as the recipe takes it (forward, CTC loss, backward, gradient
clipping, AdamW step) on a realistic batch: 16 utterances of 2 to 3 s of 80-band log-mel
features at 100 frames/s, padded to the longest, with their lengths. Configurations, each on
its own copy of the same model and batch:

- ``none``: no probe;
- ``probe``: ``attach(model)`` with its defaults (``layers="auto"``, moments every step,
  histograms every 50 steps, every health rule on, ``background="auto"``: the worker thread
  only when torch's threads leave a core free), inside ``probe.batch(lengths=...)``;
- ``probe worker``: the same with ``background=True`` (the worker thread whatever the
  thread count: the default before issue 12);
- ``probe+grads``: the same with ``gradients=True`` (statistics of each block's output
  gradient too);
- ``probe sync`` / ``probe+grads sync``: the same with ``background=False`` (every
  statistic computed on the training thread, inside the hooks);
- ``probe every step``: the defaults but ``stats_every=1`` (statistics from every step's
  batches, as before issue 12's second pass; the default takes them every 10th step and
  only checks the other steps for NaN/Inf);
- ``wandb.watch``: ``wandb.watch(model, log="all", log_freq=50)`` in offline mode, only when
  ``wandb`` imports in this interpreter (the test venv has none; the row then says so).

The configurations run in alternating blocks (the order rotates each round) so that the
machine's background load hits them alike. Printed per configuration: median and
interquartile range of the per-step time, steps/s, and the overhead against ``none`` as a
ratio of medians and of means (the mean includes the every-50-steps histogram and logging
steps), each with a 95% bootstrap interval over rounds; on wall time (what a user waits
for: the target is checked on it, mean step), on the CPU time of the training thread
(``time.thread_time``) and on the CPU time of the whole process (``time.process_time``:
includes the probe's worker thread, so the CPU the background work takes shows).

Run it with torch's default thread count (``--threads 0``, the default: what most users get)
and with ``--threads 1``, on the conv recipe model and on ``--encoder gru`` (conv subsampler
+ GRU).

    .venv/bin/python benchmarks/probe_overhead.py [--rounds 24] [--block 10] [--threads 0]
        [--encoder conv|gru|transformer]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/

import numpy as np  # noqa: E402
import torch  # noqa: E402
from recipes.asr_ctc import train as asr  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch import nn  # noqa: E402

import tympan.probe  # noqa: E402
from tympan.probe.hooks import Probe  # noqa: E402

TARGET = 0.03  # the target: <= 3% overhead of the default probe


def make_batch(batch: int, seconds: float, n_mels: int,
               seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-mel-like features (batch, frames, n_mels) padded with zeros, their lengths
    (2/3 to all of ``seconds`` at 100 frames/s), and random digit-string CTC targets."""
    g = torch.Generator().manual_seed(seed)
    frames = int(seconds * 100)
    lengths = torch.randint(2 * frames // 3, frames + 1, (batch,), generator=g)
    lengths[0] = frames
    x = torch.randn(batch, frames, n_mels, generator=g) * 2.0 - 4.0
    x = x * (torch.arange(frames)[None, :, None] < lengths[:, None, None])
    target_lengths = torch.randint(8, 20, (batch,), generator=g)
    targets = torch.randint(1, len(asr.ALPHABET) + 1, (int(target_lengths.sum()),), generator=g)
    return x, lengths, targets, target_lengths


class Trainer:
    """One configuration: its own model copy, optimizer, and what it attaches."""

    def __init__(self, name: str, model: nn.Module, cfg: asr.Config,
                 attach: Callable[[nn.Module], object] | None) -> None:
        self.name, self.model = name, model
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4,
                                     weight_decay=cfg.weight_decay)
        self.ctc = nn.CTCLoss(blank=asr.BLANK, zero_infinity=True)
        self.probe = attach(model) if attach is not None else None
        self.step_index = 0
        self.wall: list[list[float]] = []  # per round, per-step wall seconds
        self.cpu: list[list[float]] = []  # per round, per-step CPU seconds of this thread
        self.proc: list[list[float]] = []  # per round, per-step CPU seconds of the process

    def step(self, x: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> None:
        probe = self.probe if isinstance(self.probe, Probe) else None
        self.opt.zero_grad()
        if probe is not None:
            with probe.batch(lengths=lengths):
                log_probs = self.model(x, lengths)
        else:
            log_probs = self.model(x, lengths)
        loss = self.ctc(log_probs.transpose(0, 1), targets, self.model.out_lengths(lengths),
                        target_lengths)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        if probe is not None:
            probe.step(self.step_index, loss=loss)
        elif self.probe is not None:  # wandb.watch: its hooks log through a run
            self.probe.log({"loss": loss.item()}, step=self.step_index)  # type: ignore[attr-defined]
        self.step_index += 1

    def block(self, n: int, batch: tuple[torch.Tensor, ...]) -> None:
        wall, cpu, proc = [], [], []
        for _ in range(n):
            t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
            self.step(*batch)
            cpu.append(time.thread_time() - c0)
            proc.append(time.process_time() - p0)
            wall.append(time.perf_counter() - t0)
        self.wall.append(wall)
        self.cpu.append(cpu)
        self.proc.append(proc)


def wandb_attach(tmp: str) -> Callable[[nn.Module], object] | None:
    if importlib.util.find_spec("wandb") is None:
        return None
    import wandb

    def attach(model: nn.Module) -> object:
        run = wandb.init(project="tympan-probe-overhead", mode="offline", dir=tmp,
                         settings=wandb.Settings(silent=True))
        wandb.watch(model, log="all", log_freq=50)
        return run
    return attach


def bootstrap_ratio(a: list[list[float]], b: list[list[float]], stat: Callable,
                    n: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """stat(b) / stat(a) - 1 on all steps, and a 95% interval resampling rounds (paired)."""
    point = stat(np.concatenate(b)) / stat(np.concatenate(a)) - 1
    rounds = len(a)
    draws = []
    for _ in range(n):
        idx = rng.integers(0, rounds, rounds)
        draws.append(stat(np.concatenate([b[i] for i in idx]))
                     / stat(np.concatenate([a[i] for i in idx])) - 1)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(point), float(lo), float(hi)


def overhead_table(trainers: list[Trainer], clock: str,
                   args: argparse.Namespace) -> tuple[Table, tuple[float, float, float] | None]:
    """One table of per-step times on ``clock`` ("wall"; "cpu": CPU time of the training
    thread; "proc": CPU time of the whole process, worker thread included), and the
    default probe's overhead on the mean step."""
    rng = np.random.default_rng(0)
    what = {"wall": "wall time", "cpu": "CPU time of the training thread",
            "proc": "CPU time of the process (all threads)"}[clock]
    table = Table(title=f"{what} per training step: asr_ctc {args.encoder} model, batch "
                        f"{args.batch} x {args.seconds:g} s, {args.threads} thread(s), "
                        f"{args.rounds} rounds x {args.block} steps", title_justify="left")
    for col in ("configuration", "median ms", "IQR ms", "steps/s", "overhead (median)",
                "overhead (mean)"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    ref = getattr(trainers[0], clock)
    verdict = None
    for t in trainers:
        times = getattr(t, clock)
        steps = np.concatenate(times) * 1e3
        q1, med, q3 = np.quantile(steps, [0.25, 0.5, 0.75])
        cells = [t.name, f"{med:.2f}", f"{q1:.2f}-{q3:.2f}", f"{1e3 / steps.mean():.2f}"]
        if t is trainers[0]:
            cells += ["-", "-"]
        else:
            for stat in (np.median, np.mean):
                p, lo, hi = bootstrap_ratio(ref, times, stat, args.boot, rng)
                cells.append(f"{p:+.1%} [{lo:+.1%}, {hi:+.1%}]")
                if t.name == "probe" and stat is np.mean and clock == "wall":
                    verdict = (p, lo, hi)
        table.add_row(*cells)
    return table, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=24, help="blocks per configuration")
    parser.add_argument("--block", type=int, default=10, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per config")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads; 0: torch's default")
    parser.add_argument("--batch", type=int, default=16, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=3.0, help="longest utterance, s")
    parser.add_argument("--encoder", default="conv", choices=["conv", "gru", "transformer"],
                        help="the recipe's encoder")
    parser.add_argument("--no-grads", action="store_true", help="skip probe+grads")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    out = Console(width=140)
    cfg = replace(asr.Config(), n_mels=80, encoder=args.encoder)
    torch.manual_seed(0)
    base = asr.CTCModel(cfg, dims=cfg.n_mels)
    base.train()
    batch = make_batch(args.batch, args.seconds, cfg.n_mels, seed=0)
    tmp = tempfile.mkdtemp(prefix="tympan-probe-overhead-")
    os.environ.setdefault("WANDB_SILENT", "true")

    configs: list[tuple[str, Callable[[nn.Module], object] | None]] = [
        ("none", None), ("probe", lambda m: tympan.probe.attach(m)),
        ("probe worker", lambda m: tympan.probe.attach(m, background=True)),
        ("probe sync", lambda m: tympan.probe.attach(m, background=False)),
        ("probe every step", lambda m: tympan.probe.attach(m, stats_every=1))]
    if not args.no_grads:
        configs.append(("probe+grads", lambda m: tympan.probe.attach(m, gradients=True)))
        configs.append(("probe+grads sync",
                        lambda m: tympan.probe.attach(m, gradients=True, background=False)))
    wandb_note = ""
    watch = wandb_attach(tmp)
    if watch is not None:
        configs.append(("wandb.watch", watch))
    else:
        wandb_note = "wandb.watch: skipped, wandb does not import in this interpreter"
    trainers = []
    for name, attach in configs:
        try:
            trainers.append(Trainer(name, copy.deepcopy(base), cfg, attach))
        except Exception as exc:  # a peer that fails to start is reported, not fatal
            if name == "wandb.watch":
                wandb_note = f"wandb.watch: skipped, it failed to start ({exc})"
                continue
            raise
    for t in trainers:
        for _ in range(args.warmup):
            t.step(*batch)
        t.step_index = 0  # histogram steps (every 50) fall where a user's would
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    started = time.perf_counter()
    for r in range(args.rounds):
        k = r % len(trainers)
        for t in trainers[k:] + trainers[:k]:
            t.block(args.block, batch)
    wall = time.perf_counter() - started

    verdict = None
    for clock in ("wall", "cpu", "proc"):
        table, probe_row = overhead_table(trainers, clock, args)
        out.print(table)
        verdict = verdict or probe_row
    out.print("overhead: configuration / none - 1 on all timed steps, [95% bootstrap interval "
              "resampling rounds]; 'mean' includes the every-50-steps histogram and logging "
              "steps")
    if wandb_note:
        out.print(wandb_note)
    from tympan.probe.hooks import free_cores

    out.print(f"torch threads {torch.get_num_threads()}, free cores {free_cores()}: the "
              f"default probe {'uses' if free_cores() >= 1 else 'does not use'} the worker")
    for t in trainers:
        if isinstance(t.probe, Probe) and t.probe._worker is not None:
            out.print(f"{t.name}: the background worker computed {t.probe.background_steps} "
                      f"of {args.warmup + args.rounds * args.block} steps (it pauses while "
                      f"step() mostly waits for it)")
    if verdict is not None:
        p, lo, hi = verdict
        ok = "PASS" if p <= TARGET else "MISS"
        out.print(f"target: default probe <= {TARGET:.0%} overhead (wall time, mean step): "
                  f"{ok} ({p:+.1%}, 95% CI [{lo:+.1%}, {hi:+.1%}])")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    out.print(f"timed {wall:.0f} s, torch {torch.__version__}, {os.cpu_count()} CPUs, load "
              f"average {load} (1, 5, 15 min) at the end; {load_start} at the start")


if __name__ == "__main__":
    main()
