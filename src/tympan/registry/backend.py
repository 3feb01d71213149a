"""The seam between the registry's functions and where the registry is: a store this process
opens (``local.py``) or a team server's JSON API (``remote.py``, with a token). The server's
model routes run ``LocalRegistry`` over its own store, so both paths share one implementation
of every rule (version numbering, protected aliases, evidence checks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tympan.registry.records import AliasEvent, Model, ModelVersion
from tympan.store.models import ModelRef


@dataclass(frozen=True)
class NewVersion:
    """What registering a version records (``register.py`` prepares it from a run)."""

    model: str
    run_id: str
    artifact: str
    sha256: str
    size: int
    code_sha256: str | None
    recipe: dict[str, Any]
    config: dict[str, Any]
    signature: dict[str, Any]
    lineage: dict[str, Any]
    parameters: int | None
    parent: str | None  # a reference to the version it was fine-tuned from
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasChange:
    """Point ``alias`` at ``version`` (None: remove it), saying why and on what evidence;
    ``admin`` asks to use the actor's admin authority (needed for protected aliases unless
    the evidence is a gate that passed)."""

    model: str
    alias: str
    version: int | None
    reason: str = ""
    evidence: str | None = None
    admin: bool = False


class Registry(Protocol):
    where: str

    def models(self, project: str | None = None) -> list[Model]: ...

    def model(self, name: str) -> Model: ...

    def versions(self, name: str) -> list[ModelVersion]: ...

    def version(self, ref: ModelRef) -> ModelVersion: ...

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]: ...

    def read_blob(self, sha256: str) -> bytes: ...

    def run_record(self, run: str) -> Any:
        """The run (id, prefix, name or model URI) as a record that ``register.prepare``
        reads: config, environment, artifacts and their bytes."""
        ...

    def register(self, new: NewVersion, code: bytes | None) -> ModelVersion: ...

    def change_alias(self, change: AliasChange) -> AliasEvent: ...

    def protect(self, name: str, alias: str, protected: bool, reason: str,
                admin: bool) -> AliasEvent: ...

    def add_report(self, ref: ModelRef, kind: str, name: str, data: dict[str, Any],
                   run_id: str | None = None) -> ModelVersion: ...
