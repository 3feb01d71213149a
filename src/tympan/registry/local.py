"""The registry in a store this process opens (SQLite or PostgreSQL); also what the server's
model routes run, with the token's actor.

Rules kept here, once for both paths:

- a version number is the model's highest plus one, taken under a lock, so concurrent
  registrations never share a number;
- a model lives in the project of its first version's run; later versions come from runs of
  the same project (a project-bound token sees all of a model or none of it);
- every alias change writes its event in the same transaction as the change;
- a protected alias changes only with admin authority that the caller asked to use, or (to
  move it, not to delete it) with a passed gate report for that very version as evidence.
"""

from __future__ import annotations

import time
from typing import Any

from tympan import settings
from tympan.errors import InvalidInputError, ModelNotFoundError, ProtectedAliasError
from tympan.registry.actor import Actor
from tympan.registry.backend import AliasChange, NewVersion
from tympan.registry.evidence import resolve_evidence
from tympan.registry.lineage import study_of
from tympan.registry.records import AliasEvent, Model, ModelVersion
from tympan.store import Store, artifacts, model_reports, runs
from tympan.store import aliases as alias_records
from tympan.store import models as model_records
from tympan.store.models import ModelRef, check_alias, check_name, parse_ref
from tympan.store.schema import blobs
from tympan.store.upsert import insert_for

REPORT_KINDS = ("export", "latency", "gate", "evaluation", "serving")


