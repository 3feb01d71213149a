"""One stored run read back: :class:`RunRecord` with its history, artifacts and audio, and
how a run is named on a command line (id, unique id prefix or unique name). Pure reads, plus
marking a run whose process is gone as crashed (see track/liveness.py). Many runs at once
come from ``tympan.records.table``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tympan.errors import InvalidInputError, NotFoundError, RunNotFoundError
from tympan.ids import looks_like_id_prefix
from tympan.store import Store, projects, runs
from tympan.store import models as model_refs
from tympan.store.summaries import Summary, for_runs
from tympan.track import liveness

if TYPE_CHECKING:
    from tympan.records.source import RunSource
    from tympan.store.metrics import Series
    from tympan.track.table import Table


@dataclass
class RunRecord:
    """A stored run as read back: what ``tympan show`` and analyses work from."""

    id: str
    name: str
    project: str
    status: str
    created_at: float
    started_at: float
    ended_at: float | None
    heartbeat_at: float | None
    config: dict[str, Any]
    tags: list[str]
    note: str
    parent_id: str | None
    study_id: str | None
    host: str | None
    pid: int | None
    seed: int | None
    env_id: int | None
    error: str | None
    summary: dict[str, Summary] = field(default_factory=dict)
    archived_at: float | None = None  # when the run was archived (hidden from listings)
    source: RunSource | None = field(default=None, repr=False, compare=False)

    @property
    def store(self) -> Store | None:
        """The store this run was read from, when this process opened it (None when it came
        from a tympan server)."""
        return getattr(self.source, "store", None)

    @property
    def duration(self) -> float | None:
        end = self.ended_at or self.heartbeat_at
        return None if end is None else max(0.0, end - self.started_at)

    def history(self, key: str) -> Series:
        """The full series of one metric, in logging order (numpy arrays)."""
        series = self._source().history(self.id, key)
        if not len(series) and key not in self.summary:
            known = ", ".join(sorted(self.summary)) or "none"
            raise InvalidInputError(f"run {self.id} has no metric {key!r} (it has: {known})")
        return series

    def metric_keys(self) -> list[str]:
        return self._source().metric_keys(self.id)

    def environment(self) -> dict[str, Any] | None:
        return self._source().environment(self)

    def artifacts(self) -> list[Any]:
        return self._source().artifacts(self.id)

    def audio_samples(self) -> list[Any]:
        return self._source().audio_samples(self.id)

    def read_artifact(self, path: str) -> bytes:
        """The bytes of the artifact logged under ``path`` (e.g. ``"model.pt"``)."""
        row = self._source().artifact(self.id, path)
        if row is None:
            known = ", ".join(a.path for a in self.artifacts()) or "none"
            raise InvalidInputError(f"run {self.id} has no artifact {path!r} (it has: {known})")
        return self._source().read_blob(self.id, row.sha256)

    def images(self) -> list[Any]:
        """The run's logged images (key, step, caption, info, path, sha256, ...)."""
        return self._source().media(self.id, "image")

    def tables(self) -> list[Any]:
        """The run's logged tables (key, step, caption, info, path, sha256, ...)."""
        return self._source().media(self.id, "table")

    def read_audio(self, key: str, step: int | None = None) -> tuple[Any, int, str]:
        """``(samples, sample_rate, caption)`` of the audio logged under ``key``: the clip at
        ``step``, or the latest one. Samples are float32, shaped ``(frames,)`` for mono and
        ``(frames, channels)`` otherwise."""
        import io

        import soundfile

        clip = _pick(self, self.audio_samples(), "audio", key, step)
        data, rate = soundfile.read(io.BytesIO(self._source().read_blob(self.id, clip.sha256)),
                                    dtype="float32")
        return data * clip.gain, rate, clip.caption  # gain undoes the scaling of loud clips

    def read_image(self, key: str, step: int | None = None) -> bytes:
        """The PNG bytes of the image logged under ``key``: at ``step``, or the latest one
        (``PIL.Image.open(io.BytesIO(...))`` opens them)."""
        row = _pick(self, self.images(), "image", key, step)
        return self._source().read_blob(self.id, row.sha256)

    def read_table(self, key: str, step: int | None = None) -> Table:
        """The table logged under ``key``: at ``step``, or the latest one."""
        from tympan.track.table import decode

        row = _pick(self, self.tables(), "table", key, step)
        return decode(self._source().read_blob(self.id, row.sha256), row.key, row.step,
                      row.caption)

    def _source(self) -> RunSource:
        if self.source is None:
            raise InvalidInputError("this RunRecord is detached from its store")
        return self.source


