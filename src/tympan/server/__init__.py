"""The web face of tympan: a FastAPI app serving the JSON API and the web UI over a store.

``tympan ui`` serves a local store on 127.0.0.1; ``tympan server`` is the team server with
token auth always on. Nothing here is imported by ``import tympan``: FastAPI loads only when
one of those commands starts (see ``tympan.cli.ui`` and ``tympan.cli.server``).

    config.py   ServerConfig: which store, auth on/off, body size limit, where to listen
    app.py      create_app(config): routers listed in routes/__init__.py, static files
    auth.py     Principal and the ``require(scope)`` dependency (bearer token or cookie)
    errors.py   one JSON error shape for every error, body size limit, no leaked tracebacks
    deps.py     get_store / get_config dependencies
    routes/     one module per group of routes, each exposing ``router``
"""
