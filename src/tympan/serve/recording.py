"""The serving run: what a serving process saw, recorded in the store like any run.

``tympan serve`` opens one run in the model's project, named ``serve-NAME-vN``, tagged
``serving``, whose parent is the run that trained the version. On it, at step = the
request's number:

- ``serve/latency_ms`` per request, and ``guard/p_value`` and ``guard/flagged`` when the
  guard is on;
- a sample of the requests (``sample_rate``; every flagged one) as audio under
  ``requests/flagged`` or ``requests/sampled``, captioned with the answer and the verdict,
  and the verdict's per-layer z profile as the table ``requests/guard`` at the same step, so
  a researcher listens to what was flagged on the run page and a retraining can use it;
- per closed drift window ``drift/p_value``, ``drift/low_p_fraction`` and ``drift/alarm``,
  and on an alarm the event as the table ``drift/alarm``.

The run finishes when the server stops. Nothing here sits on a request's path: the routes
hand each answered request to a recorder thread of its own (``requests`` and ``drift`` only
enqueue), which checks, encodes and logs the audio and the values; ``finish`` records what
is still queued before the run finishes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tympan.loop.label import FLAGGED, SAMPLED, SERVING_TAG, clip_caption
from tympan.serve.drift import WindowResult
from tympan.serve.engine import Answer

log = logging.getLogger("tympan.serve")


class ServingRun:
    def __init__(self, version: Any, config: dict[str, Any], *, store: str | None,
                 sample_rate: float, seed: int = 0) -> None:
        import tympan

        self.run = tympan.init(project=version.project,
                               name=f"serve-{version.model}-v{version.version}",
                               config={"serving": config},
                               tags=[SERVING_TAG, f"serve-{config.get('runtime', 'torch')}"],
                               parent=version.run_id, store=store)
        self.sample_rate = sample_rate
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._step = 0
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._record, name="tympan-serving-run",
                                        daemon=True)
        self._thread.start()

    def _record(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                job()
            except Exception:  # a request that cannot be recorded must not stop the others
                log.exception("recording a request on the serving run failed")

    @property
    def id(self) -> str:
        return self.run.id

    def requests(self, waves: list[np.ndarray], rate: int, answers: list[Answer],
                 latencies: list[float]) -> None:
        """Record a batch of answered requests (in the recorder thread; this only enqueues)."""
        with self._lock:
            first = self._step
            self._step += len(answers)
            draws = self._rng.random(len(answers))
        self._queue.put(lambda: self._log_requests(first, draws, waves, rate, answers,
                                                   latencies))

    def _log_requests(self, first: int, draws: np.ndarray, waves: list[np.ndarray], rate: int,
                      answers: list[Answer], latencies: list[float]) -> None:
        for i, (wave, answer, latency) in enumerate(zip(waves, answers, latencies,
                                                        strict=True)):
            step = first + i
            values = {"serve/latency_ms": 1000 * latency}
            verdict = answer.verdict
            if verdict is not None:
                values |= {"guard/p_value": verdict.p_value, "guard/flagged": int(verdict.flagged)}
            self.run.log(values, step=step)
            flagged = verdict is not None and verdict.flagged
            if flagged or draws[i] < self.sample_rate:
                self._sample(step, wave, rate, answer, flagged)

    def _sample(self, step: int, wave: np.ndarray, rate: int, answer: Answer,
                flagged: bool) -> None:
        caption = clip_caption(answer.answer, answer.verdict)
        verdict = answer.verdict
        if verdict is not None:
            self.run.log_table("requests/guard", [{"stage": name, "z": _num(z)}
                                                  for name, z in verdict.z.items()],
                               step=step, caption=caption)
        self.run.log_audio(FLAGGED if flagged else SAMPLED, wave, rate,
                           step=step, caption=caption)

    def drift(self, result: WindowResult) -> None:
        """Record a closed drift window (in the recorder thread; this only enqueues)."""
        with self._lock:
            step = self._step
        self._queue.put(lambda: self._log_drift(step, result))

    def _log_drift(self, step: int, result: WindowResult) -> None:
        self.run.log({"drift/p_value": result.p_value,
                      "drift/low_p_fraction": result.low / result.requests,
                      "drift/alarm": int(result.alarm)}, step=step)
        if result.alarm:
            self.run.log_table("drift/alarm", [result.as_dict()], step=step,
                               caption=f"drift alarm: window {result.index} "
                                       f"({result.requests} requests, {result.low} with low "
                                       f"p), p={result.p_value:.3g} <= level "
                                       f"{result.level:.3g} (LOND)")

    def finish(self) -> None:
        """Record every queued request, then finish the run."""
        self._queue.put(None)
        self._thread.join()
        self.run.finish()


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
