"""Study records through a tympan server (``TYMPAN_STORE=http(s)://HOST:PORT`` with a token
in ``TYMPAN_TOKEN``), over its ``/api/records/studies`` routes: reads need scope read,
running a study (``tympan ablate``) scope write.

The server answers with :class:`~tympan.study.source.LocalStudies` over its own store, so a
study read here equals one read from the store, and a runner here follows the same rules
(claiming the study, settling a dead runner's trials) as one beside the store. The trials'
runs are read through :class:`~tympan.records.remote.HttpSource`; analyses are computed
here from what was read, as they are from a store.
"""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tympan.errors import NotFoundError
from tympan.records.query import RunFilter, RunQuery
from tympan.records.remote import HttpSource
from tympan.study.records import StoredStudy, TrialRow, stored_study, with_listening
from tympan.track import wire

if TYPE_CHECKING:
    from tympan.study.analysis import StudyAnalysis
    from tympan.study.source import Registration

# Finding fields that may be non-finite (sent as "NaN"/"Infinity", read back as floats).
_FINDING_NUMBERS = ("effect", "low", "high", "p_value", "p_adjusted", "prob_improvement")


class HttpStudies:
    """Reads and writes study records through a tympan server's JSON API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.runs = HttpSource(url, token)
        self._api = self.runs.api
        self._api.needs = "read to show studies, write to run them"
        self.where = self.runs.where

    def load(self, text: str, project: str | None = None) -> StoredStudy:
        params = {"ref": text} | ({"project": project} if project is not None else {})
        data = self._api.call("GET", "/api/records/studies/resolve", params=params).json()
        row = SimpleNamespace(**{k: data[k] for k in (
            "id", "name", "spec", "spec_hash", "source", "created_at", "updated_at")})
        trials = [TrialRow(**t) for t in data["trials"]]
        records = {r.id: r for r in self.runs.find_runs(RunQuery(RunFilter(study=row.id)))}
        runner = tuple(data["runner"]) if data["runner"] else None
        stored = stored_study(row, data["project"], trials, records, self, runner)
        with_listening(stored, {run_id: wire.unsummary(s)
                                for run_id, s in data["listening"].items()})
        return stored

    def finding_rows(self, component: str | None = None, metric: str | None = None,
                     project: str | None = None) -> list[Any]:
        asked = {"component": component, "metric": metric, "project": project}
        params = {k: v for k, v in asked.items() if v is not None}
        rows = self._api.call("GET", "/api/records/findings", params=params).json()["rows"]
        return [SimpleNamespace(**(row | {k: _number(row[k]) for k in _FINDING_NUMBERS}))
                for row in rows]

    def record_findings(self, analysis: StudyAnalysis) -> int:
        """The server analyses the study from its own records (the same pure function of
        the same runs) and keeps that analysis's findings."""
        return self._api.call("POST", f"{_study(analysis.study_id)}/findings").json()["count"]

    def read_log(self, study_id: str, sha256: str) -> bytes:
        return self._api.call("GET", f"{_study(study_id)}/logs/{sha256}").content

    def register(self, registration: Registration, force: bool = False) -> str:
        body = asdict(registration) | {"force": force}
        return self._api.call("POST", "/api/records/studies", json=body).json()["id"]

    def claim(self, study_id: str, host: str, pid: int) -> None:
        self._api.call("POST", f"{_study(study_id)}/claim", json={"host": host, "pid": pid})

    def release(self, study_id: str, host: str, pid: int) -> None:
        self._api.call("POST", f"{_study(study_id)}/release", json={"host": host, "pid": pid})

    def beat(self, study_id: str) -> None:
        self._api.call("POST", f"{_study(study_id)}/beat")

    def change_trial(self, study_id: str, trial_id: int, **changes: Any) -> None:
        self._api.call("PATCH", f"{_study(study_id)}/trials/{trial_id}", json=changes)

    def settle_trial(self, study_id: str, trial: TrialRow, why: str) -> str:
        return self._api.call("POST", f"{_study(study_id)}/trials/{trial.id}/settle",
                              json={"why": why}).json()["status"]

    def put_log(self, study_id: str, trial_id: int, output: bytes) -> str:
        return self._api.call("PUT", f"{_study(study_id)}/trials/{trial_id}/log",
                              content=output,
                              headers={"Content-Type": "application/octet-stream"}
                              ).json()["sha256"]

    def run_state(self, run_id: str) -> tuple[str, str | None] | None:
        try:
            data = self._api.call("GET", f"/api/records/runs/{quote(run_id, safe='')}").json()
        except NotFoundError:
            return None
        return data["status"], data["error"]

    def close(self) -> None:
        self.runs.close()


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


def _study(study_id: str) -> str:
    return f"/api/records/studies/{quote(study_id, safe='')}"
