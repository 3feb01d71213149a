"""Serving benchmark: latency p50/p99 and throughput of `tympan serve` at 1, 4 and 16
concurrent clients, a bounded number of requests each, in the same run:

- torch eager with and without the guard (the guard's cost: target <= 5% of p50); with
  --guard-blocks N also as the target asks: both servers up, N blocks of requests to each in
  alternation, p50 over each side's blocks; with --guard-pairs N at one client in N rounds
  of requests, one to the server with the guard and one to each of two without it (the
  median of the differences from the two's mean, over the p50, and the two against each
  other: the measure's noise floor), and with --guard-repeats R that R times with new
  servers (the median run and the range: on a shared machine one run read from +2.6% to
  +10% for the same code);
- dynamic batching (--max-batch 16) against batch size 1 (target: >= 2x throughput at 16
  clients); with --batch-blocks N also in alternation: both servers up, N blocks of 16
  clients to each, the median throughput of each side's blocks;
- onnxruntime against eager (target: at least as fast on the conv encoder), every encoder;
- Ray Serve (--engine ray, a local Ray started by the command) with 1 and 2 replicas, one
  torch thread each, against the embedded engine.

    .venv/bin/python benchmarks/serving.py                 # every encoder, the server's threads
    .venv/bin/python benchmarks/serving.py --threads 1     # every server on one torch thread
    .venv/bin/python benchmarks/serving.py --quick         # fewer requests, smoke test
    .venv/bin/python benchmarks/serving.py --encoders conv --config 'eager, guard, batch 16' \
        --config 'ray 1 replica, guard, batch 16' --config 'ray 2 replicas, guard, batch 16'
    .venv/bin/python benchmarks/serving.py --root /tmp/bench   # keep the models, reuse them
    .venv/bin/python benchmarks/serving.py --measures-only --guard-pairs 600 --guard-repeats 5
    /work/helpers/cpu exclusive .venv/bin/python benchmarks/serving.py   # figures we report

Each configuration is a real `tympan serve` process (its own thread count unless
--threads, --no-record) on a free port; clients are threads of this process posting WAV clips of the
synthesized digits corpus (test split, 0.9 to 3 s), each on its own keep-alive connection
with `http.client` (the clients' CPU per request is printed: they share the machine). The
models are the ASR recipe's untrained CTC models of the default
size, with a probe profile fitted as a user fits it (speed does not depend on the weights).
The Ray rows pay a Ray Serve handle call per request (about 2 to 8 ms on two cores) and gain
a second process of model compute with two replicas; on a 2-core machine the clients, the
HTTP server and the replicas share the same two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = {"voices": 4, "per_speaker": 20}


def setup(root: Path, encoder: str) -> tuple[str, str, list[bytes]]:
    import io
    from dataclasses import asdict

    import torch
    from recipes.asr_ctc.train import ALPHABET, Config, CTCModel

    import tympan
    from tympan.audio.corpus import synth_corpus
    from tympan.audio.io import load
    from tympan.probe.jobs import fit_profile
    from tympan.registry.export import export_onnx
    from tympan.serve.audio import encode_wav

    torch.set_num_threads(1)
    corpus = synth_corpus(root / "corpus", voices=CORPUS["voices"],
                          utterances_per_speaker=CORPUS["per_speaker"], progress=False)
    clips = [encode_wav(load(corpus.file(u), mono=True)[0], 16000)
             for u in corpus.split("test")]
    store = str(root / f"store-{encoder}")
    ready = root / f"ready-{encoder}"  # an earlier run with --root set this model up
    if ready.exists():
        return store, "models:/bench/1", clips
    cfg = Config(encoder=encoder, corpus_dir=str(root / "corpus"), **CORPUS)
    model = CTCModel(cfg, dims=cfg.n_mels)
    with tympan.init(project="asr-ctc", config=asdict(cfg), store=store) as run:
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "config": asdict(cfg), "alphabet": ALPHABET,
                    "run_id": run.id}, buffer)
        run.log_artifact(buffer.getvalue(), name="model.pt")
    recipe = str(REPO / "recipes" / "asr_ctc")
    fit_profile(run.id, store=store, recipe=recipe, data="split:train,valid", calibration=0.5)
    tympan.models.register(run.id, "bench", recipe=recipe, store=store)
    export_onnx("models:/bench/1", store=store)
    ready.touch()
    return store, "models:/bench/1", clips


PIDS: dict[str, int] = {}  # each running server's process id, by URL (``serving``)


@contextlib.contextmanager
def serving(store: str, model: str, args: list[str], threads: str = "default"
            ) -> Iterator[str]:
    """A ``tympan serve`` process up while the block runs: its URL (its pid in ``PIDS``).
    Stopped afterwards, and its log's folder removed (the log is printed if it did not
    start)."""
    folder = Path(tempfile.mkdtemp(prefix="tympan-bench-serve-"))
    log = folder / "out.txt"
    threading_args = [] if threads == "default" else ["--threads", threads]
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tympan.cli.app", "--store", store,
                                     "serve", model, "--port", "0", *threading_args,
                                     "--no-record", "--threshold", "0.05", *args],
                                    stdout=out, stderr=subprocess.STDOUT)
        url = ""
        try:
            deadline = time.monotonic() + 120
            while not (found := re.search(r" at (http://\S+) ", log.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"tympan serve did not start:\n{log.read_text()}")
                time.sleep(0.05)
            url = found.group(1)
            PIDS[url] = proc.pid
            yield url
        finally:
            PIDS.pop(url, None)
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def post(http: HTTPConnection, clip: bytes) -> tuple[float, bytes]:
    """One ``POST /v1/predict`` of ``clip`` on a keep-alive connection: seconds, body."""
    started = time.perf_counter()
    http.request("POST", "/v1/predict", body=clip, headers={"Content-Type": "audio/wav"})
    response = http.getresponse()
    body = response.read()
    took = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"the server answered {response.status}: {body[:300]!r}")
    return took, body


def load_test(url: str, clips: list[bytes], clients: int, requests: int) -> dict[str, float]:
    """``clients`` threads, each posting its share of ``requests`` clips one after the other
    on one keep-alive connection (``http.client``: a lean client, so that the clients, which
    share the server's cores here, cost little: httpx took about 2 ms of CPU a request)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)
    where = urlsplit(url)

    def client(k: int, count: int, out: list[float] | None) -> None:
        http = HTTPConnection(where.hostname, where.port, timeout=120)
        try:
            for i in range(count):
                took, body = post(http, clips[(k * per_client + i) % len(clips)])
                json.loads(body)
                if out is not None:
                    with lock:
                        out.append(took)
        finally:
            http.close()

    client(0, 4, None)  # warm up
    threads = [threading.Thread(target=client, args=(k, per_client, latencies))
               for k in range(clients)]
    cpu = time.process_time()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if len(latencies) != per_client * clients:
        raise SystemExit("a client failed; see above")
    ms = np.array(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "rps": len(latencies) / wall, "requests": len(latencies),
            "client_cpu_ms": 1000 * (time.process_time() - cpu) / len(latencies),
            "latencies_ms": ms.tolist()}


CONFIGS = {
    "eager, guard, batch 16": ["--runtime", "torch", "--max-batch", "16"],
    "eager, no guard, batch 16": ["--runtime", "torch", "--max-batch", "16", "--guard", "off"],
    "eager, guard, batch 1": ["--runtime", "torch", "--max-batch", "1"],
    "onnx, guard, batch 16": ["--runtime", "onnx", "--max-batch", "16"],
    "ray 1 replica, guard, batch 16": ["--engine", "ray", "--replicas", "1", "--max-batch",
                                       "16"],
    "ray 2 replicas, guard, batch 16": ["--engine", "ray", "--replicas", "2", "--max-batch",
                                        "16"],
}

GUARD, NO_GUARD, BATCH_1 = ("eager, guard, batch 16", "eager, no guard, batch 16",
                            "eager, guard, batch 1")
ONNX, RAY_1, RAY_2 = ("onnx, guard, batch 16", "ray 1 replica, guard, batch 16",
                      "ray 2 replicas, guard, batch 16")
# What each ratio compares: (a, b, clients, measure, how a/b reads). "overhead" prints
# a/b - 1 as a percentage; "times" prints a/b; "speed" prints b/a (a latency ratio read as
# a speed-up of a over b).
RATIOS = [
    (GUARD, NO_GUARD, 1, "p50_ms", "overhead", "guard overhead at p50, 1 client (target <= 5%)"),
    (GUARD, NO_GUARD, 16, "p50_ms", "overhead", "guard overhead at p50, 16 clients"),
    (GUARD, BATCH_1, 16, "rps", "times",
     "batching at 16 clients, throughput over batch 1's (target >= 2x)"),
    (ONNX, GUARD, 1, "p50_ms", "speed", "onnxruntime p50 at 1 client, speed over eager's "
                                        "(target >= 1 on conv)"),
    (ONNX, GUARD, 16, "rps", "times", "onnxruntime at 16 clients, throughput over eager's"),
    (RAY_1, GUARD, 1, "p50_ms", "times", "Ray 1 replica p50 at 1 client over the embedded "
                                         "engine's"),
    (RAY_1, GUARD, 16, "p50_ms", "times", "Ray 1 replica p50 at 16 clients over the "
                                          "embedded engine's"),
    (RAY_2, RAY_1, 16, "rps", "times", "Ray 2 replicas at 16 clients, throughput over 1's"),
]


def ratios(results: list[dict], encoder: str) -> list[str]:
    """The ``RATIOS`` of one encoder whose two configurations both ran, as text."""
    by = {(r["encoder"], r["config"], r["clients"]): r for r in results}
    facts = []
    for a, b, clients, key, reads, text in RATIOS:
        x, y = by.get((encoder, a, clients)), by.get((encoder, b, clients))
        if x is None or y is None:
            continue
        r = x[key] / y[key]
        shown = {"overhead": f"{100 * (r - 1):+.1f}%", "times": f"{r:.2f}x",
                 "speed": f"{1 / r:.2f}x"}[reads]
        facts.append(f"{text}: {shown}")
    return facts


@contextlib.contextmanager
def servers_up(store: str, model: str, configs: dict[str, str], threads: str
               ) -> Iterator[dict[str, str]]:
    """One server per side ({side: configuration name}), all up at once: {side: url}."""
    with contextlib.ExitStack() as up:
        yield {side: up.enter_context(serving(store, model, CONFIGS[name], threads))
               for side, name in configs.items()}


def thread_choices(urls: dict[str, str]) -> str:
    """Which torch thread count each server runs each batch size on now (servers that choose:
    no --threads), as text; empty when none chooses."""
    got = []
    for side, url in urls.items():
        choice = httpx.get(f"{url}/v1/model", timeout=30).json()["serving"].get("thread_choice")
        if choice:
            sizes = ", ".join(f"{size}: {count}" for size, count
                              in choice["chosen_by_batch_size"].items())
            got.append(f"{side} {{{sizes}}}")
    return f"threads by batch size: {'; '.join(got)}" if got else ""


def thread_cpu(pid: int) -> tuple[float, float] | None:
    """CPU seconds of a process's main thread (the server's event loop) and of its other
    threads (the batch worker, torch's threads); None where its threads cannot be told apart
    (psutil names the main thread by the process id on Linux)."""
    import psutil

    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:
        return None
    main = [t.user_time + t.system_time for t in threads if t.id == pid]
    if not main:
        return None
    return main[0], sum(t.user_time + t.system_time for t in threads if t.id != pid)


def alternating(urls: dict[str, str], clips: list[bytes], clients: int, blocks: int
                ) -> dict[str, list[dict[str, float]]]:
    """``blocks`` blocks of ``16 * clients`` requests to each server, in alternation (ABBA
    order, so that a drift in the machine's speed hits every side alike): each side's blocks,
    with the server's CPU per request on its event loop and on its other threads."""
    sides = list(urls)
    got: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for block in range(blocks):
        for side in sides if block % 2 == 0 else sides[::-1]:
            pid = PIDS.get(urls[side])
            before = thread_cpu(pid) if pid else None
            row = load_test(urls[side], clips, clients, 16 * clients)
            after = thread_cpu(pid) if pid else None
            if before and after:
                row["server_loop_cpu_ms"] = 1000 * (after[0] - before[0]) / row["requests"]
                row["server_rest_cpu_ms"] = 1000 * (after[1] - before[1]) / row["requests"]
            got[side].append(row)
    return got


def server_cpu(blocks: list[dict[str, float]]) -> str:
    """A side's server CPU per request (the median of its blocks), as text; empty without."""
    if not all("server_loop_cpu_ms" in b for b in blocks):
        return ""
    loop = np.median([b["server_loop_cpu_ms"] for b in blocks])
    rest = np.median([b["server_rest_cpu_ms"] for b in blocks])
    return f"event loop {loop:.2f} + batch worker and torch {rest:.2f} ms"


def guard_cost(encoder: str, store: str, model: str, clips: list[bytes], threads: str,
               blocks: int) -> list[dict]:
    """The guard's cost at p50, measured as its target says: a server with the guard and one
    without (batch 16), both up, ``blocks`` blocks of requests to each in alternation, p50
    over each side's blocks."""
    rows = []
    with servers_up(store, model, {"guard": GUARD, "no guard": NO_GUARD}, threads) as urls:
        for clients in (1, 16):
            got = alternating(urls, clips, clients, blocks)
            p50 = {side: float(np.percentile([ms for b in got[side] for ms in b["latencies_ms"]],
                                             50)) for side in got}
            overhead = 100 * (p50["guard"] / p50["no guard"] - 1)
            rows.append({"encoder": encoder, "config": "guard blocks", "clients": clients,
                         "blocks": blocks, "requests": 16 * clients * blocks,
                         "p50_guard_ms": p50["guard"], "p50_no_guard_ms": p50["no guard"],
                         "overhead_percent": overhead})
            print(f"{encoder:>5} | guard vs none, {blocks} alternating blocks | {clients:>2} "
                  f"clients | p50 {p50['guard']:.2f} vs {p50['no guard']:.2f} ms: "
                  f"{overhead:+.1f}% (target <= 5%)", flush=True)
    return rows


def guard_pairs(encoder: str, store: str, model: str, clips: list[bytes], threads: str,
                pairs: int) -> list[dict]:
    """The guard's cost at p50 for one client, paired: a server with the guard and two
    without, all up, each clip sent to the three in turn (the order rotates), on one
    keep-alive connection each. Blocks of requests drift apart by more than the guard costs
    on a shared machine, requests in a row do not; but two processes of the same code differ
    too (where each one's memory lies), by up to a few percent for a whole run. So the guard
    is measured against both servers without it, and those two against each other: the
    measure's noise floor, printed beside it."""
    configs = {"guard": GUARD, "no guard": NO_GUARD, "no guard again": NO_GUARD}
    sides = tuple(configs)
    with servers_up(store, model, configs, threads) as urls:
        http = {side: HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=120)
                for side, url in urls.items()}
        try:
            for side in http:  # warm up
                for k in range(20):
                    post(http[side], clips[k % len(clips)])
            took: dict[str, list[float]] = {side: [] for side in http}
            for i in range(pairs):
                for side in sides[i % 3:] + sides[:i % 3]:
                    took[side].append(post(http[side], clips[i % len(clips)])[0])
            chosen = thread_choices(urls)
        finally:
            for connection in http.values():
                connection.close()
    ms = {side: 1000 * np.array(v) for side, v in took.items()}
    p50 = {side: float(np.percentile(v, 50)) for side, v in ms.items()}
    without = (ms["no guard"] + ms["no guard again"]) / 2
    base = float(np.percentile(without, 50))
    paired = float(np.median(ms["guard"] - without))
    null = float(np.median(ms["no guard again"] - ms["no guard"]))
    print(f"{encoder:>5} | guard vs none, {pairs} paired requests |  1 client | p50 "
          f"{p50['guard']:.2f} vs {p50['no guard']:.2f} and {p50['no guard again']:.2f} ms: "
          f"{100 * paired / base:+.1f}% (median of the differences {1000 * paired:.0f} us; "
          f"target <= 5%); the two servers without it: {100 * null / base:+.1f}%"
          + (f"; {chosen}" if chosen else ""), flush=True)
    return [{"encoder": encoder, "config": "guard pairs", "clients": 1, "pairs": pairs,
             "p50_guard_ms": p50["guard"], "p50_no_guard_ms": p50["no guard"],
             "p50_no_guard_again_ms": p50["no guard again"], "paired_ms": paired,
             "overhead_percent": 100 * paired / base, "null_ms": null,
             "null_percent": 100 * null / base}]


