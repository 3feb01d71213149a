"""tympan.serve: serving a registered model over HTTP, every request scored by its guard.

    tympan serve models:/asr-digits@champion          # 127.0.0.1:8788, see docs/serving.md

One process holds the model (``engine.py``: the recipe's inference hook, torch eager or
onnxruntime), a dynamic batcher that groups requests by total audio seconds (``batching.py``),
and the guard (``guard.py``): each request's input is scored against the model's probe
profile in the same forward pass, and a windowed drift test with false-discovery-rate control
watches the traffic (``drift.py``). What it saw is recorded on a serving run in the store
(``recording.py``) and exposed as Prometheus metrics (``metrics.py``). The HTTP face is
``app.py``; ``tympan.cli.serving`` parses the command line.

To scale out, the same engine and batcher run as replicas (``replica.py``): on Ray Serve
with ``--engine ray`` (``ray_engine.py``), and a champion/challenger split sends a share of
the requests to a second version (``fleet.py``: the replicas of each version, each version
with its own serving run, behind the same ``app.py``).

Nothing here is imported by ``import tympan``: FastAPI, torch and onnxruntime load when a
server starts, Ray only when ``--engine ray`` does.
"""
