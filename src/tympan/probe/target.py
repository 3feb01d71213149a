"""What ``tympan probe`` needs from a recipe: rebuild a run's model and turn audio into batches.

A recipe opts in with a module-level ``probe_target()`` returning an object with this shape
(``recipes/asr_ctc/train.py`` has one)::

    class AsrProbeTarget:
        sample_rate = 16000
        def load_model(self, run: RunRecord) -> nn.Module: ...    # from the run's checkpoint
        def split(self, run: RunRecord, name: str) -> list[tuple[str, np.ndarray]]: ...
        def batch(self, waves: list[np.ndarray]) -> Any: ...       # what model(*batch) takes

``load_model`` is called first, so ``split`` and ``batch`` may use the config it read.

Optionally, ``output_layer = "out"`` names the module whose output is the model's logits
(before any softmax) and ``blank = 0`` the CTC blank class: the profile then combines the
model's own output scores (energy, MSP, blank ratio) with its layers' (``combine.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tympan.entry import recipe_of, resolve_entry
from tympan.errors import InvalidInputError
from tympan.probe.features import OutputHead


@runtime_checkable
class ProbeTarget(Protocol):
    sample_rate: int

    def load_model(self, run: Any) -> Any:
        """The run's trained model, in eval mode."""

    def split(self, run: Any, name: str) -> list[tuple[str, Any]]:
        """(input id, mono float waveform at ``sample_rate``) for a named split of the run's
        data (``train``, ``valid``, ``test``...)."""

    def batch(self, waves: list[Any]) -> Any:
        """A model input batch for these waveforms (a tensor, or a tuple for ``model(*b)``)."""


def output_head(target: Any) -> OutputHead | None:
    """The target's output head (``output_layer`` and ``blank``), or None if it names none."""
    layer = getattr(target, "output_layer", None)
    if layer is None:
        return None
    blank = getattr(target, "blank", None)
    if not isinstance(layer, str) or not (blank is None or isinstance(blank, int)):
        raise InvalidInputError(f"probe_target(): output_layer must be a module name and blank "
                                f"an int or None, got {layer!r} and {blank!r}")
    return OutputHead(layer, blank)


_NO_TARGET = ("recipe {recipe} defines no probe_target(): add one that rebuilds the model and "
              "batches audio (see docs/probe.md, 'tympan probe'), or pass --recipe")


def _module_file(name: str | None) -> str | None:
    try:
        spec = importlib.util.find_spec(name) if name else None
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def run_folder(record: Any) -> Path | None:
    """The folder ``record``'s process ran in (from its recorded command), if recorded."""
    try:
        cwd = ((record.environment() or {}).get("command") or {}).get("cwd")
    except (AttributeError, TypeError):
        return None
    return Path(cwd) if isinstance(cwd, str) and cwd else None


def _entry_of_run(recipe: str, record: Any) -> Any:
    """The recipe a run recorded, found where the run ran (its script path and module are
    relative to that folder), else from here; an error naming both places otherwise."""
    folder = run_folder(record)
    if folder is not None and folder.is_dir():
        try:
            return resolve_entry(recipe, cwd=folder)
        except InvalidInputError:
            pass
    try:
        return resolve_entry(recipe)
    except InvalidInputError as exc:
        where = ""
        if folder is not None:
            where = (f" (it ran in {folder}, which is gone)" if not folder.is_dir() else
                     f" (not in {folder}, where it ran, nor here)")
        raise InvalidInputError(f"run {record.id} was trained by {recipe}, which cannot be "
                                f"found{where}: {exc}; pass --recipe") from None


def load_target(recipe: str | None, record: Any) -> ProbeTarget:
    """The ``probe_target()`` of ``recipe`` (a recipe folder, .py file or module), or of the
    recipe that trained ``record`` when ``recipe`` is None (looked up relative to the folder
    the run ran in, so this works from any folder)."""
    given = recipe
    recipe = recipe or recipe_of(record)
    if recipe is None:
        raise InvalidInputError(
            f"run {record.id}: cannot tell which recipe trained it; pass --recipe "
            "(a recipe folder such as recipes/asr_ctc, a .py file or a module)"
        )
    entry = resolve_entry(recipe) if given else _entry_of_run(recipe, record)
    root = str(entry.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    source = entry.script or _module_file(entry.module)
    # Importing runs a module's top level: never import one that cannot be a probe target
    # (a run's command line may name any script, e.g. pytest's __main__).
    if source is None or "probe_target" not in Path(source).read_text(errors="replace"):
        raise InvalidInputError(_NO_TARGET.format(recipe=recipe))
    if entry.module is not None:
        module = importlib.import_module(entry.module)
    else:
        spec = importlib.util.spec_from_file_location("_tympan_recipe", entry.script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    make = getattr(module, "probe_target", None)
    if make is None:
        raise InvalidInputError(_NO_TARGET.format(recipe=recipe))
    target = make()
    if not isinstance(target, ProbeTarget):
        raise InvalidInputError(
            f"recipe {recipe}: probe_target() must return an object with sample_rate, "
            "load_model(run), split(run, name) and batch(waves)"
        )
    return target