def _pick(record: RunRecord, rows: list[Any], what: str, key: str, step: int | None) -> Any:
    """The item logged under ``key`` at ``step`` (the latest when ``step`` is None)."""
    chosen = [r for r in rows if r.key == key and (step is None or r.step == step)]
    if not chosen:
        where = f" at step {step}" if step is not None else ""
        known = ", ".join(sorted({r.key for r in rows})) or "none"
        raise InvalidInputError(f"run {record.id} has no {what} {key!r}{where} "
                                f"(its {what} keys: {known})")
    return max(chosen, key=lambda r: (r.step, r.id))


RECORD_FIELDS = ("id", "name", "status", "created_at", "started_at", "ended_at", "heartbeat_at",
                 "config", "tags", "note", "parent_id", "study_id", "host", "pid", "seed",
                 "env_id", "error", "archived_at")


def record_of(row: Any, project: str, summary: dict[str, Summary], store: Store) -> RunRecord:
    from tympan.records.source import LocalSource

    fields = {k: getattr(row, k) for k in RECORD_FIELDS}
    return RunRecord(project=project, summary=summary, source=LocalSource(store), **fields)


def resolve_run_id(store: Store, text: str, project: str | None = None) -> str:
    """A full run id from an id, a unique run name, a unique id prefix, or a model URI
    (``models:/asr@champion``: the run that trained that version).

    A full id wins; otherwise the text must name exactly one run by name or id prefix, so a
    short name like ``b`` is never silently taken for the id prefix of another run.
    With ``project`` only that project's runs are candidates, and anything else reads
    exactly like a run that does not exist: the server resolves a project-bound token's
    references so, and its answers say nothing about other projects' runs or models.
    """
    text = text.strip()
    if "\x00" in text:  # no run has one, and PostgreSQL cannot compare with it
        raise RunNotFoundError(_no_run(store, text, project))
    if model_refs.is_model_uri(text):
        return _run_of_model(store, text, project)
    with store.reader() as conn:
        project_id = None if project is None else projects.find(conn, project)
        if project is not None and project_id is None:
            raise RunNotFoundError(_no_run(store, text, project))
        if looks_like_id_prefix(text):
            row = runs.get(conn, text)
            if row is not None and project_id in (None, row.project_id):
                return text
        named = runs.ids_named(conn, text, project_id=project_id)
        prefixed = (runs.ids_with_prefix(conn, text, project_id=project_id)
                    if looks_like_id_prefix(text) else [])
    candidates = list(dict.fromkeys(named + prefixed))
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        what = []
        if named:
            what.append(f"named {text!r}: {', '.join(named)}")
        if prefixed:
            what.append(f"with ids starting {text!r}: {', '.join(prefixed)}")
        raise RunNotFoundError(f"{text!r} is ambiguous ({'; '.join(what)}): use a run id")
    raise RunNotFoundError(_no_run(store, text, project))


def _run_of_model(store: Store, text: str, project: str | None) -> str:
    with store.reader() as conn:
        if project is None:
            return model_refs.run_of(conn, text)
        try:
            run_id = model_refs.run_of(conn, text)
        except NotFoundError:  # its message names the model's versions and aliases
            run_id = None
        row = None if run_id is None else runs.get(conn, run_id)
        if row is None or projects.names(conn).get(row.project_id) != project:
            raise RunNotFoundError(_no_run(store, text, project))
        return row.id


def _no_run(store: Store, text: str, project: str | None) -> str:
    if project is not None:
        return f"no run {text!r} in project {project!r}"
    return f"no run {text!r} in the store at {store.where}: `tympan runs` lists run ids"


def get_run(store: Store, run: str) -> RunRecord:
    return run_by_id(store, resolve_run_id(store, run))


def run_by_id(store: Store, run_id: str) -> RunRecord:
    """The run with exactly this id (no names, no prefixes)."""
    with store.reader() as conn:
        row = runs.get(conn, run_id)
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id!r}")
    if liveness.reconcile(store, [row]):
        with store.reader() as conn:
            row = runs.get(conn, run_id)
    with store.reader() as conn:
        project = projects.names(conn)[row.project_id]
        summary = for_runs(conn, [run_id])[run_id]
    return record_of(row, project, summary, store)


def child_runs(record: RunRecord) -> list[RunRecord]:
    """The runs whose parent is ``record`` and that are of its project, oldest first."""
    with record.store.reader() as conn:
        ids = runs.child_ids(conn, record.id)
    children = [run_by_id(record.store, run_id) for run_id in ids]
    return [child for child in children if child.project == record.project]
