"""Which optional extra brings a missing module: ``pip install 'tympan[ui]'``, not a traceback.

The extras are read from tympan's installed metadata (``Requires-Dist: fastapi; extra ==
"ui"``), so this stays in step with pyproject.toml. A distribution's import name is its
normalised name except for the few listed in ``IMPORT_NAMES``.
"""

from __future__ import annotations

import re

from tympan.errors import MissingDependencyError

IMPORT_NAMES = {"python-multipart": "multipart", "pillow": "PIL", "silero-vad": "silero_vad",
                "espeakng-loader": "espeakng_loader", "prometheus-client": "prometheus_client"}
NOT_FOR_USERS = {"all", "dev", "bench"}  # extras that only bundle others, or are for us


def extra_providing(module: str) -> str | None:
    """The first extra of tympan's metadata that installs top-level module ``module``."""
    from importlib import metadata

    try:
        requirements = metadata.requires("tympan") or []
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return None
    for requirement in requirements:
        found = re.match(r"\s*([A-Za-z0-9._-]+)[^;]*;\s*extra\s*==\s*['\"]([^'\"]+)['\"]",
                         requirement)
        if found is None or found.group(2) in NOT_FOR_USERS:
            continue
        dist = found.group(1).lower().replace("_", "-")
        if IMPORT_NAMES.get(dist, dist.replace("-", "_").replace(".", "_")) == module:
            return found.group(2)
    return None


def missing_extra(exc: ModuleNotFoundError) -> MissingDependencyError | None:
    """``exc`` as a one-line error naming the extra to install; None when no extra of tympan
    provides the missing module (then it is a real bug, not a missing option)."""
    module = (exc.name or "").split(".")[0]
    extra = extra_providing(module) if module else None
    if extra is None:
        return None
    return MissingDependencyError(
        f"this needs {module}, which comes with tympan's {extra!r} extra: "
        f"pip install 'tympan[{extra}]'")
