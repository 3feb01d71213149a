"""The registry's functions, wherever the registry is (``tympan.models`` re-exports them).

``store`` is a store location (default TYMPAN_STORE) or a team server's URL, reached with
TYMPAN_TOKEN: reading and loading need a read token, registering and setting aliases write,
and a protected alias admin (or a gate that passed).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tympan import settings
from tympan.errors import InvalidInputError
from tympan.registry.backend import AliasChange, Registry
from tympan.registry.inference import LoadedModel
from tympan.registry.records import AliasEvent, Model, ModelVersion, holder_at
from tympan.store.models import ModelRef, check_alias, check_name, parse_ref

Where = str | os.PathLike[str] | None
_remote: dict[tuple[str, str | None], Registry] = {}
_lock = threading.Lock()


def open_registry(store: Where = None) -> Registry:
    """The registry in ``store``: the local store, or a team server through its API."""
    from tympan.store.location import is_remote

    where = os.fspath(store) if store is not None else settings.get("TYMPAN_STORE")
    if is_remote(where):
        from tympan.registry.remote import HttpRegistry

        key = (where.strip().rstrip("/"), settings.get("TYMPAN_TOKEN"))
        with _lock:  # one connection pool per server and token, as for logging runs
            if key not in _remote:
                _remote[key] = HttpRegistry(*key)
                atexit.register(_remote[key].close)
            return _remote[key]
    from tympan.registry.actor import local_user
    from tympan.registry.local import LocalRegistry
    from tympan.track.stores import shared_store

    return LocalRegistry(shared_store(where), local_user(admin=True))


def register(run: Any, name: str, *, artifact: str = "model.pt", recipe: str | None = None,
             data: Sequence[str] = (), parent: str | None = None, description: str = "",
             store: Where = None) -> ModelVersion:
    """Register ``run``'s checkpoint ``artifact`` as the next version of model ``name``.

    ``run`` is a run id (or prefix, name, ``models:/`` URI), a RunRecord or a live Run;
    ``recipe`` defaults to the recipe that trained the run; ``data`` adds manifests to the
    ones its config names; ``parent`` is the version it was fine-tuned from."""
    from tympan.registry.register import prepare

    registry = open_registry(store)
    record = _run_record(registry, run)
    new, code = prepare(record, name, artifact=artifact, recipe=recipe, data=data,
                        parent=parent, description=description)
    return registry.register(new, code)


def _run_record(registry: Registry, run: Any) -> Any:
    run_id = getattr(run, "id", run)
    flush = getattr(run, "flush", None)
    if callable(flush):
        flush()  # a live run: its checkpoint must be stored before it is registered
    if not isinstance(run_id, str):
        raise InvalidInputError(f"register() takes a run id, a RunRecord or a Run, got "
                                f"{type(run).__name__}")
    return registry.run_record(run_id)


def get(ref: str, *, store: Where = None) -> ModelVersion:
    """The version ``ref`` names (``models:/NAME@ALIAS``, ``NAME/3``, ``models:/NAME``)."""
    return open_registry(store).version(parse_ref(ref))


def load(ref: str, *, store: Where = None) -> LoadedModel:
    """The version ``ref`` names, rebuilt by its recipe: ``model`` (a torch module in eval
    mode) and its ``preprocess``; ``model, preprocess = load(ref)`` unpacks them."""
    from tympan.registry.code import import_recipe
    from tympan.registry.inference import build

    registry = open_registry(store)
    version = registry.version(parse_ref(ref))
    module = import_recipe(version.recipe, version.code_sha256, registry.read_blob)
    inference = build(module, registry.read_blob(version.sha256),
                      version.recipe.get("entry", "?"))
    return LoadedModel(version, inference, module)


def list_models(project: str | None = None, *, store: Where = None) -> list[Model]:
    return open_registry(store).models(project)


def get_model(name: str, *, store: Where = None) -> Model:
    return open_registry(store).model(check_name(name))


def versions(name: str, *, store: Where = None) -> list[ModelVersion]:
    """The model's versions, newest first."""
    return open_registry(store).versions(check_name(name))


def split_target(target: str) -> tuple[str, str]:
    """``asr@champion`` (or ``models:/asr@champion``) -> ("asr", "champion")."""
    ref = parse_ref(target)
    if ref.alias is None:
        raise InvalidInputError(f"{target!r} names no alias: use NAME@ALIAS "
                                "(e.g. asr-digits@champion)")
    return ref.name, ref.alias


def set_alias(target: str, version: int, *, reason: str = "", evidence: str | None = None,
              admin: bool = False, store: Where = None) -> AliasEvent:
    """Point ``NAME@ALIAS`` at ``version``; recorded with who, when, ``reason`` and
    ``evidence`` (``study:NAME``, ``run:RUN``, ``gate:RUN`` or a URL). A protected alias
    needs ``admin=True`` (with admin authority) or a gate that passed as evidence."""
    name, alias = split_target(target)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"version must be a number from 1, got {version!r}")
    return open_registry(store).change_alias(AliasChange(name, alias, version, reason,
                                                         evidence, admin))


def delete_alias(target: str, *, reason: str = "", evidence: str | None = None,
                 admin: bool = False, store: Where = None) -> AliasEvent:
    """Remove ``NAME@ALIAS`` (its history stays)."""
    name, alias = split_target(target)
    return open_registry(store).change_alias(AliasChange(name, alias, None, reason, evidence,
                                                         admin))


def protect(name: str, alias: str, *, protected: bool = True, reason: str = "",
            store: Where = None) -> AliasEvent:
    """Make ``alias`` of model ``name`` protected (or not); needs admin authority."""
    return open_registry(store).protect(check_name(name), check_alias(alias), protected,
                                        reason, admin=True)


def history(target: str, *, store: Where = None) -> list[AliasEvent]:
    """Every change of ``NAME@ALIAS`` (or of every alias of ``NAME``), oldest first."""
    ref = parse_ref(target)
    return open_registry(store).history(ref.name, ref.alias)


def alias_at(target: str, at: float | datetime | str, *,
             store: Where = None) -> tuple[int | None, AliasEvent | None]:
    """Which version ``NAME@ALIAS`` named at ``at`` (epoch seconds, a datetime, or ISO text
    in local time), and the event that made it so; (None, ...) when it was unset."""
    name, alias = split_target(target)
    return holder_at(open_registry(store).history(name, alias), as_time(at))


def as_time(at: float | datetime | str) -> float:
    if isinstance(at, datetime):
        return at.timestamp()
    if isinstance(at, int | float) and not isinstance(at, bool):
        return float(at)
    try:
        return datetime.fromisoformat(str(at).strip()).timestamp()
    except ValueError:
        raise InvalidInputError(f"time {at!r} is not ISO 8601 (e.g. '2026-11-30 14:00' in "
                                "local time, or with a +00:00 offset)") from None


def add_report(ref: str, kind: str, name: str, data: dict[str, Any], *,
               run: str | None = None, store: Where = None) -> ModelVersion:
    """Record what a later step measured on a version (``kind``: export, latency, gate,
    evaluation or serving; ``name`` e.g. ``onnx``), replacing an earlier report of the same
    kind and name; ``run`` holds its evidence. The model card shows it."""
    return open_registry(store).add_report(parse_ref(ref), kind, name, data, run)


__all__ = ["ModelRef", "add_report", "alias_at", "delete_alias", "get", "get_model",
           "history", "list_models", "load", "open_registry", "protect", "register",
           "set_alias", "versions"]
