"""The registry of a team server, through its JSON API (``/api/models/...``) with a token.

Loading needs a read token: the version's record, then its weights and code snapshot as
bytes. Registering needs write: the run and its checkpoint are read through the API, the
model is rebuilt here (the server never runs recipe code), the code snapshot is uploaded as a
blob and the version posted; the server checks that the run holds those weights. Alias
changes are sent as they are; the server records its token as the actor and applies the same
rules as a local store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tympan import errors
from tympan.registry.backend import AliasChange, NewVersion
from tympan.registry.records import AliasEvent, Model, ModelVersion
from tympan.store.models import ModelRef


@dataclass
class RemoteArtifact:
    path: str
    sha256: str
    size: int


class RemoteRun:
    """What registering reads of a run, fetched from the server."""

    def __init__(self, registry: HttpRegistry, page: dict[str, Any]) -> None:
        self._registry = registry
        self._page = page
        for name in ("id", "name", "project", "status", "started_at", "ended_at", "study_id"):
            setattr(self, name, page.get(name))
        self.config = page.get("config") or {}

    def environment(self) -> dict[str, Any] | None:
        return self._page.get("environment")

    def artifacts(self) -> list[RemoteArtifact]:
        return [RemoteArtifact(a["path"], a["sha256"], a["size"])
                for a in self._page.get("artifacts") or []]

    def read_artifact(self, path: str) -> bytes:
        return self._registry.call(
            "GET", f"/api/runs/{_q(self.id)}/artifacts/{quote(path)}").content


class HttpRegistry:
    def __init__(self, url: str, token: str | None) -> None:
        from tympan.track.server_api import ServerAPI

        self._api = ServerAPI(url, token, timeout=60.0, needs="read to load, write to register")
        self.where = self._api.where

    # -- reads ------------------------------------------------------------------------------
    def models(self, project: str | None = None) -> list[Model]:
        params = {"project": project} if project else {}
        data = self.call("GET", "/api/models", params=params).json()
        return [Model.from_dict(m) for m in data["models"]]

    def model(self, name: str) -> Model:
        return Model.from_dict(self.call("GET", f"/api/models/{_q(name)}").json())

    def versions(self, name: str) -> list[ModelVersion]:
        data = self.call("GET", f"/api/models/{_q(name)}").json()
        return [ModelVersion.from_dict(v) for v in data["versions"]]

    def version(self, ref: ModelRef) -> ModelVersion:
        base = f"/api/models/{_q(ref.name)}"
        if ref.alias is not None:
            path = f"{base}/aliases/{_q(ref.alias)}"
        elif ref.version is not None:
            path = f"{base}/versions/{ref.version}"
        else:
            latest = self.model(ref.name).latest
            if latest is None:
                raise errors.ModelNotFoundError(f"model {ref.name!r} has no versions yet")
            path = f"{base}/versions/{latest}"
        return ModelVersion.from_dict(self.call("GET", path).json())

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        params = {"alias": alias} if alias else {}
        data = self.call("GET", f"/api/models/{_q(name)}/history", params=params).json()
        return [AliasEvent.from_dict(e) for e in data["events"]]

    def card(self, ref: ModelRef) -> dict[str, Any]:
        found = self.version(ref)
        data = self.call("GET", f"/api/models/{_q(found.model)}/versions/{found.version}"
                                "/card").json()
        return data["card"] | {"markdown": data["markdown"]}

    def read_blob(self, sha256: str) -> bytes:
        for version in self._known:
            if sha256 in (version.sha256, version.code_sha256):
                which = "weights" if sha256 == version.sha256 else "code"
                return self.call("GET", f"/api/models/{_q(version.model)}/versions/"
                                        f"{version.version}/files/{which}").content
        raise errors.NotFoundError(f"blob {sha256[:12]} belongs to no version read so far")

    @property
    def _known(self) -> list[ModelVersion]:
        return self.__dict__.setdefault("_versions", [])

    def run_record(self, run: str) -> RemoteRun:
        return RemoteRun(self, self.call("GET", f"/api/runs/{_q(run)}").json())

    # -- writes -----------------------------------------------------------------------------
    def register(self, new: NewVersion, code: bytes | None) -> ModelVersion:
        if code is not None and new.code_sha256 is not None:
            self.call("PUT", f"/api/ingest/blobs/{new.code_sha256}", content=code,
                      headers={"Content-Type": "application/octet-stream"})
        body = new.as_dict()
        body.pop("model")
        return ModelVersion.from_dict(self.call("POST", f"/api/models/{_q(new.model)}/versions",
                                                json=body).json())

    def change_alias(self, change: AliasChange) -> AliasEvent:
        path = f"/api/models/{_q(change.model)}/aliases/{_q(change.alias)}"
        if change.version is None:
            params = {"reason": change.reason, "admin": str(change.admin).lower()}
            return AliasEvent.from_dict(self.call("DELETE", path, params=params).json())
        return AliasEvent.from_dict(self.call("PUT", path, json={
            "version": change.version, "reason": change.reason, "evidence": change.evidence,
            "admin": change.admin}).json())

    def protect(self, name: str, alias: str, protected: bool, reason: str,
                admin: bool) -> AliasEvent:
        return AliasEvent.from_dict(self.call("POST", f"/api/models/{_q(name)}/protected", json={
            "alias": alias, "protected": protected, "reason": reason}).json())

    def add_report(self, ref: ModelRef, kind: str, name: str, data: dict[str, Any],
                   run_id: str | None = None) -> ModelVersion:
        found = self.version(ref)
        return ModelVersion.from_dict(self.call(
            "POST", f"/api/models/{_q(found.model)}/versions/{found.version}/reports",
            json={"kind": kind, "name": name, "data": data, "run_id": run_id}).json())

    # -- HTTP -------------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._api.call(method, path, **kwargs)
        if "/versions/" in path or "/aliases/" in path:
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and "sha256" in data and "version" in data:
                self._known.append(ModelVersion.from_dict(data))
        return response

    def close(self) -> None:
        self._api.close()


def _q(text: str) -> str:
    return quote(str(text), safe="")
