"""``tympan model export NAME/3 --format onnx``: a version as an ONNX graph, checked for parity.

The graph takes what the recipe's pre-processing makes (features ``x`` and their
``lengths``) with dynamic batch and time axes, and returns the model's outputs followed by
the outputs of the layers of the version's probe profile, shaped (batch, time, channels), so
that onnxruntime serves with the same guard as torch (``tympan serve --runtime onnx``).
Pre-processing (framing, mel filters, per-utterance normalization) stays in Python: it is
the recipe's, and the same for both runtimes.

Exporters disagree on what they can export: ``torch.export`` (``dynamo``) cannot trace a
GRU over packed sequences, and the TorchScript tracer (``torchscript``) bakes the batch size
into the attention reshapes of ``nn.TransformerEncoder``, a graph that loads but fails at
another batch size. ``auto`` tries the TorchScript tracer first (it exports these models in
about a second where ``torch.export`` takes about twenty) and ``dynamo`` when it fails. So
every export is checked on real speech (espeak-ng, three lengths, each alone and all three as
one padded batch): the largest absolute difference of every output against eager torch
(relative to the output's scale when above 1; in the padded batch, each row up to the frames
its clip has alone), and whether the recipe's answers agree. A graph
that fails the check (or fails to export) is replaced by the other exporter's; if neither
passes, nothing is recorded and the error says why. The parity and a speed comparison (eager
vs onnxruntime on the padded batch, the median of 3 to 10 runs: a rough figure, see
benchmarks/serving.py for measured ones) are recorded on the version as its ``export/onnx``
report, shown on its card; the graph is the artifact ``model.onnx`` of an export run (tagged
``export``, child of the version's run).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError, MissingDependencyError

EXPORTERS = ("torchscript", "dynamo")  # the order auto tries them in
ONNX_ARTIFACT = "model.onnx"
REPORT_KIND, REPORT_NAME = "export", "onnx"
# Real speech at several lengths: a digit, a phrase, a sentence of several seconds.
PARITY_TEXTS = ("seven",
                "four one nine two",
                "the quick brown fox jumps over the lazy dog while three seven five eight "
                "zero nine one are read aloud")
TOLERANCE = 1e-3  # max abs error allowed, relative to the output's scale (at least 1)
SPEED_RUNS, SPEED_SECONDS = (3, 10), 2.0  # runs (fewest, most), seconds per runtime


@dataclass
class Attempt:
    exporter: str
    passed: bool
    max_abs_error: float | None = None
    agreement: float | None = None  # fraction of answers that agree
    error: str | None = None  # why the export or the check failed

    def as_dict(self) -> dict[str, Any]:
        return {"exporter": self.exporter, "passed": self.passed,
                "max_abs_error": self.max_abs_error, "agreement": self.agreement,
                "error": self.error}


@dataclass
class ExportResult:
    uri: str
    run_id: str
    exporter: str
    onnx: bytes = field(repr=False)
    report: dict[str, Any] = field(default_factory=dict)  # as recorded on the version
    attempts: list[Attempt] = field(default_factory=list)


def with_layers(model: Any, layers: list[str]) -> Any:
    """``model`` wrapped for export: its outputs, then the watched layers' outputs shaped
    (batch, time, channels). ``remove()`` takes the wrapper's hooks off the model."""
    import torch
    from torch import nn

    from tympan.probe.layers import as_batch_time_channels, channel_dim, output_tensor

    class WithLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.names = list(layers)
            self._seen: dict[str, torch.Tensor] = {}
            modules = dict(model.named_modules())
            self._handles = [modules[n].register_forward_hook(
                self._hook(n, channel_dim(modules[n]))) for n in self.names]

        def _hook(self, name: str, dim: int) -> Any:
            def hook(_m: Any, _i: Any, out: Any) -> None:
                self._seen[name] = as_batch_time_channels(output_tensor(out), dim)
            return hook

        def remove(self) -> None:
            for handle in self._handles:
                handle.remove()

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[Any, ...]:
            out = self.model(x, lengths)
            outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            return (*outs, *(self._seen[n] for n in self.names))

    return WithLayers().eval()


