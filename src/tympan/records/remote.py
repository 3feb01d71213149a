"""Runs read back from a tympan server (``TYMPAN_STORE=http(s)://HOST:PORT`` with a read
token in ``TYMPAN_TOKEN``), through its ``/api/records`` routes.

The server answers with the functions :class:`~tympan.records.source.LocalSource` calls over
its own store, so a record read here equals one read from the store: the same fields, full
summaries, every metric point (as the ingest API's base64 arrays, so nothing is rounded),
and file bytes streamed. Names, id prefixes and ``models:/`` URIs are resolved on the server
among the runs the token may see.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tympan.records.record import RunRecord
from tympan.track import wire
from tympan.track.server_api import ServerAPI

if TYPE_CHECKING:
    from tympan.records.query import RunQuery
    from tympan.store.metrics import Series

PAGE = 1000  # runs per request (the server's most)


class HttpSource:
    """Reads runs through a tympan server's JSON API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.api = ServerAPI(url, token, timeout=60.0, needs="read")
        self.where = self.api.where

    def run(self, ref: str) -> RunRecord:
        data = self.api.call("GET", "/api/records/runs/resolve", params={"ref": ref}).json()
        return self._record(data)

    def find_runs(self, query: RunQuery) -> list[RunRecord]:
        """Every run the query selects, fetched a page of at most 1000 at a time."""
        wanted = query.limit
        found: list[RunRecord] = []
        while wanted is None or len(found) < wanted:
            size = PAGE if wanted is None else min(PAGE, wanted - len(found))
            page = query.page(size, query.offset + len(found))
            data = self.api.call("GET", "/api/records/runs", params=page.params()).json()
            found += [self._record(r) for r in data["runs"]]
            if len(data["runs"]) < size:
                break
        return found

    def history(self, run_id: str, key: str) -> Series:
        from tympan.store.metrics import Series

        data = self.api.call("GET", f"{_run(run_id)}/history/{quote(key)}").json()
        what = f"metric {key!r}"
        return Series(key, wire.unarray(data["steps"], wire.STEP, what).copy(),
                      wire.unarray(data["values"], wire.F64, what).copy(),
                      wire.unarray(data["times"], wire.F64, what).copy())

    def metric_keys(self, run_id: str) -> list[str]:
        return self.api.call("GET", f"{_run(run_id)}/metric-keys").json()["keys"]

    def environment(self, record: RunRecord) -> dict[str, Any] | None:
        return self.api.call("GET", f"{_run(record.id)}/environment").json()["environment"]

    def artifacts(self, run_id: str) -> list[Any]:
        return self._files(run_id, "artifacts")

    def artifact(self, run_id: str, path: str) -> Any | None:
        return next((a for a in self.artifacts(run_id) if a.path == path), None)

    def audio_samples(self, run_id: str) -> list[Any]:
        return self._files(run_id, "audio")

    def media(self, run_id: str, kind: str) -> list[Any]:
        return self._files(run_id, kind)

    def read_blob(self, run_id: str, sha256: str) -> bytes:
        return self.api.call("GET", f"{_run(run_id)}/blobs/{sha256}").content

    def close(self) -> None:
        self.api.close()

    def _files(self, run_id: str, kind: str) -> list[Any]:
        rows = self.api.call("GET", f"{_run(run_id)}/files/{kind}").json()["files"]
        return [SimpleNamespace(**row) for row in rows]

    def _record(self, data: dict[str, Any]) -> RunRecord:
        fields = dict(data)
        summary = {k: wire.unsummary(v) for k, v in fields.pop("summary").items()}
        return RunRecord(**fields, summary=summary, source=self)


def _run(run_id: str) -> str:
    return f"/api/records/runs/{quote(run_id, safe='')}"
