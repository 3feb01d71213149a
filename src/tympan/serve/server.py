"""Run one serving process: load the model (errors surface before anything listens), bind,
announce the URL, serve until SIGINT/SIGTERM, then answer what was accepted and finish the
serving run."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from tympan.serve.config import ServingConfig, in_process_threads

if TYPE_CHECKING:
    from tympan.serve.fleet import Fleet
    from tympan.serve.service import Service


def start(config: ServingConfig) -> Service | Fleet:
    """The service ``config`` asks for: one model in this process (``Service``), or replicas
    on Ray Serve and/or a champion/challenger split (``Fleet``)."""
    from tympan.serve.fleet import Split, embedded
    from tympan.serve.service import Service

    split = Split.of(config)
    # Without --threads each Ray replica takes one core, and in process the loop keeps one;
    # a lone torch engine in process chooses batch by batch (service.thread_tuner).
    if config.threads is None and (config.engine == "ray" or split is not None
                                   or config.runtime != "torch"):
        config = replace(config, threads=1 if config.engine == "ray"
                         else in_process_threads(2 if split else 1))
    if config.engine == "ray":
        from tympan.serve.ray_engine import start as start_ray

        return start_ray(config, split)
    if split is not None:
        return embedded(config, split)
    return Service.start(config)


def serve(config: ServingConfig) -> None:
    import uvicorn

    from tympan.cli.serve import bind, run_until_stopped
    from tympan.serve.app import create_app

    service = start(config)
    try:
        app = create_app(service)
        sock = bind(config.host, config.port)
    except BaseException:
        service.close()
        raise
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           server_header=False, timeout_graceful_shutdown=10,
                                           lifespan="on"))
    engine = service.engine
    guard = (f"guard {config.guard.policy} at p <= {config.guard.threshold:g}"
             if engine.guard is not None else "guard off")
    run = f", serving run {service.recorder.id}" if service.recorder else ""
    if config.engine == "ray":
        run += f", {config.replicas} Ray Serve replica{'s' if config.replicas > 1 else ''}"
        run += " per version" if config.challenger else ""
    if config.challenger is not None:
        challenger = service.lanes[1]
        run += (f"; challenger {challenger.view.version.uri} takes {config.split:g}% of "
                f"requests" + (f", serving run {challenger.recorder.id}"
                               if challenger.recorder else ""))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            sys.stdout.write(f"tympan serve: {engine.version.uri} ({engine.runtime}, {guard}"
                             f"{run}) at {url} ; press Ctrl+C to stop\n")
            sys.stdout.flush()

    threading.Thread(target=announce, name="tympan-announce", daemon=True).start()
    try:
        run_until_stopped(server, sock)
    finally:
        service.close()  # when the lifespan did not run (a failed start); else a no-op