def export_onnx(ref: str, *, store: str | None = None, exporter: str = "auto",
                out: str | None = None) -> ExportResult:
    """Export version ``ref`` to ONNX, check it, record it (see the module docstring)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise MissingDependencyError("ONNX export needs onnx, onnxscript and onnxruntime: "
                                     "pip install 'tympan[serve]'") from None
    import tympan.models

    order = _order(exporter)
    loaded = tympan.models.load(ref, store=store)
    version = loaded.version
    layers = _guard_layers(version.run_id, store)
    clips = _speech(loaded.sample_rate)
    cases = [[c] for c in clips] + [clips]  # each alone, then all as one padded batch
    attempts: list[Attempt] = []
    chosen: tuple[str, bytes] | None = None
    for name in order:
        attempt, data = _try(name, loaded, layers, cases)
        attempts.append(attempt)
        if attempt.passed:
            chosen = (name, data)
            break
    if chosen is None:
        raise InvalidInputError(
            f"{version.uri}: no exporter gives an ONNX graph that matches torch: "
            + "; ".join(f"{a.exporter}: {a.error}" for a in attempts))
    name, data = chosen
    speed = _speed(loaded, layers, data, clips)
    final = attempts[-1]
    failed = [a for a in attempts if not a.passed]
    # Flat, so the model card shows it as one line; the details are the export run's.
    report = {"exporter": name, "opset": _opset(data), "dynamic_axes": "batch, time",
              "max_abs_error": final.max_abs_error, "agreement": final.agreement,
              "tolerance": TOLERANCE,
              "clips_seconds": "/".join(f"{len(c) / loaded.sample_rate:.2f}" for c in clips),
              "fallback_from": "; ".join(f"{a.exporter} ({a.error})" for a in failed) or None,
              "eager_ms": speed["eager_ms"], "onnxruntime_ms": speed["onnxruntime_ms"],
              "speedup": speed["speedup"], "outputs": _n_outputs(loaded, clips),
              "guard_layers": ",".join(layers), "bytes": len(data)}
    details = {"report": report, "attempts": [a.as_dict() for a in attempts], "speed": speed,
               "cases": len(cases)}
    run_id = _record(version, data, report, details, store)
    report["run"] = run_id
    tympan.models.add_report(version.uri, REPORT_KIND, REPORT_NAME, report, run=run_id,
                             store=store)
    if out is not None:
        with open(out, "wb") as f:
            f.write(data)
    return ExportResult(version.uri, run_id, name, data, report, attempts)


def _order(exporter: str) -> tuple[str, ...]:
    if exporter == "auto":
        return EXPORTERS
    if exporter not in EXPORTERS:
        raise InvalidInputError(f"exporter must be auto, {' or '.join(EXPORTERS)}, got "
                                f"{exporter!r}")
    return (exporter,)


def _guard_layers(run_id: str, store: str | None) -> list[str]:
    """The layers of the version's probe profile and its output head, in that order (none
    when it has no profile yet): what the guard reads (``tympan.serve.guard``)."""
    import tympan
    from tympan.errors import NotFoundError
    from tympan.probe.jobs import find_profile

    try:
        profile, _ = find_profile(tympan.load_run(run_id, store=store), None, store)
    except NotFoundError:
        return []
    layers = list(profile.layer_names)
    head = None if getattr(profile, "output", None) is None else profile.output.head.layer
    return layers + ([head] if head is not None and head not in layers else [])


@functools.lru_cache(maxsize=4)
def _speech(sample_rate: int) -> list[np.ndarray]:
    from tympan.audio.synth import synthesize

    return [synthesize(text, "en", sample_rate=sample_rate).waveform for text in PARITY_TEXTS]


def _inputs(loaded: Any, clips: list[np.ndarray]) -> tuple[Any, ...]:
    from tympan.audio.features import pad_waves

    return loaded.inference.preprocess(*pad_waves(clips))


def _export(name: str, wrapped: Any, example: tuple[Any, ...], n_out: int) -> bytes:
    import torch

    names = [f"output{i}" for i in range(n_out)]
    # the exporters' deprecation and tracer warnings; and the dynamo exporter's log line per
    # torchvision op it cannot register (torchvision is not installed: no audio model has one)
    ops = logging.getLogger("torch.onnx._internal.exporter._registration")
    with warnings.catch_warnings(), _level(ops, logging.ERROR):
        warnings.simplefilter("ignore")
        if name == "dynamo":
            batch, frames = torch.export.Dim("batch"), torch.export.Dim("time", min=2)
            program = torch.onnx.export(wrapped, example, dynamo=True, verbose=False,
                                        input_names=["x", "lengths"], output_names=names,
                                        dynamic_shapes=({0: batch, 1: frames}, {0: batch}))
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                **{n: {0: "batch", 1: f"time_{n}"} for n in names}}
        torch.onnx.export(wrapped, example, buffer, dynamo=False, input_names=["x", "lengths"],
                          output_names=names, dynamic_axes=axes)
        return buffer.getvalue()


@contextlib.contextmanager
def _level(logger: logging.Logger, level: int) -> Iterator[None]:
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def _n_outputs(loaded: Any, clips: list[np.ndarray]) -> int:
    import torch

    with torch.inference_mode():
        out = loaded.inference.model(*_inputs(loaded, clips[:1]))
    return len(out) if isinstance(out, (tuple, list)) else 1


def session(data: bytes, threads: int | None = None) -> Any:
    """An onnxruntime session on the CPU for an exported graph (``threads``: intra-op
    threads; default as many as torch uses)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    # fatal only: a failing kernel raises its error (a failed parity check says it, the
    # server answers it), where onnxruntime's own log also printed it to stderr
    options.log_severity_level = 4
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run_session(sess: Any, inputs: tuple[Any, ...]) -> list[np.ndarray]:
    """Run ``sess`` on (x, lengths); an input the graph dropped (unused) is not fed."""
    wanted = {i.name for i in sess.get_inputs()}
    feed = {k: v.numpy() for k, v in zip(("x", "lengths"), inputs, strict=True) if k in wanted}
    return sess.run(None, feed)


