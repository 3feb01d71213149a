"""What the registry hands back: models, versions and alias events as plain values.

They come from the local store or, as JSON, from a team server (``as_dict``/``from_dict``
are each other's inverse), so everything above the backends works the same on both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class ModelVersion:
    """One registered checkpoint of a model, with what rebuilds it and where it came from."""

    model: str
    version: int
    project: str
    run_id: str
    artifact: str  # the weights' path among the run's artifacts
    sha256: str  # the weights' blob
    size: int
    code_sha256: str | None  # zip of the recipe's code
    recipe: dict[str, Any]  # entry, module, hook, source_sha256, files
    config: dict[str, Any]
    signature: dict[str, Any]
    lineage: dict[str, Any]
    parameters: int | None
    parent: str | None  # models:/NAME/N of the version it was fine-tuned from
    study_id: str | None
    description: str
    created_at: float
    created_by: str
    aliases: list[str] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"uri": self.uri}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Model:
    """A registered model: its name, project, protected aliases and where its aliases point."""

    name: str
    project: str
    description: str
    protected: list[str]
    created_at: float
    created_by: str
    latest: int | None
    versions: int
    updated_at: float | None
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version number

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias: who, when, from which version to which, why, on what evidence.

    ``authority`` says what allowed it: ``write`` (an unprotected alias), ``admin`` or
    ``gate`` (a protected one)."""

    model: str
    alias: str
    action: str  # set, move, delete, protect, unprotect
    from_version: int | None
    to_version: int | None
    actor: str
    authority: str
    reason: str
    evidence: dict[str, Any] | None
    at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AliasEvent:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def evidence_label(evidence: dict[str, Any] | None) -> str:
    """Evidence as the user would type it: ``study:NAME``, ``gate:RUN``, a URL; "-" for none."""
    if not evidence:
        return "-"
    if evidence.get("kind") == "url":
        return str(evidence.get("url"))
    return f"{evidence.get('kind')}:{evidence.get('name') or evidence.get('id')}"


def holder_at(events: list[AliasEvent], at: float) -> tuple[int | None, AliasEvent | None]:
    """Which version the alias named at time ``at`` (None: unset), and the event that made it
    so, replaying ``events`` (one alias's, oldest first)."""
    version: int | None = None
    since: AliasEvent | None = None
    for event in events:
        if event.at > at:
            break
        if event.action in ("set", "move", "delete"):
            version, since = event.to_version, event
    return version, since
