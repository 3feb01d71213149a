"""``tympan serve MODEL``: serve a registered model over HTTP with its representation guard
(``tympan.serve``; docs/serving.md). Not to be confused with ``cli/serve.py``, which runs the
web UI's server for ``tympan ui`` and ``tympan server``."""

from __future__ import annotations

from typing import Annotated

import typer

from tympan.cli.context import options
from tympan.errors import InvalidInputError


def serve_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        metavar="MODEL", help="models:/NAME@ALIAS or models:/NAME/VERSION (NAME@ALIAS, "
                              "NAME/VERSION and NAME work too).")],
    host: Annotated[str, typer.Option(
        "--host", metavar="HOST",
        help="Address to listen on. Off loopback every request needs a store token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=0, max=65535,
                                      help="Port to listen on (0 picks a free one).")] = 8788,
    runtime: Annotated[str, typer.Option(
        "--runtime", metavar="RUNTIME",
        help="torch (eager) or onnx (the version's ONNX export, made by `tympan model "
             "export`, run by onnxruntime).")]
    = "torch",
    guard: Annotated[str, typer.Option(
        "--guard", metavar="POLICY",
        help="What the guard does with an input whose anomaly p-value is at most "
             "--threshold: observe (answer and report), warn (also the header "
             "X-Tympan-Guard: flagged), reject (422 with the reason), or off.")] = "observe",
    threshold: Annotated[float, typer.Option(
        "--threshold", metavar="P", help="Flag inputs whose anomaly p-value is at most P.")]
    = 0.01,
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="RUN|FILE", show_default=False,
        help="The probe profile to guard with (a run id or .npz); default: the model run's "
             "own, else its latest `tympan probe fit`.")] = None,
    window: Annotated[int, typer.Option(
        "--window", metavar="N", help="Requests per drift-test window.")] = 100,
    min_window: Annotated[int, typer.Option(
        "--min-window", metavar="N",
        help="Fewest requests a window closed by --window-seconds is tested with.")] = 30,
    window_seconds: Annotated[float, typer.Option(
        "--window-seconds", metavar="S",
        help="A window this old closes early once it holds --min-window requests.")] = 60.0,
    fdr: Annotated[float, typer.Option(
        "--fdr", metavar="Q", help="False discovery rate of the drift alarm over windows.")]
    = 0.05,
    sample: Annotated[float, typer.Option(
        "--sample", metavar="RATE",
        help="Fraction of requests stored as audio on the serving run (flagged ones always "
             "are).")] = 0.01,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", metavar="N", help="Most requests per batch (1: no batching).")] = 16,
    max_batch_seconds: Annotated[float, typer.Option(
        "--max-batch-seconds", metavar="S", help="Most seconds of audio per batch.")] = 60.0,
    max_wait_ms: Annotated[float, typer.Option(
        "--max-wait-ms", metavar="MS",
        help="Longest a request waits for others to share its batch.")] = 5.0,
    max_audio_seconds: Annotated[float, typer.Option(
        "--max-audio-seconds", metavar="S", help="Longest clip accepted (longer: 413).")]
    = 60.0,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", metavar="MB", min=0.001, help="Largest request body, in MiB.")]
    = 32.0,
    option: Annotated[list[str] | None, typer.Option(
        "--option", metavar="KEY=VALUE", show_default=False,
        help="An option of the recipe's serving hook, e.g. enroll=DIR for speaker_id "
             "(repeatable).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", metavar="N", min=1, show_default=False,
        help="Intra-op threads of torch and onnxruntime (default: torch in process chooses "
             "batch by batch between one per core and one less; onnxruntime and a split "
             "take one per core but one, kept for the HTTP event loop; 1 per Ray replica); "
             "1 when several servers share the cores.")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", metavar="ENGINE",
        help="embedded (this process) or ray (replicas on Ray Serve: pip install "
             "'tympan[serve-ray]').")] = "embedded",
    replicas: Annotated[int, typer.Option(
        "--replicas", metavar="N", min=1,
        help="Ray Serve replicas of each served version (--engine ray).")] = 1,
    address: Annotated[str | None, typer.Option(
        "--address", metavar="ADDRESS", show_default=False,
        help="A Ray cluster to deploy to (auto, HOST:PORT or ray://HOST:PORT; --engine ray); "
             "default: a local Ray started and stopped by this command.")] = None,
    challenger: Annotated[str | None, typer.Option(
        "--challenger", metavar="MODEL", show_default=False,
        help="Another version of the model to send --split percent of the requests to, "
             "each version with its own serving run.")] = None,
    split: Annotated[float | None, typer.Option(
        "--split", metavar="PERCENT", show_default=False,
        help="Percent of requests (chosen by their X-Request-Id) the challenger answers, "
             "strictly between 0 and 100.")] = None,
    request_timeout: Annotated[float, typer.Option(
        "--request-timeout", metavar="S",
        help="Longest a request waits for a replica before a 503 (--engine ray or a "
             "split).")] = 60.0,
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Record no serving run (no samples, no drift events in the "
                            "store).")] = False,
) -> None:
    """Serve a registered model over HTTP: POST /v1/predict, GET /v1/model, /healthz,
    /readyz, /metrics; every request scored by the model's probe profile."""
    from tympan.serve.config import Batching, GuardSettings, ServingConfig
    from tympan.serve.server import serve
    from tympan.server.config import is_loopback

    if guard not in ("observe", "warn", "reject", "off"):
        raise InvalidInputError(f"--guard must be observe, warn, reject or off, got {guard!r}")
    config = ServingConfig(
        model=model, store=options(ctx).store, runtime=runtime, host=host, port=port,
        batching=Batching(max_batch, max_batch_seconds, max_wait_ms),
        guard=GuardSettings(enabled=guard != "off",
                            policy=guard if guard != "off" else "observe",  # type: ignore[arg-type]
                            threshold=threshold, window=window, min_window=min_window,
                            window_seconds=window_seconds, fdr=fdr, sample_rate=sample,
                            profile=profile),
        max_audio_seconds=max_audio_seconds, max_body_bytes=int(max_body_mb * 1024 * 1024),
        auth=not is_loopback(host), record=not no_record, options=_pairs(option or []),
        threads=threads, engine=engine, replicas=replicas, address=address,
        challenger=challenger, split=split, request_timeout=request_timeout)
    serve(config)


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--option takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out
