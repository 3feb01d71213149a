"""``tympan.models``: the model registry's public functions.

    version = tympan.models.register(run_id, "asr-digits")           # -> version 1, 2, ...
    tympan.models.set_alias("asr-digits@champion", 1, reason="best of the study",
                            evidence="study:asr_components_quick", admin=True)
    model, preprocess = tympan.models.load("models:/asr-digits@champion")
    tympan.models.alias_at("asr-digits@champion", "2026-11-30 14:00")  # -> (1, event)

Importing this module is light; the registry loads on first call (see docs/registry.md).
"""

from __future__ import annotations

from typing import Any

_FUNCTIONS = ("add_report", "alias_at", "delete_alias", "get", "get_model", "history",
              "list_models", "load", "protect", "register", "set_alias", "versions")
_NAMES = {"card": "tympan.registry.card", "write_card": "tympan.registry.card",
          "gate_report": "tympan.registry.gate", "GATE_REPORT": "tympan.registry.gate",
          "LoadedModel": "tympan.registry.inference", "AliasEvent": "tympan.registry.records",
          "Model": "tympan.registry.records", "ModelVersion": "tympan.registry.records",
          **{name: "tympan.registry.api" for name in _FUNCTIONS}}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'tympan.models' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
