"""The studies of a store at a glance, and each one's analysis, cached while it is unchanged.

``list_studies`` gives what a list of studies shows (design, factors, trial counts);
``analysed_study`` gives ``analyse()`` of a stored study, recomputed only when the study or
its trials changed (the analysis is a pure function of them, and bootstrapping 10,000
resamples per comparison is worth not repeating on every page view).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from tympan.store import Store, preferences, projects, studies
from tympan.study.analysis import StudyAnalysis, analyse
from tympan.study.records import find_study, load_stored_study, settle
from tympan.study.spec import StudySpec

__all__ = ["StudyOverview", "analysed_study", "list_studies"]

CACHE_SIZE = 32


@dataclass
class StudyOverview:
    id: str
    name: str
    project: str
    description: str
    design: str
    created_at: float
    updated_at: float
    factors: dict[str, dict[str, Any]]  # name -> {"levels": [...], "baseline": ...}
    metrics: list[str]
    seeds: list[int]
    trials: dict[str, int]  # total and per status, of the study as last run
    running: bool  # a runner holds the study now


def list_studies(store: Store, project: str | None = None) -> list[StudyOverview]:
    """Every study (of ``project`` if given), newest first."""
    out = []
    with store.read() as conn:
        names = projects.names(conn)
        rows = [r for r in studies.all_studies(conn)
                if project is None or names[r.project_id] == project]
        trial_rows = {r.id: studies.trials_of(conn, r.id) for r in rows}
    for i, row in enumerate(rows):  # a runner that is gone shows as gone, its trials settled
        if row.runner_pid is not None or any(t.status == "running" for t in trial_rows[row.id]):
            rows[i] = settle(store, row)
            if rows[i] is not row:
                with store.read() as conn:
                    trial_rows[row.id] = studies.trials_of(conn, row.id)
    for row in reversed(rows):
        stored = dict(row.spec)
        spec = StudySpec.model_validate(stored["spec"])
        current = set(stored.get("trial_keys", []))
        counts = Counter(t.status for t in trial_rows[row.id] if t.key in current)
        out.append(StudyOverview(
            id=row.id, name=row.name, project=names[row.project_id],
            description=spec.description, design=spec.design, created_at=row.created_at,
            updated_at=row.updated_at,
            factors={n: {"levels": f.level_names, "baseline": f.baseline_name}
                     for n, f in spec.factors.items()},
            metrics=[m.key for m in spec.metrics], seeds=spec.seed_list,
            trials={"total": sum(counts.values()),
                    **{s: counts.get(s, 0) for s in
                       ("finished", "failed", "timed_out", "crashed", "running", "pending")}},
            running=row.runner_pid is not None,
        ))
    return out


_cache: OrderedDict[tuple, StudyAnalysis] = OrderedDict()
_lock = threading.Lock()


def analysed_study(store: Store, text: str, project: str | None = None,
                   visible: str | None = None) -> StudyAnalysis:
    """``analyse()`` of the study named by ``text`` (id, id prefix or name; ``project``
    picks among same-named ones). ``visible``: the study must belong to that project, else
    it is not found."""
    row = settle(store, find_study(store, text, project, visible))
    with store.read() as conn:
        trials = studies.trials_of(conn, row.id)
        heard = preferences.fingerprint(conn, row.id)  # new judgements change a metric
    fingerprint = (store.where, row.id, row.spec_hash, row.updated_at, heard,
                   tuple((t.key, t.status, t.run_id, t.ended_at, t.attempts) for t in trials))
    with _lock:
        if fingerprint in _cache:
            _cache.move_to_end(fingerprint)
            return _cache[fingerprint]
    analysis = analyse(load_stored_study(store, row.id))
    with _lock:
        _cache[fingerprint] = analysis
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return analysis
