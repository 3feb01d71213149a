"""What a serving process serves and how: the model, the runtime, batching and the guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tympan.errors import InvalidInputError

DEFAULT_PORT = 8788
POLICIES = ("observe", "warn", "reject")
RUNTIMES = ("torch", "onnx")
ENGINES = ("embedded", "ray")
Policy = Literal["observe", "warn", "reject"]
CHAMPION, CHALLENGER = "champion", "challenger"  # the roles of the versions a split serves


@dataclass(frozen=True)
class Batching:
    """How requests are grouped into one forward pass: a batch closes when it holds
    ``max_size`` requests or ``max_seconds`` of audio in all (speech lengths vary, so the
    count alone would let one batch hold ten times another's frames), or when its first
    request has waited ``max_wait_ms``. ``max_size=1`` turns batching off."""

    max_size: int = 16
    max_seconds: float = 60.0
    max_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise InvalidInputError(f"max batch size must be >= 1, got {self.max_size}")
        if not self.max_seconds > 0:
            raise InvalidInputError(f"max batch seconds must be > 0, got {self.max_seconds}")
        if self.max_wait_ms < 0:
            raise InvalidInputError(f"max wait must be >= 0 ms, got {self.max_wait_ms}")


@dataclass(frozen=True)
class GuardSettings:
    """The guard's policy. A request is flagged when its combined anomaly p-value is at most
    ``threshold``; ``observe`` answers and reports, ``warn`` also sets the
    ``X-Tympan-Guard: flagged`` header, ``reject`` answers 422 with the reason instead.
    The drift alarm tests windows of ``window`` requests (at least ``min_window``) at a
    false discovery rate ``fdr`` over all windows so far; ``sample_rate`` is the fraction of
    requests stored with their audio on the serving run (flagged ones always are)."""

    enabled: bool = True
    policy: Policy = "observe"
    threshold: float = 0.01
    window: int = 100
    min_window: int = 30
    window_seconds: float = 60.0  # a window this old closes early with >= min_window
    fdr: float = 0.05
    drift_level: float = 0.1  # a window's test counts requests with p <= this
    sample_rate: float = 0.01
    profile: str | None = None  # a run id or .npz file; default: the model run's profile

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidInputError(f"guard policy must be one of {', '.join(POLICIES)}, got "
                                    f"{self.policy!r}")
        for name in ("threshold", "fdr", "drift_level"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise InvalidInputError(f"guard {name} must lie in (0, 1), got {value}")
        if not 0 <= self.sample_rate <= 1:
            raise InvalidInputError(f"sample rate must lie in [0, 1], got {self.sample_rate}")
        if self.min_window < 10:
            raise InvalidInputError(f"the minimum drift window is 10 requests, got "
                                    f"{self.min_window}")
        if self.window < self.min_window:
            raise InvalidInputError(f"the drift window ({self.window}) must hold at least the "
                                    f"minimum window ({self.min_window}) requests")


@dataclass(frozen=True)
class ServingConfig:
    """One serving process: ``model`` is a ``models:/NAME@ALIAS`` or ``models:/NAME/N``
    reference in ``store``; ``runtime`` torch (eager) or onnx (the version's ONNX export,
    run by onnxruntime). Off loopback every request needs a store token (``auth``)."""

    model: str
    store: str | None = None
    runtime: str = "torch"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    batching: Batching = field(default_factory=Batching)
    guard: GuardSettings = field(default_factory=GuardSettings)
    max_audio_seconds: float = 60.0  # longer requests get 413
    max_body_bytes: int = 32 * 1024 * 1024
    auth: bool = False
    record: bool = True  # a serving run in the store, with samples and drift events
    seed: int = 0  # the request sampler's
    threads: int | None = None  # intra-op threads, torch and onnxruntime (None: server.start
    # sets them for onnxruntime, a split and Ray; a lone torch engine chooses, threads.py)
    options: dict[str, str] = field(default_factory=dict)  # the recipe's serving hook's
    engine: str = "embedded"  # or "ray": the replicas on Ray Serve (ray_engine.py)
    replicas: int = 1  # per served version, on Ray Serve
    address: str | None = None  # a Ray cluster to join; None: start a local Ray
    challenger: str | None = None  # a second version of the model, taking `split` %
    split: float | None = None  # percent of requests (by request id) to the challenger
    request_timeout: float = 60.0  # longest a request waits for a Ray replica (then 503)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}, got "
                                    f"{self.engine!r}")
        if self.engine != "ray" and (self.replicas != 1 or self.address is not None):
            raise InvalidInputError("--replicas and --address are for --engine ray")
        if self.replicas < 1:
            raise InvalidInputError(f"--replicas must be at least 1, got {self.replicas}")
        if (self.challenger is None) != (self.split is None):
            raise InvalidInputError("--challenger MODEL and --split PERCENT go together: the "
                                    "challenger takes PERCENT % of the requests")
        if self.split is not None and not 0 < self.split < 100:
            raise InvalidInputError(
                f"--split is the challenger's share of the requests in percent and must lie "
                f"strictly between 0 and 100, got {self.split:g}")
        if not self.request_timeout > 0:
            raise InvalidInputError(f"the request timeout must be > 0 s, got "
                                    f"{self.request_timeout}")
        if self.runtime not in RUNTIMES:
            raise InvalidInputError(f"runtime must be one of {', '.join(RUNTIMES)}, got "
                                    f"{self.runtime!r}")
        if not self.max_audio_seconds > 0:
            raise InvalidInputError(f"max audio seconds must be > 0, got "
                                    f"{self.max_audio_seconds}")


def in_process_threads(engines: int = 1) -> int:
    """The intra-op threads of each of ``engines`` engines serving in this process when
    ``--threads`` is not given and the count is fixed (onnxruntime, a champion/challenger
    split): torch's own count (one per core) less the core the HTTP event loop needs, shared
    among the engines, at least one. Under load the loop decodes and answers requests while a
    batch runs; with one torch thread per core, one of them kept losing its core to it on
    some machines (docs/benchmarks.md). It is also the lower of the two counts a lone torch
    engine chooses between (``threads.py``)."""
    import torch

    return max(1, (torch.get_num_threads() - 1) // max(1, engines))