def batching_gain(encoder: str, store: str, model: str, clips: list[bytes], threads: str,
                  blocks: int) -> list[dict]:
    """Batching's gain as its target says, in alternating blocks: a batch-16 server and a
    batch-1 server (both with the guard) up at once, ``blocks`` blocks of 16 clients to each;
    the median throughput of each side's blocks. One run per configuration, one after the
    other, moved by 20% or more between runs on the shared two cores."""
    with servers_up(store, model, {"batch 16": GUARD, "batch 1": BATCH_1}, threads) as urls:
        got = alternating(urls, clips, 16, blocks)
        chosen = thread_choices(urls)
    rps = {side: float(np.median([b["rps"] for b in got[side]])) for side in got}
    gain = rps["batch 16"] / rps["batch 1"]
    cpu = {side: server_cpu(got[side]) for side in got}
    print(f"{encoder:>5} | batch 16 vs batch 1, {blocks} alternating blocks | 16 clients | "
          f"{rps['batch 16']:.1f} vs {rps['batch 1']:.1f} req/s (median of blocks): "
          f"{gain:.2f}x (target >= 2x)" + (f"; {chosen}" if chosen else "")
          + (f"; server CPU per request: batch 16 {cpu['batch 16']}, batch 1 "
             f"{cpu['batch 1']}" if all(cpu.values()) else ""), flush=True)
    return [{"encoder": encoder, "config": "batching blocks", "clients": 16, "blocks": blocks,
             "rps_batch_16": rps["batch 16"], "rps_batch_1": rps["batch 1"], "gain": gain,
             "server_cpu_per_request": cpu}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--encoders", default="conv,gru,transformer")
    parser.add_argument("--threads", default="default",
                        help="the servers' --threads, or 'default' for the server's own (torch "
                             "eager chooses batch by batch; onnxruntime one per core but one)")
    parser.add_argument("--config", action="append", choices=list(CONFIGS),
                        help="a configuration to run (repeatable; default: all)")
    parser.add_argument("--root", help="a folder for the corpus and the models, kept, so "
                        "that a later run reuses them (default: a new temporary folder)")
    parser.add_argument("--guard-blocks", type=int, default=0, metavar="N",
                        help="also measure the guard's cost: N blocks of requests to a server "
                             "with the guard and N to one without, alternating (0: skip)")
    parser.add_argument("--guard-pairs", type=int, default=0, metavar="N",
                        help="also measure the guard's cost at one client in N rounds of "
                             "requests, one to a server with the guard and one to each of "
                             "two without it, the order rotating (0: skip)")
    parser.add_argument("--guard-repeats", type=int, default=1, metavar="R",
                        help="run --guard-pairs R times, each with new servers, and give the "
                             "median and the range (the figure moved by several points "
                             "between runs on a shared machine)")
    parser.add_argument("--measures-only", action="store_true",
                        help="skip the load tests of the configurations: only the "
                             "--guard-blocks, --guard-pairs and --batch-blocks measures")
    parser.add_argument("--batch-blocks", type=int, default=0, metavar="N",
                        help="also measure batching's gain: N blocks of 16 clients to a batch-16 "
                             "server and N to a batch-1 server, alternating (0: skip)")
    opts = parser.parse_args()
    if opts.guard_repeats < 1 or (opts.guard_repeats > 1 and not opts.guard_pairs):
        parser.error("--guard-repeats takes a count of 1 or more, with --guard-pairs")
    if opts.measures_only and not (opts.guard_blocks or opts.guard_pairs or opts.batch_blocks):
        parser.error("--measures-only needs --guard-blocks, --guard-pairs or --batch-blocks")
    configs = {name: args for name, args in CONFIGS.items()
               if opts.config is None or name in opts.config}
    if opts.root:
        measure(opts, configs, Path(opts.root))
        return
    with tempfile.TemporaryDirectory(prefix="tympan-bench-serving-") as root:
        measure(opts, configs, Path(root))


def measure(opts: argparse.Namespace, configs: dict[str, list[str]], root: Path) -> None:
    """Every measure ``opts`` asks for, the models and corpus set up under ``root``; the rows
    written to benchmarks/.out."""
    requests = 32 if opts.quick else 128
    results = []
    for encoder in opts.encoders.split(","):
        store, model, clips = setup(root, encoder)
        for name, args in ({} if opts.measures_only else configs).items():
            with serving(store, model, args, opts.threads) as url:
                padding = httpx.get(f"{url}/v1/model").json()["padding"]
                for clients in (1, 4, 16):
                    row = {"encoder": encoder, "config": name, "clients": clients,
                           "padding": padding,
                           **load_test(url, clips, clients, min(requests, 16 * clients))}
                    del row["latencies_ms"]
                    results.append(row)
                    print(f"{encoder:>5} | {name:<26} | {clients:>2} clients | p50 "
                          f"{row['p50_ms']:7.1f} ms | p99 {row['p99_ms']:7.1f} ms | "
                          f"{row['rps']:6.1f} req/s | clients' CPU "
                          f"{row['client_cpu_ms']:.2f} ms/req ({padding})", flush=True)
        if opts.guard_blocks:
            results += guard_cost(encoder, store, model, clips, opts.threads,
                                  opts.guard_blocks)
        if opts.guard_pairs:
            runs = [row for _ in range(opts.guard_repeats)
                    for row in guard_pairs(encoder, store, model, clips, opts.threads,
                                           opts.guard_pairs)]
            results += runs
            if len(runs) > 1:
                got = sorted(r["overhead_percent"] for r in runs)
                null = sorted(r["null_percent"] for r in runs)
                print(f"{encoder:>5} | guard vs none, {len(runs)} runs of "
                      f"{opts.guard_pairs} pairs |  1 client | median {np.median(got):+.1f}% "
                      f"(runs {', '.join(f'{g:+.1f}%' for g in got)}; target <= 5%); the two "
                      f"servers without it: median {np.median(null):+.1f}% (runs "
                      f"{', '.join(f'{g:+.1f}%' for g in null)})", flush=True)
        if opts.batch_blocks:
            results += batching_gain(encoder, store, model, clips, opts.threads,
                                     opts.batch_blocks)
    print("\nratios (same run; those whose configurations ran):")
    for encoder in opts.encoders.split(","):
        facts = ratios(results, encoder)
        print(f"{encoder} (--threads {opts.threads}): " + "; ".join(facts))
    out = REPO / "benchmarks" / ".out"
    out.mkdir(exist_ok=True)
    (out / f"serving-threads-{opts.threads}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
