"""One served model: the engine, its batcher, the drift monitor, the serving run and the
metrics, put together; what the HTTP routes call (``app.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from typing import Any

import numpy as np

from tympan.serve.batching import Batcher, BatchStats
from tympan.serve.config import CHAMPION, GuardSettings, ServingConfig, in_process_threads
from tympan.serve.drift import DriftMonitor
from tympan.serve.engine import Answer, Engine
from tympan.serve.metrics import ServingMetrics, VersionMetrics
from tympan.serve.threads import ThreadTuner

log = logging.getLogger("tympan.serve")


class Service:
    def __init__(self, config: ServingConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.metrics = ServingMetrics()
        version = engine.version
        self.served = self.metrics.version(version.model, version.version, CHAMPION,
                                           engine.runtime, 1.0)
        guard = config.guard
        self.drift = drift_monitor(guard) if engine.guard is not None else None
        self.threads = thread_tuner(config, engine)
        self.recorder = None
        if config.record:
            from tympan.serve.recording import ServingRun

            self.recorder = ServingRun(version, self.settings(), store=config.store,
                                       sample_rate=guard.sample_rate, seed=config.seed)
        self.card: dict[str, Any] | None = None
        self.batcher = Batcher(engine.answer, config.batching, self._batched, arrivals=True,
                               threads=self.threads)
        self.closing = False

    @classmethod
    def start(cls, config: ServingConfig) -> Service:
        from tympan.serve.replica import load_engine

        engine = load_engine(config)
        service = cls(config, engine)
        service.card = model_card(engine.version.uri, config.store)
        return service

    def settings(self) -> dict[str, Any]:
        import torch

        c = self.config
        out = {"model": c.model, "uri": self.engine.version.uri, "runtime": c.runtime,
               "batching": asdict(c.batching), "guard": asdict(c.guard),
               "max_audio_seconds": c.max_audio_seconds,
               "threads": c.threads or ("auto" if self.threads else torch.get_num_threads())}
        if self.threads is not None:
            out["thread_choice"] = self.threads.describe()
        return out

    @property
    def ready(self) -> bool:
        return self.batcher.alive and not self.closing

    def _batched(self, stats: BatchStats) -> None:
        """A batch's metrics, once its answers are on their way (the batch worker calls this
        after it hands them over, before it runs the next batch)."""
        self.served.batch(stats)
        if self.engine.guard is not None:
            self.served.guard_seconds.observe(self.engine.guard_seconds)

    def receiving(self) -> contextlib.AbstractContextManager[None]:
        """Around reading and decoding a request: the batcher may wait for it."""
        return self.batcher.receiving()

    async def predict(self, wave: np.ndarray, request_id: str | None = None) -> Answer:
        """The answer to one request (``request_id`` routes nothing here: one version);
        the caller then ``observe``s it."""
        seconds = len(wave) / self.engine.sample_rate
        return await asyncio.wrap_future(self.batcher.submit(wave, seconds))

    async def enroll(self, name: str, waves: list[np.ndarray]) -> dict[str, Any]:
        """Enroll ``name`` from ``waves`` through the recipe's serving hook: the clips are
        answered in batches as requests are (but are not traffic: no metrics, drift windows or
        serving run), then the hook enrolls them from their answers."""
        from tympan.errors import InvalidInputError
        from tympan.serve.hook import Enrolling

        serving = self.engine.serving
        if not isinstance(serving, Enrolling):
            raise InvalidInputError(f"{self.engine.version.uri} enrolls nothing: its recipe's "
                                    "serving hook has no enroll()")
        rate = self.engine.sample_rate
        answers: list[Answer] = await asyncio.gather(*(
            asyncio.wrap_future(self.batcher.submit(w, len(w) / rate)) for w in waves))
        enrolled = serving.enroll(name, [a.answer for a in answers])
        return enrolled | {"guard": [a.verdict.to_json() if a.verdict else None
                                     for a in answers]}

    def observe(self, wave: np.ndarray, answer: Answer, latency: float) -> None:
        """Metrics, drift windows and the serving run for one answered request."""
        observe(self.served, self.drift, self.recorder, self.engine.sample_rate, wave, answer,
                latency)

    def answered_by(self, answer: Answer) -> tuple[Any, str | None]:
        """The version that gave ``answer`` and its role (None: no split)."""
        return self.engine.version, None

    def metrics_of(self, answer: Answer) -> VersionMetrics:
        """The metrics of the version that gave ``answer``."""
        return self.served

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.batcher.close()
        self.engine.close()
        if self.recorder is not None:
            self.recorder.finish()


def thread_tuner(config: ServingConfig, engine: Engine) -> ThreadTuner | None:
    """Without ``--threads``, torch eager in this process chooses its threads batch by batch
    between one per core and one less (``threads.py``); None: the count is fixed."""
    if config.threads is not None or engine.runtime != "torch":
        return None
    import torch

    counts = {in_process_threads(1), torch.get_num_threads()}  # torch's own: one per core
    return ThreadTuner(counts) if len(counts) > 1 else None


def drift_monitor(guard: GuardSettings) -> DriftMonitor:
    return DriftMonitor(guard.window, guard.min_window, guard.window_seconds, guard.fdr,
                        guard.drift_level)


def model_card(uri: str, store: str | None) -> dict[str, Any] | None:
    """The version's model card, or None when it cannot be built (a courtesy: serving does
    not depend on it)."""
    try:
        from tympan.registry.card import card

        return card(uri, store=store)
    except Exception:
        log.warning("could not build the model card of %s", uri, exc_info=True)
        return None


def observe(metrics: VersionMetrics, drift: DriftMonitor | None, recorder: Any, rate: int,
            wave: np.ndarray, answer: Answer, latency: float) -> None:
    """Metrics, drift windows and the serving run (``recorder``) for one answered request."""
    verdict = answer.verdict
    if verdict is not None:
        metrics.p_value.observe(verdict.p_value)
        if verdict.flagged:
            metrics.flagged.inc()
        if drift is not None:
            for window in drift.add([verdict.p_value]):
                metrics.drift_windows.inc()
                metrics.drift_p.set(window.p_value)
                metrics.drift_alarm.set(int(window.alarm))
                if window.alarm:
                    log.warning("drift alarm: traffic window %d (%d requests, %d with "
                                "p <= %g) p=%.3g", window.index, window.requests,
                                window.low, drift.level, window.p_value)
                if recorder is not None:
                    recorder.drift(window)
    if recorder is not None:
        recorder.requests([wave], rate, [answer], [latency])
