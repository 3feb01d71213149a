"""Importers: runs recorded by other trackers, copied into tympan once.

- ``tensorboard``: every run directory under a TensorBoard log directory (scalars with their
  full history, audio, images, text, the HParams plugin's hyperparameters);
- ``mlflow``: an MLflow tracking server's or store's experiments and runs (params, metrics
  with full history, tags, artifacts).

Each reader turns what it finds into :class:`~tympan.integrations.importers.writing.SourceRun`
records; ``writing.write_run`` stores one through the run transport, so importing into a
local store and into a tympan server (``TYMPAN_STORE=http://...``) are the same code. A
source run's tympan id is derived from where it came from, which makes importing again
safe: it adds what is new and duplicates nothing.
"""
