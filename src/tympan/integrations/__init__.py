"""Integrations with the trainers and trackers speech people already use.

Each module imports its library only when imported itself (they live in extras). The
trainer integrations use only tympan's public tracking API, as a user's own code would; the
MLflow API and the importers write through the run transport, to keep other trackers'
timestamps, ids and statuses:

- ``tympan.integrations.lightning``: ``TympanLogger`` and the ``TympanProbe`` callback;
- ``tympan.integrations.transformers``: ``TympanCallback`` for the Hugging Face Trainer;
- ``tympan.integrations.tensorboard``: a ``SummaryWriter`` that logs to tympan;
- ``tympan.integrations.mlflow_tracking``: MLflow's tracking model on a tympan store, served
  by ``tympan server`` under ``/api/2.0/mlflow`` so the stock ``mlflow`` client logs to it;
- ``tympan.integrations.importers``: ``tympan import tensorboard`` and ``tympan import
  mlflow``, which copy runs those trackers recorded (writing through the run transport).
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
