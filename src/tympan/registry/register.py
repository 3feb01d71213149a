"""Registering a run's checkpoint: everything a version records, prepared from the run.

The recipe's code is snapshotted and its ``inference()`` hook run on the weights before
anything is written, so a version that is registered is one that loads: the signature and
parameter count come from the rebuilt model itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from tympan.entry import recipe_of
from tympan.errors import InvalidInputError
from tympan.registry.backend import NewVersion
from tympan.registry.code import import_recipe, snapshot
from tympan.registry.inference import build
from tympan.registry.lineage import lineage
from tympan.registry.signature import signature
from tympan.store.models import check_name, parse_ref


def prepare(record: Any, name: str, *, artifact: str = "model.pt", recipe: str | None = None,
            data: Sequence[str] = (), parent: str | None = None,
            description: str = "") -> tuple[NewVersion, bytes]:
    """(the version to record, the recipe's code snapshot) for ``record``'s ``artifact``."""
    check_name(name)
    if parent is not None:
        parent = str(parse_ref(parent))
    stored = {a.path: a for a in record.artifacts()}
    if artifact not in stored:
        known = ", ".join(sorted(stored)) or "none"
        raise InvalidInputError(f"run {record.id} has no artifact {artifact!r} to register "
                                f"(its artifacts: {known}); pass --artifact")
    recipe = recipe or recipe_of(record)
    if recipe is None:
        raise InvalidInputError(f"run {record.id}: cannot tell which recipe trained it; pass "
                                "--recipe (a recipe folder such as recipes/asr_ctc, a .py "
                                "file or a module)")
    code, info = snapshot(recipe)
    code_sha = hashlib.sha256(code).hexdigest()
    module = import_recipe(info, code_sha, lambda _sha: code)
    weights = record.read_artifact(artifact)
    inference = build(module, weights, recipe)
    parameters = sum(int(p.numel()) for p in inference.model.parameters())
    new = NewVersion(
        model=name, run_id=record.id, artifact=artifact, sha256=stored[artifact].sha256,
        size=stored[artifact].size, code_sha256=code_sha, recipe=info,
        config=record.config or {}, signature=signature(inference),
        lineage=lineage(record, data, parent), parameters=parameters, parent=parent,
        description=description)
    return new, code