def _try(name: str, loaded: Any, layers: list[str], cases: list[list[np.ndarray]]
         ) -> tuple[Attempt, bytes]:

    wrapped = with_layers(loaded.inference.model, layers)
    try:
        return _check(name, loaded, wrapped, cases)
    finally:
        wrapped.remove()


def _check(name: str, loaded: Any, wrapped: Any, cases: list[list[np.ndarray]]
           ) -> tuple[Attempt, bytes]:
    import torch

    n_out = _n_outputs(loaded, cases[0])
    try:
        data = _export(name, wrapped, _inputs(loaded, cases[-1]), n_out + len(wrapped.names))
        sess = session(data)
    except Exception as exc:  # the exporter's own failure: try the other one
        return Attempt(name, False, error=_first_line(exc)), b""
    worst, agree, answer = 0.0, 0, loaded.inference.postprocess
    alone: list[list[np.ndarray]] = []  # each clip's outputs alone (the first cases)
    try:
        for case in cases:
            inputs = _inputs(loaded, case)
            with torch.inference_mode():
                expected = wrapped(*inputs)
            got = run_session(sess, inputs)
            outputs = [e.numpy() for e in expected]
            for i, (e, g) in enumerate(zip(outputs, got, strict=True)):
                if e.shape != g.shape:
                    raise InvalidInputError(f"output shape {g.shape} instead of {e.shape}")
                pairs = [(e, g)] if len(case) == 1 else _real_frames(e, g, [a[i] for a in alone])
                for e_part, g_part in pairs:
                    scale = max(1.0, float(np.abs(e_part).max()))
                    worst = max(worst, float(np.abs(e_part - g_part).max()) / scale)
            if len(case) == 1:
                alone.append(outputs)
            mine = answer(_as_outputs(expected[:n_out]), inputs)
            theirs = answer(_as_outputs([torch.from_numpy(g) for g in got[:n_out]]), inputs)
            agree += sum(_same(a, b) for a, b in zip(mine, theirs, strict=True))
    except Exception as exc:
        return Attempt(name, False, error=f"onnxruntime: {_first_line(exc)}"), b""
    total = sum(len(c) for c in cases)
    passed = worst <= TOLERANCE and agree == total
    error = None if passed else (f"max abs error {worst:.2g} (tolerance {TOLERANCE:g}), "
                                 f"{agree}/{total} answers agree")
    return Attempt(name, passed, worst, agree / total, error), data


