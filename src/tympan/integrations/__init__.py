"""Integrations with the trainers and trackers speech people already use.

Each module imports its library only when imported itself (they live in extras) and uses
only tympan's public tracking API, as a user's own code would:

- ``tympan.integrations.lightning``: ``TympanLogger`` and the ``TympanProbe`` callback;
- ``tympan.integrations.transformers``: ``TympanCallback`` for the Hugging Face Trainer;
- ``tympan.integrations.tensorboard``: a ``SummaryWriter`` that logs to tympan, and the
  importer behind ``tympan import tensorboard``;
- ``tympan.integrations.mlflow``: the importer behind ``tympan import mlflow``.
"""

from __future__ import annotations

from tympan.errors import MissingDependencyError


def require(module: str, extra: str, what: str) -> object:
    """Import ``module`` or raise one line naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs {module.split('.')[0]}: pip install 'tympan[{extra}]'") from None
