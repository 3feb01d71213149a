"""Blind preference tests of a study's arms (study/listening.py): the pairs a listener is to
judge, their clips by position only ("1" or "2", never a run or sample id), recording a
judgement (write scope) and the preference rates with their intervals.

A clip's URL names the listener, the pair and the position, so the page cannot tell which
arm it plays; the server draws the order from the listener and the pair.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from tympan.errors import NotFoundError, StudyNotFoundError
from tympan.server import spectrogram
from tympan.server.auth import Principal
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, Writer, json_response
from tympan.server.routes.media import byte_range_response
from tympan.store import Store, projects, samples
from tympan.study import listening
from tympan.study.records import StoredStudy, find_study, load_stored_study

router = APIRouter(prefix="/api", tags=["listening tests"], dependencies=ReadChecks)

Listener = Annotated[str, Query(min_length=1, max_length=listening.MAX_LISTENER)]


class JudgementIn(BaseModel):
    listener: str = Field(min_length=1, max_length=listening.MAX_LISTENER)
    pair: str = Field(min_length=1, max_length=300)
    choice: Literal[1, 2]  # the clip preferred, as the listener heard them


def _study(store: Store, principal: Principal, study: str) -> StoredStudy:
    """The study, if the principal may see its project (else 404, as for no study)."""
    try:
        row = find_study(store, study, principal.projects_filter())
    except StudyNotFoundError:
        raise StudyNotFoundError(f"no study {study!r}") from None
    with store.read() as conn:
        owner = projects.names(conn)[row.project_id]
    principal.check_project(owner, f"no study {study!r}")
    return load_stored_study(store, row.id)


def _result(store: Store, stored: StoredStudy, arm: str) -> dict[str, Any]:
    return asdict(listening.preference_result(store, stored, arm))


@router.get("/studies/{study}/listening")
def tests(principal: Reader, store: StoreDep, study: str) -> Response:
    """The study's preference tests: one per arm, with its pairs and result so far."""
    stored = _study(store, principal, study)
    arms = [{"arm": arm, "pairs": len(listening.pairs_for(stored, arm)),
             "result": _result(store, stored, arm)} for arm in listening.test_arms(stored)]
    return json_response({"study": stored.name, "study_id": stored.id,
                          "project": stored.project, "design": stored.spec.design,
                          "tests": arms})


@router.get("/studies/{study}/listening/{arm}")
def pairs(principal: Reader, store: StoreDep, study: str, arm: str,
          listener: Listener) -> Response:
    """The arm's pairs in this listener's order, each with what they chose (1, 2 or None),
    and the test's result so far."""
    stored = _study(store, principal, study)
    view = listening.listener_pairs(store, stored, arm, listener)
    return json_response({
        "study": stored.name, "arm": arm, "baseline": listening.BASELINE,
        "listener": listening.check_listener(listener),
        "pairs": [asdict(p) for p in view], "result": _result(store, stored, arm)})


@router.post("/studies/{study}/listening/{arm}")
def judge(body: JudgementIn, principal: Writer, store: StoreDep, study: str,
          arm: str) -> Response:
    """Record that the listener preferred clip ``choice`` of ``pair``."""
    stored = _study(store, principal, study)
    pair = listening.record_preference(store, stored, arm, body.listener, body.pair,
                                       body.choice, principal.token_id)
    return json_response({"pair": pair.id, "result": _result(store, stored, arm)})


@router.get("/studies/{study}/listening/{arm}/clip.wav")
def clip(principal: Reader, store: StoreDep, study: str, arm: str, listener: Listener,
         pair: Annotated[str, Query(min_length=1, max_length=300)],
         position: Annotated[int, Query(ge=1, le=2)],
         range_header: Annotated[str | None, Header(alias="range")] = None) -> Response:
    """Clip ``position`` (1 or 2) of a pair, as this listener hears it, as WAV."""
    stored = _study(store, principal, study)
    run_id, sample_id = listening.clip_of(stored, arm, listener, pair, position)
    with store.read() as conn:
        row = samples.get(conn, run_id, sample_id)
    if row is None:
        raise NotFoundError(f"pair {pair!r} has no clip {position}")
    data = spectrogram.wav_bytes(spectrogram.decode(store.blobs.read(row.sha256), row.gain))
    return byte_range_response(data, "audio/wav", range_header,
                               {"Cache-Control": "private, no-store"})
