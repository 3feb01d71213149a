"""Evidence for an alias change, as the user writes it and as the history keeps it.

``study:NAME`` (or id), ``run:RUN``, ``gate:RUN`` (a run holding a gate report, see
``gate.py``) or a ``http(s)://`` URL. Local references are checked when the change is made,
so the history never links to something that did not exist.
"""

from __future__ import annotations

import json
from typing import Any

from tympan.errors import InvalidInputError, ProtectedAliasError, StudyNotFoundError
from tympan.registry.gate import GATE_REPORT, check_gate
from tympan.store import Store
from tympan.store import studies as study_records

KINDS = ("study", "run", "gate", "url")
_FORMS = "study:NAME, run:RUN, gate:RUN or an http(s):// URL"


def resolve_evidence(store: Store, text: str | None, model: str,
                     version: int | None) -> dict[str, Any] | None:
    """The evidence ``text`` names, checked against the store; None for none."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if text.startswith(("http://", "https://")):
        return {"kind": "url", "url": text}
    kind, sep, value = text.partition(":")
    value = value.strip()
    if not sep or kind not in KINDS or not value:
        raise InvalidInputError(f"evidence {text!r}: use {_FORMS}")
    if kind == "url":
        return resolve_evidence(store, value, model, version)
    if kind == "study":
        return {"kind": "study", **_study(store, value)}
    from tympan.records.record import get_run

    record = get_run(store, value)
    if kind == "run":
        return {"kind": "run", "id": record.id, "name": record.name,
                "project": record.project}
    if version is None:
        raise InvalidInputError("a gate report is evidence for moving an alias to a version, "
                                "not for deleting it")
    try:
        report = json.loads(record.read_artifact(GATE_REPORT))
    except InvalidInputError:
        raise ProtectedAliasError(f"run {record.id} holds no {GATE_REPORT}: it is not a "
                                  "gate") from None
    except ValueError:
        report = None
    checked = check_gate(report, record.id, model, version)
    return {"kind": "gate", "id": record.id, "name": record.name, "passed": True,
            "summary": checked.get("summary", "")}


def _study(store: Store, text: str) -> dict[str, Any]:
    with store.read() as conn:
        row = study_records.get(conn, text)
        candidates = [row] if row is not None else study_records.named(conn, text)
        if not candidates:
            candidates = study_records.with_id_prefix(conn, text)
    if len(candidates) != 1:
        what = "no study" if not candidates else "more than one study"
        raise StudyNotFoundError(f"{what} named {text!r} (or with that id): `tympan study` "
                                 "lists the studies")
    return {"id": candidates[0].id, "name": candidates[0].name}
