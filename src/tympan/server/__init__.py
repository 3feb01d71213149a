"""The web face of tympan: a FastAPI app serving the JSON API and the web UI over a store.

``tympan ui`` serves a local store on 127.0.0.1 behind a per-launch token; ``tympan server``
is the team server with the store's tokens. Nothing here is imported by ``import tympan``:
FastAPI loads only when one of those commands starts (see ``tympan.cli.ui`` and
``tympan.cli.server``).

    config.py   ServerConfig: which store, which tokens, body size limit, where to listen
    app.py      create_app(config): routers listed in routes/__init__.py, static files
    auth.py     Principal and the ``require(scope)`` dependency (bearer token or cookie)
    errors.py   one JSON error shape for every error
    guard.py    before any route: Host check, body limits, safe headers, access log, 500s
    hosts.py    the host names a server answers to (DNS rebinding)
    deps.py     get_store / get_config dependencies
    routes/     one module per group of routes, each exposing ``router``
"""