def _real_frames(e: np.ndarray, g: np.ndarray, alone: list[np.ndarray]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each row of a padded batch's output, eager and exported, cut to the frames the clip has
    alone: what a padded frame holds is no one's answer, and models differ there (the ASR
    transformer packs padding away in eager torch and computes it in the exported graph)."""
    if e.ndim < 2 or len(alone) != len(e):
        return [(e, g)]
    return [(e[row, :a.shape[1]], g[row, :a.shape[1]]) if a.ndim == e.ndim else (e[row], g[row])
            for row, a in enumerate(alone)]


def _as_outputs(outs: Any) -> Any:
    outs = list(outs)
    return outs[0] if len(outs) == 1 else tuple(outs)


def _same(a: Any, b: Any) -> bool:
    """Answers agree: equal text and labels, numbers within 1e-3 (relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-3)
    return a == b


def _speed(loaded: Any, layers: list[str], data: bytes, clips: list[np.ndarray]
           ) -> dict[str, Any]:
    """Median time of the model on the padded batch: eager torch vs onnxruntime."""
    import torch

    inputs = _inputs(loaded, clips)
    sess = session(data)
    model = loaded.inference.model

    def eager() -> None:
        with torch.inference_mode():
            model(*inputs)

    def ort() -> None:
        run_session(sess, inputs)

    timings: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, fn in (("eager", eager), ("onnxruntime", ort)):
        fn()  # warm up
        runs: list[float] = []
        while len(runs) < SPEED_RUNS[1] and (len(runs) < SPEED_RUNS[0]
                                             or sum(runs) < SPEED_SECONDS):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        timings[name] = float(np.median(runs))
        counts[name] = len(runs)
    return {"eager_ms": 1000 * timings["eager"], "onnxruntime_ms": 1000 * timings["onnxruntime"],
            "speedup": timings["eager"] / timings["onnxruntime"],
            "batch": len(clips), "threads": torch.get_num_threads(), "runs": counts}


def _opset(data: bytes) -> int | None:
    import onnx

    model = onnx.load_from_string(data)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")),
                None)


def _record(version: Any, data: bytes, report: dict[str, Any], details: dict[str, Any],
            store: str | None) -> str:
    import json

    import tympan

    with tympan.init(project=version.project, name=f"export-{version.model}-v{version.version}",
                     config={"export": {"model": version.uri, "format": "onnx",
                                        "exporter": report["exporter"]}},
                     tags=["export", "export-onnx"], parent=version.run_id, store=store) as run:
        run.log_artifact(data, name=ONNX_ARTIFACT, media_type="application/onnx")
        run.log_artifact(json.dumps(details, allow_nan=False).encode(),
                         name="export/report.json")
        run.log({f"export/{key}": report[key] for key in
                 ("max_abs_error", "agreement", "eager_ms", "onnxruntime_ms", "speedup")})
    return run.id


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
