"""One copy of a served version: its engine and its batcher, answering one request at a time
from the caller's point of view and batching them underneath.

A Ray Serve replica is one of these in a Ray worker (``ray_engine.py``); a champion/challenger
split on the embedded engine holds one per version in the serving process (``fleet.py``). The
model code, the batching and the guard are the embedded server's own (``engine.py``,
``batching.py``, ``guard.py``); what a replica adds is the record of how a request was served
(``Served``), so the process that answers HTTP keeps the same metrics as the embedded server
without reaching into the replica.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.serve.batching import Batcher, BatchStats
from tympan.serve.config import ServingConfig
from tympan.serve.engine import Answer, Engine


def load_engine(config: ServingConfig, model: str | None = None) -> Engine:
    """The engine of ``model`` (default ``config.model``) as ``config`` serves it, warmed up:
    torch's threads set, the guard loaded, one short clip answered (first calls are slow)."""
    from threadpoolctl import threadpool_limits

    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    # The guard's scoring is a few small matrix products in numpy per batch: BLAS threads
    # of their own only spin against torch's (a 16 x 320 product took 1.8 ms with
    # OpenBLAS's threads beside torch's, 0.1 ms on one), so BLAS runs on one thread.
    threadpool_limits(1, user_api="blas")
    engine = Engine.load(model or config.model, store=config.store, runtime=config.runtime,
                         guard=config.guard.enabled, threshold=config.guard.threshold,
                         profile=config.guard.profile, options=config.options)
    noise = np.random.default_rng(0).standard_normal(engine.sample_rate // 2)
    engine.answer([(0.01 * noise).astype(np.float32)])
    return engine


@dataclass(frozen=True)
class Served:
    """A request's answer and how it was served: ``waited`` seconds in the replica's queue,
    its batch's statistics and guard time (on the batch's first request only, so a batch is
    counted once; its ``waited`` is empty, each request's own wait is ``waited``), and which
    replica answered (``pid@host``)."""

    answer: Answer
    waited: float
    batch: BatchStats | None
    guard_seconds: float | None
    replica: str


@dataclass(frozen=True)
class _Batch:
    size: int
    seconds: float
    started: float
    took: float
    guard_seconds: float | None


class Replica:
    """``model`` (a fixed version, ``models:/NAME/N``) with the engine and batching of
    ``config``."""

    def __init__(self, model: str, config: ServingConfig) -> None:
        self.engine = load_engine(config, model)
        self.name = f"{os.getpid()}@{socket.gethostname()}"
        self.batcher = Batcher(self._handle, config.batching)

    @property
    def alive(self) -> bool:
        return self.batcher.alive

    def describe(self) -> dict[str, Any]:
        """``Engine.describe`` and the sample rate requests are resampled to."""
        return self.engine.describe() | {"sample_rate": self.engine.sample_rate}

    async def predict(self, wave: np.ndarray) -> Served:
        arrived = time.perf_counter()
        future = self.batcher.submit(wave, len(wave) / self.engine.sample_rate)
        answer, batch, first = await asyncio.wrap_future(future)
        stats = None
        if first:
            stats = BatchStats(batch.size, batch.seconds, [], batch.took)
        return Served(answer, max(0.0, batch.started - arrived), stats,
                      batch.guard_seconds if first else None, self.name)

    def _handle(self, waves: list[np.ndarray]) -> list[tuple[Answer, _Batch, bool]]:
        started = time.perf_counter()
        answers = self.engine.answer(waves)
        batch = _Batch(len(waves), sum(len(w) for w in waves) / self.engine.sample_rate,
                       started, time.perf_counter() - started,
                       self.engine.guard_seconds if self.engine.guard is not None else None)
        return [(a, batch, i == 0) for i, a in enumerate(answers)]

    def close(self) -> None:
        """Answer what was accepted, then release the model's hooks."""
        self.batcher.close()
        self.engine.close()
