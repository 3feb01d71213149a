"""tympan.probe: a representation debugger for speech models.

- ``attach(model, run=run)`` hooks a model's blocks, keeps streaming per-layer statistics
  (mergeable across batches and processes), checks training health rules online and logs
  both to the run (see docs/probe.md).
- ``fit(model, reference_loader)`` builds a reference ``Profile`` for per-input anomaly
  scoring; ``drift(model, data_a, data_b)`` tests which layers drifted.

Importing this package loads nothing heavy: torch comes in with the function you call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attach", "drift", "fit"]


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
    raise AttributeError(f"module 'tympan.probe' has no attribute {name!r}")
