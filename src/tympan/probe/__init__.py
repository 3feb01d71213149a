"""tympan.probe: a representation debugger for speech models.

- ``attach(model, run=run)`` hooks a model's blocks, keeps streaming per-layer statistics
  (mergeable across batches and processes), checks training health rules online and logs
  both to the run (see docs/probe.md).
- ``fit(model, reference_loader)`` builds a reference ``Profile`` for per-input anomaly
  scoring; ``drift(model, data_a, data_b)`` tests which layers drifted.
- ``Scorer.from_run(run).score(waves)`` scores waveforms against a stored run's profile
  (combined score, p-value, per-layer z, where the divergence enters): the serving guard's
  entry point. ``OutputHead`` names the module giving a model's logits (and its blank).

Importing this package loads nothing heavy: torch comes in with the function you call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OutputHead", "Scorer", "Verdict", "attach", "drift", "fit"]


def __getattr__(name: str) -> Any:
    if name == "attach":
        from tympan.probe.hooks import attach

        return attach
    if name == "fit":
        from tympan.probe.profile import fit

        return fit
    if name == "drift":
        from tympan.probe.drift import drift

        return drift
    if name in ("Scorer", "Verdict"):
        from tympan.probe import scorer

        return getattr(scorer, name)
    if name == "OutputHead":
        from tympan.probe.features import OutputHead

        return OutputHead
    raise AttributeError(f"module 'tympan.probe' has no attribute {name!r}")