class LocalRegistry:
    def __init__(self, store: Store, actor: Actor) -> None:
        self.store = store
        self.actor = actor
        self.where = store.where

    # -- reads ------------------------------------------------------------------------------
    def models(self, project: str | None = None) -> list[Model]:
        with self.store.read() as conn:
            return [self._model(conn, row) for row in model_records.listing(conn, project)]

    def model(self, name: str) -> Model:
        with self.store.read() as conn:
            rows = [r for r in model_records.listing(conn) if r.name == name]
            if not rows:
                raise ModelNotFoundError(f"no model {name!r} in the registry at {self.where}: "
                                         "`tympan model list` shows the registered models")
            return self._model(conn, rows[0])

    def versions(self, name: str) -> list[ModelVersion]:
        with self.store.read() as conn:
            model = self._require(conn, name)
            held = _held_by(alias_records.current(conn, model.id))
            return [self._version(conn, row, held, reports=False)
                    for row in model_records.versions(conn, model.id)]

    def version(self, ref: ModelRef) -> ModelVersion:
        with self.store.read() as conn:
            row = model_records.resolve(conn, ref)
            held = _held_by(alias_records.current(conn, row.model_id))
            return self._version(conn, row, held)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        with self.store.read() as conn:
            model = self._require(conn, name)
            return [_event(name, row) for row in alias_records.events(conn, model.id, alias)]

    def read_blob(self, sha256: str) -> bytes:
        return self.store.blobs.read(sha256)

    def run_record(self, run: str) -> Any:
        from tympan.records.record import get_run

        return get_run(self.store, run)

    # -- writes -----------------------------------------------------------------------------
    def register(self, new: NewVersion, code: bytes | None) -> ModelVersion:
        check_name(new.model)
        now = time.time()
        code_sha = new.code_sha256
        if code is not None:
            code_sha, _ = self.store.blobs.put_bytes(code)
        elif code_sha is not None and not self.store.blobs.exists(code_sha):
            raise InvalidInputError(f"the code snapshot {code_sha[:12]} was not uploaded")
        with self.store.read() as conn:
            found = runs.get(conn, new.run_id)
        if found is None:
            raise InvalidInputError(f"no run {new.run_id!r} to register a model from")
        lineage = {**new.lineage, "study": study_of(self.store, new.run_id, found.study_id)}
        with self.store.write() as conn:
            run = runs.get(conn, new.run_id)
            weights = artifacts.get(conn, new.run_id, new.artifact)
            if weights is None or weights.sha256 != new.sha256:
                raise InvalidInputError(f"run {new.run_id} holds no artifact {new.artifact!r} "
                                        "with those weights")
            model = model_records.ensure(conn, new.model, run.project_id, now, self.actor.name,
                                         protected_by_default())
            if model.project_id != run.project_id:
                raise InvalidInputError(
                    f"model {new.model!r} belongs to project {model.project!r}; run "
                    f"{new.run_id} is of another project: register it under another name")
            model_records.lock(conn, model.id)
            parent_id = None
            if new.parent:
                parent_id = model_records.resolve(conn, parse_ref(new.parent)).id
            if code_sha is not None:  # the weights' blob is recorded already, as an artifact
                size = len(code) if code is not None else _blob_size(self.store, code_sha)
                conn.execute(insert_for(conn, blobs).values(sha256=code_sha, size=size,
                                                            created_at=now)
                             .on_conflict_do_nothing())
            number = model_records.next_number(conn, model.id)
            version_id = model_records.insert_version(
                conn, model_id=model.id, version=number, run_id=new.run_id,
                artifact=new.artifact, sha256=new.sha256, size=new.size, code_sha256=code_sha,
                recipe=new.recipe, config=new.config, signature=new.signature,
                lineage=lineage, parameters=new.parameters, parent_id=parent_id,
                study_id=(lineage["study"] or {}).get("id"),
                description=new.description, created_at=now, created_by=self.actor.name)
            row = model_records.version_by_id(conn, version_id)
            return self._version(conn, row, {})

    def change_alias(self, change: AliasChange) -> AliasEvent:
        check_alias(change.alias)
        evidence = resolve_evidence(self.store, change.evidence, change.model, change.version)
        now = time.time()
        with self.store.write() as conn:
            model = self._require(conn, change.model)
            before = alias_records.holder(conn, model.id, change.alias)
            where = f"{change.model}@{change.alias}"
            if change.version is None:
                if before is None:
                    raise ModelNotFoundError(f"{where} is not set: nothing to delete")
                action, target_id = "delete", None
            else:
                target = model_records.version(conn, model.id, change.version)
                if target is None:
                    raise ModelNotFoundError(f"model {change.model!r} has no version "
                                             f"{change.version}")
                if before == change.version:
                    raise InvalidInputError(f"{where} already names version {before}: "
                                            "nothing to change")
                action, target_id = ("set" if before is None else "move"), target.id
            authority = self._authority(model, change, action, evidence)
            if target_id is None:
                alias_records.remove(conn, model.id, change.alias)
            else:
                alias_records.put(conn, model.id, change.alias, target_id, now)
            fields = dict(model_id=model.id, alias=change.alias, action=action,
                          from_version=before, to_version=change.version,
                          actor=self.actor.name, authority=authority,
                          reason=change.reason.strip(), evidence=evidence, at=now)
            alias_records.record_event(conn, **fields)
        return _event(change.model, fields)

    def protect(self, name: str, alias: str, protected: bool, reason: str,
                admin: bool) -> AliasEvent:
        check_alias(alias)
        if not (admin and self.actor.admin):
            raise ProtectedAliasError(
                f"changing which aliases of {name!r} are protected needs admin authority: "
                f"{_admin_hint(self.actor)}")
        now = time.time()
        with self.store.write() as conn:
            model = self._require(conn, name)
            current = list(model.protected or [])
            if (alias in current) == protected:
                state = "already protected" if protected else "not protected"
                raise InvalidInputError(f"{name}@{alias} is {state}: nothing to change")
            updated = sorted({*current, alias}) if protected else [a for a in current
                                                                   if a != alias]
            model_records.set_protected(conn, model.id, updated)
            held = alias_records.holder(conn, model.id, alias)
            fields = dict(model_id=model.id, alias=alias,
                          action="protect" if protected else "unprotect", from_version=held,
                          to_version=held, actor=self.actor.name, authority="admin",
                          reason=reason.strip(), evidence=None, at=now)
            alias_records.record_event(conn, **fields)
        return _event(name, fields)

    def add_report(self, ref: ModelRef, kind: str, name: str, data: dict[str, Any],
                   run_id: str | None = None) -> ModelVersion:
        if kind not in REPORT_KINDS:
            raise InvalidInputError(f"unknown report kind {kind!r}: use one of "
                                    f"{', '.join(REPORT_KINDS)}")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInputError("a report's name is 1 to 200 characters (e.g. onnx)")
        if not isinstance(data, dict):
            raise InvalidInputError("a report's data is a JSON object")
        with self.store.write() as conn:
            row = model_records.resolve(conn, ref)
            if run_id is not None and runs.get(conn, run_id) is None:
                raise InvalidInputError(f"no run {run_id!r} to link the report to")
            model_reports.put(conn, row.id, kind, name.strip(), data, run_id, time.time(),
                              self.actor.name)
        return self.version(ModelRef(row.model, version=row.version))

    # -- helpers ----------------------------------------------------------------------------
    def _authority(self, model: Any, change: AliasChange, action: str,
                   evidence: dict[str, Any] | None) -> str:
        if change.alias not in (model.protected or []):
            return "write"
        where = f"{change.model}@{change.alias}"
        if not change.reason.strip():
            raise ProtectedAliasError(f"{where} is protected: say why it changes (--reason)")
        if evidence is not None and evidence["kind"] == "gate" and action != "delete":
            return "gate"  # resolve_evidence checked that it passed for this version
        if change.admin and self.actor.admin:
            return "admin"
        raise ProtectedAliasError(
            f"{where} is protected: it moves only with admin authority ({_admin_hint(self.actor)})"
            + ("" if action == "delete" else " or with a gate that passed for this version as "
               "evidence (--evidence gate:RUN)"))

    def _require(self, conn: Any, name: str) -> Any:
        model = model_records.get(conn, name)
        if model is None:
            raise ModelNotFoundError(f"no model {name!r} in the registry at {self.where}: "
                                     "`tympan model list` shows the registered models")
        return model

    def _model(self, conn: Any, row: Any) -> Model:
        return Model(name=row.name, project=row.project, description=row.description,
                     protected=list(row.protected or []), created_at=row.created_at,
                     created_by=row.created_by, latest=row.latest, versions=row.versions or 0,
                     updated_at=row.updated_at, aliases=alias_records.current(conn, row.id))

    def _version(self, conn: Any, row: Any, held: dict[int, list[str]],
                 reports: bool = True) -> ModelVersion:
        parent = None
        if row.parent_id is not None:
            up = model_records.version_by_id(conn, row.parent_id)
            parent = f"models:/{up.model}/{up.version}"
        found = [{"kind": r.kind, "name": r.name, "data": r.data, "run_id": r.run_id,
                  "created_at": r.created_at, "created_by": r.created_by}
                 for r in model_reports.for_version(conn, row.id)] if reports else []
        return ModelVersion(
            model=row.model, version=row.version, project=row.project, run_id=row.run_id,
            artifact=row.artifact, sha256=row.sha256, size=row.size,
            code_sha256=row.code_sha256, recipe=row.recipe or {}, config=row.config or {},
            signature=row.signature or {}, lineage=row.lineage or {},
            parameters=row.parameters, parent=parent, study_id=row.study_id,
            description=row.description, created_at=row.created_at,
            created_by=row.created_by, aliases=held.get(row.version, []), reports=found)


def _blob_size(store: Store, sha256: str) -> int:
    with store.blobs.open(sha256) as f:
        return f.seek(0, 2)


def protected_by_default() -> list[str]:
    text = settings.get("TYMPAN_PROTECTED_ALIASES") or ""
    return sorted({check_alias(a.strip()) for a in text.split(",") if a.strip()})


def _held_by(current: dict[str, int]) -> dict[int, list[str]]:
    held: dict[int, list[str]] = {}
    for alias, number in current.items():
        held.setdefault(number, []).append(alias)
    return held


def _event(model: str, row: Any) -> AliasEvent:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return AliasEvent(model=model, alias=get("alias"), action=get("action"),
                      from_version=get("from_version"), to_version=get("to_version"),
                      actor=get("actor"), authority=get("authority"), reason=get("reason"),
                      evidence=get("evidence"), at=get("at"))


def _admin_hint(actor: Actor) -> str:
    if actor.name.startswith("token:"):
        return "an admin token, and admin: true in the request" if actor.admin else \
            "this token's scope is not admin"
    return "pass --admin (admin=True), which the history records with your user name"
