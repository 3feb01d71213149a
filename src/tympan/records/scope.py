"""The config keys and metric keys of the runs in a scope (all runs, a project, a study): what
the runs table offers as columns and what the query language checks a key against.

Reading them from every run on every request cost 0.5 s at 100,000 runs (each run's config
parsed, every run summary joined). Both lists only grow while runs are added and logged, so
they are kept per scope and brought up to date from what can have changed: the runs created
since (the scope's count and newest ``created_at`` say whether there are any), and the runs
running now or at the last read (only they log new metrics or update their config; one that
ended since is read once more, for what it logged before it ended). A count that does not add
up (runs deleted) reads the scope again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tympan.config import flatten
from tympan.records.resolve import ScopeKeys
from tympan.store import Store
from tympan.store import run_table as table

__all__ = ["flat_config", "scope_keys"]


@dataclass(frozen=True)
class _Kept:
    signature: tuple  # (count, newest created_at) of the scope's runs when read
    keys: frozenset[str]
    watched: frozenset[str]  # the scope's runs that were running when read


_LIMIT = 64  # scopes kept per process
_CONFIG: dict[tuple, _Kept] = {}
_METRICS: dict[tuple, _Kept] = {}


def scope_keys(store: Store, conn: Any, ids: list[int] | None, study: str | None
               ) -> ScopeKeys:
    """The config and metric keys of the runs in scope, each read when first needed."""
    scope = (store.where, None if ids is None else tuple(ids), study)
    read: dict[str, Any] = {}

    def current() -> tuple[tuple, frozenset[str]]:
        if not read:
            read["signature"] = tuple(table.scope_signature(conn, ids, study))
            read["running"] = frozenset(table.running_ids(conn, ids, study))
        return read["signature"], read["running"]

    def config() -> set[str]:
        return _kept(_CONFIG, scope, *current(),
                     lambda: _config_keys(table.config_texts(conn, ids, study)),
                     lambda since: _counted(table.config_texts(conn, ids, study, since=since)),
                     lambda runs: _config_keys(table.config_texts(conn, run_ids=runs)))

    def metrics() -> set[str]:
        if ids == []:
            return set()
        return _kept(_METRICS, scope, *current(),
                     lambda: set(table.metric_keys(conn, ids, study)),
                     lambda since: (table.created_since(conn, ids, study, since),
                                    set(table.metric_keys(conn, ids, study, since=since))),
                     lambda runs: set(table.metric_keys(conn, run_ids=runs)))

    return ScopeKeys(config, metrics)


def _kept(cache: dict[tuple, _Kept], scope: tuple, signature: tuple, running: frozenset[str],
          read_all: Callable[[], set[str]],
          read_newer: Callable[[float], tuple[int, set[str]]],
          read_runs: Callable[[Sequence[str]], set[str]]) -> set[str]:
    """The scope's keys from ``cache``, brought up to date from the runs created since it was
    filled and the runs running then or now; read from every run when that cannot be done."""
    cached = cache.get(scope)
    keys: set[str] | None = None
    if cached is not None:
        count, newest = cached.signature
        if (count, newest) == signature:
            keys = set(cached.keys)
        elif newest is not None and signature[0] > count:
            added, newer = read_newer(newest)
            if added == signature[0] - count:  # only additions since
                keys = set(cached.keys) | newer
        live = sorted(cached.watched | running)
        if keys is not None and live:
            keys |= read_runs(live)
    if keys is None:
        keys = read_all()
    if len(cache) >= _LIMIT and scope not in cache:
        cache.clear()
    cache[scope] = _Kept(signature, frozenset(keys), running)
    return keys


def _counted(texts: list[str | None]) -> tuple[int, set[str]]:
    return len(texts), _config_keys(texts)


def _config_keys(texts: Iterable[str | None]) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found.update(flat_config(text))
    return found


# Flattened configs by their JSON text: runs share few distinct configs, and a run's config
# text never changes. Callers copy what they keep.
_FLAT: dict[str | None, dict[str, Any]] = {}
_FLAT_LIMIT = 200_000


def flat_config(text: str | None) -> dict[str, Any]:
    """A stored config's JSON text, flattened to dotted keys (cached by text)."""
    flat = _FLAT.get(text)
    if flat is None:
        config = json.loads(text) if text else None
        flat = flatten(config) if isinstance(config, Mapping) else {}
        if len(_FLAT) >= _FLAT_LIMIT:
            _FLAT.clear()
        _FLAT[text] = flat
    return flat
