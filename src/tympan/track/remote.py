"""The transport to a tympan server: ``TYMPAN_STORE=http(s)://HOST:PORT`` with ``TYMPAN_TOKEN``.

Each write is one HTTP request (a large metric flush, a few) on a keep-alive connection, sent
by the writer thread; ``log()`` never waits for the network. The server's answer decides what
happens to the data:

- 2xx: stored (the server committed it before answering);
- no answer, a timeout, 408, 429 or 5xx: the server is down or busy; the writer keeps the data
  and retries after a jittered exponential backoff (0.5 s doubling up to ``MAX_DELAY``);
- any other 4xx (bad token, wrong project, malformed data): a ``TympanError`` with the
  server's message, never retried.

Retrying is safe because every write is idempotent on the server (see ``transport.py``).
While the server is down, writes are not held in memory but appended to the process's disk
journal (``journal.py``), in order, so they survive the process; from then on every write goes
behind them into the journal until the writer thread, retrying with the same backoff, has sent
it all (``sync.py``). Heartbeats are not journaled: a late one would say nothing.
Files logged as artifacts are copied at once into a private folder (the "outbox") and
uploaded from there, so a checkpoint overwritten right after ``log_artifact()`` is recorded
as it was; each copy is deleted once the server has it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tympan import errors, settings
from tympan.errors import StoreError, StoreUnavailableError, TympanError
from tympan.store.blobs import copy_hashing
from tympan.store.location import redact
from tympan.store.summaries import Summary
from tympan.track import wire
from tympan.track.journal import Journal, JournalFullError, server_folder
from tympan.track.transport import AudioClip, Blob, MediaItem, MetricBatch, NewRun, RunState

if TYPE_CHECKING:
    import httpx

FIRST_DELAY = 0.5  # seconds before the first retry
MAX_DELAY = 5.0  # the backoff never waits longer than this between attempts
POINTS_PER_REQUEST = 250_000  # metric points per request (~8 MB of JSON)
CHECK_BEFORE_UPLOAD = 1 << 20  # bigger blobs: ask whether the server has them first
_COPY_CHUNK = 1 << 20
_RETRYABLE = {408, 429}

log = logging.getLogger("tympan")

# A write as a journal record, with the bytes or the file that a blob record uploads.
Entry = tuple[dict[str, Any], bytes | str | None]


class HttpTransport:
    """Writes a run's data to a tympan server's ingest API (``/api/ingest/...``)."""

    def __init__(self, url: str, token: str | None) -> None:
        self._client, self.where, self._token = server_client(url, token, timeout=30.0)
        self.ui_url = self.where
        self.max_piece = 1 << 20  # points per request
        self._outbox: str | None = None
        self._outbox_lock = threading.Lock()
        self._journal: Journal | None = None  # while the server is down: where writes go
        self._journal_lock = threading.RLock()
        self._journal_full = False  # warned that it is full, until it takes writes again
        self._failures = 0
        self._next_try = 0.0  # time.monotonic() before which the journal is not sent
        self._leftovers_sent = False

    def close(self) -> None:
        self._client.close()

    def retry_delay(self, failures: int) -> float:
        ceiling = min(MAX_DELAY, FIRST_DELAY * 2 ** min(failures - 1, 16))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter: clients don't stampede

    # -- runs -------------------------------------------------------------------------------
    def check_access(self, project: str) -> None:
        self._call("GET", "/api/ingest/access", params={"project": project})

    def create_run(self, run: NewRun) -> None:
        self._write([({"op": "call", "method": "POST", "path": "/api/ingest/runs", "body": {
            "id": run.id, "project": run.project, "name": run.name, "config": run.config,
            "tags": run.tags, "note": run.note, "parent": run.parent, "study": run.study,
            "host": run.host, "pid": run.pid, "seed": run.seed, "created_at": run.created_at,
        }, "what": "create run", "runs": [run.id]}, None)])

    def run_state(self, ref: str) -> RunState:
        data = self._call("GET", "/api/ingest/state", params={"run": ref}).json()
        return RunState(
            id=data["id"], name=data["name"], project=data["project"], status=data["status"],
            host=data["host"], pid=data["pid"], started_at=data["started_at"],
            heartbeat_at=data["heartbeat_at"], config=data["config"], tags=data["tags"],
            summary={k: wire.unsummary(v) for k, v in data["summary"].items()},
            next_seq=data["next_seq"], last_step=data["last_step"],
        )

    def reopen_run(self, run_id: str, host: str, pid: int, now: float) -> None:
        self._write([_post(run_id, "reopen", {"host": host, "pid": pid, "now": now})])

    def set_environment(self, run_id: str, digest: str, data: dict[str, Any],
                        now: float) -> None:
        self._write([_post(run_id, "environment", {"digest": digest, "data": data, "now": now})])

    def set_seed(self, run_id: str, seed: int) -> None:
        self._write([_post(run_id, "seed", {"seed": seed})])

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        self._write([_post(run_id, "config", {"config": config})])

    def finish_run(self, run_id: str, status: str, ended_at: float, error: str | None) -> None:
        self._next_try = 0.0  # a run's end tries the server at once: the process may end next
        self._write([_post(run_id, "finish",
                           {"status": status, "ended_at": ended_at, "error": error})])

    def summary(self, run_id: str) -> dict[str, Summary]:
        data = self._call("GET", f"{_run(run_id)}/summary").json()
        return {k: wire.unsummary(v) for k, v in data["summary"].items()}

    # -- metrics ----------------------------------------------------------------------------
    def write_metrics(self, batch: MetricBatch) -> None:
        """Large flushes (a spool after an outage) go as several requests; summaries and the
        heartbeat ride on the last, so the stored summary never counts unstored points."""
        parts: list[dict[str, list]] = [{}]
        points = 0
        for run in batch.runs:
            for chunk in run.chunks:
                if points >= POINTS_PER_REQUEST:
                    parts.append({})
                    points = 0
                parts[-1].setdefault(run.run_id, []).append(wire.chunk(chunk))
                points += len(chunk.steps)
        summaries = {r.run_id: r.summaries for r in batch.runs}
        if not summaries:  # a heartbeat alone: sent when it can be, never journaled
            with self._journal_lock:
                if self._journal is None or self._send_journal():
                    with contextlib.suppress(StoreUnavailableError):
                        self._call("POST", "/api/ingest/metrics",
                                   json={"now": batch.now, "live": batch.live, "runs": []})
            return
        entries: list[Entry] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            ids = list(part) + [r for r in summaries if last and r not in part]
            body = {"now": batch.now, "live": batch.live if last else [], "runs": [
                {"run_id": run_id, "chunks": part.get(run_id, []),
                 "summaries": ({k: wire.summary(s) for k, s in summaries[run_id].items()}
                               if last else {})}
                for run_id in ids
            ]}
            points = sum(len(c.steps) for r in batch.runs if r.run_id in part for c in r.chunks)
            entries.append(({"op": "call", "method": "POST", "path": "/api/ingest/metrics",
                             "body": body, "what": "metrics", "runs": ids, "points": points},
                            None))
        self._write(entries)

    # -- files ------------------------------------------------------------------------------
    def keep_bytes(self, data: bytes) -> Blob:
        return Blob(hashlib.sha256(data).hexdigest(), len(data), data=data)

    def keep_file(self, path: str | os.PathLike[str]) -> Blob:
        fd, staged = tempfile.mkstemp(dir=self._outbox_dir(), prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                sha, size = copy_hashing(src, out)
        except BaseException:
            os.unlink(staged)
            raise
        return Blob(sha, size, staged=staged)

    def record_artifact(self, run_id: str, path: str, blob: Blob, media_type: str,
                        created_at: float) -> None:
        with _discarding_when_final(blob):
            self._write([_blob(blob), _post(run_id, "artifacts", {
                "path": path, "sha256": blob.sha256, "size": blob.size,
                "media_type": media_type, "created_at": created_at,
            }, what=f"artifact {path}")])

    def record_audio(self, run_id: str, clip: AudioClip, blob: Blob) -> None:
        with _discarding_when_final(blob):
            self._write([_blob(blob), _post(run_id, "audio", {
                "key": clip.key, "step": clip.step, "sha256": blob.sha256, "size": blob.size,
                "sample_rate": clip.sample_rate, "frames": clip.frames,
                "duration": clip.duration, "channels": clip.channels, "caption": clip.caption,
                "peak": clip.peak, "gain": clip.gain, "created_at": clip.created_at,
            }, what=f"audio {clip.key} step {clip.step}")])

    def record_media(self, run_id: str, item: MediaItem, blob: Blob) -> None:
        with _discarding_when_final(blob):
            self._write([_blob(blob), _post(run_id, "media", {
                "kind": item.kind, "key": item.key, "step": item.step, "sha256": blob.sha256,
                "size": blob.size, "caption": item.caption, "info": item.info,
                "created_at": item.created_at,
            }, what=f"{item.kind} {item.key} step {item.step}")])

    def _upload(self, blob: Blob) -> None:
        url = f"/api/ingest/blobs/{blob.sha256}"
        if blob.size > CHECK_BEFORE_UPLOAD and self._call("GET", url).json()["exists"]:
            return
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Length": str(blob.size)}
        if blob.data is not None:
            self._call("PUT", url, content=blob.data, headers=headers)
        else:
            assert blob.staged is not None
            self._call("PUT", url, content=_read_chunks(blob.staged), headers=headers)

    # -- the disk journal -------------------------------------------------------------------
    def _write(self, entries: list[Entry]) -> None:
        """Send ``entries`` in order or, from the first the server cannot take on, append
        them to the journal; while the journal holds anything, they go behind it."""
        with self._journal_lock:
            if self._journal is not None and not self._send_journal():
                self._to_journal(entries)
                return
            for i, (record, source) in enumerate(entries):
                try:
                    self.send_record(record, source)
                except StoreUnavailableError as exc:
                    self._next_try = time.monotonic() + self.retry_delay(1)
                    self._failures = 1
                    self._to_journal(entries[i:], exc)
                    return

    def send_record(self, record: dict[str, Any], source: bytes | str | None) -> None:
        """One write, as a journal record says it: a blob upload or a JSON request."""
        if record["op"] == "blob":
            data = source if isinstance(source, bytes) else None
            staged = source if isinstance(source, str) else None
            self._upload(Blob(record["sha256"], record["size"], data=data, staged=staged))
        else:
            self._call(record["method"], record["path"], json=record["body"])

    def _to_journal(self, entries: list[Entry], exc: BaseException | None = None) -> None:
        if self._journal is None:
            try:
                self._journal = Journal.create(server_folder(self.where), self.where)
            except OSError as error:
                raise StoreUnavailableError(
                    f"{exc}; and the disk spool under {server_folder(self.where).parent} "
                    f"cannot be written ({error}): set TYMPAN_SPOOL_DIR to a writable folder"
                ) from None
            log.warning(
                "tympan: %s; training goes on: what it logs is journaled on disk in %s (at "
                "most TYMPAN_SPOOL_DISK_MB=%d MiB) and sent when the server is back, or by "
                "`tympan sync` (or the next tympan.init against this server) if this process "
                "ends first", exc, self._journal.folder, settings.get("TYMPAN_SPOOL_DISK_MB"))
        journaled = [(_quiet(record), source) for record, source in entries]
        try:
            self._journal.append(journaled)
        except JournalFullError as full:
            if not self._journal_full:
                self._journal_full = True
                log.warning("tympan: %s; it keeps the oldest writes, and newer points wait "
                            "in memory (at most TYMPAN_SPOOL_POINTS per run), lost if this "
                            "process dies before the server is back", full)
            raise
        except OSError as error:
            raise StoreUnavailableError(
                f"cannot write the disk spool {self._journal.folder} ({error})") from None

    def _send_journal(self) -> bool:
        """Try to send the journal (no sooner than the backoff allows): True once it is all
        sent and removed, False while the server is still down."""
        from tympan.track.sync import send_journal

        assert self._journal is not None
        if time.monotonic() < self._next_try:
            return False
        try:
            sent = send_journal(self, self._journal, stop_at_refusal=False)
        except StoreUnavailableError:
            self._failures += 1
            self._next_try = time.monotonic() + self.retry_delay(self._failures)
            return False
        self._journal, self._failures, self._journal_full = None, 0, False
        log.warning("tympan: the tympan server at %s is back; sent what was journaled on disk "
                    "while it was down (%d records, %d points)", self.where, sent.records,
                    sent.points)
        return True

    def send_leftovers(self, wait: bool) -> None:
        """Send the journals that earlier processes left for this server (once per process):
        in the background, or first (``wait``: a resumed run's journaled points must come
        before what it logs now)."""
        from tympan.track.sync import send_leftovers

        with self._journal_lock:
            if self._leftovers_sent:
                return
            self._leftovers_sent = True
        own = self._journal.folder if self._journal is not None else None
        send_leftovers(self, own, wait)

    def _outbox_dir(self) -> str:
        with self._outbox_lock:
            if self._outbox is None:
                self._outbox = tempfile.mkdtemp(prefix="tympan-outbox-")
                weakref.finalize(self, shutil.rmtree, self._outbox, True)
            return self._outbox

    # -- HTTP -------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> httpx.Response:
        import httpx

        if json is not None:
            kwargs["content"] = _dumps(json)
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = redact(str(exc) or type(exc).__name__)  # httpx may quote the URL
            raise StoreUnavailableError(
                f"cannot reach the tympan server at {self.where} ({reason}); is it running?"
            ) from None
        if response.status_code < 400:
            return response
        raise self._error(response)

    def _error(self, response: httpx.Response) -> TympanError:
        status = response.status_code
        kind, said = server_said(self.where, response)
        if status >= 500 or status in _RETRYABLE:
            return StoreUnavailableError(said)
        if status == 401:
            if not self._token:
                return StoreError(f"{said}. Set TYMPAN_TOKEN to a token with scope write "
                                  "(the server's admin makes one with `tympan token create "
                                  "--scope write`)")
            return StoreError(f"{said}. Check TYMPAN_TOKEN: it is unknown to this server or "
                              "was revoked")
        if status == 403:
            return StoreError(f"{said}. Logging runs needs a token with scope write in "
                              "TYMPAN_TOKEN")
        known = getattr(errors, kind, None)
        if isinstance(known, type) and issubclass(known, TympanError) and not issubclass(
            known, StoreUnavailableError
        ):
            return known(said)
        if status == 404:
            return errors.NotFoundError(said)
        return errors.InvalidInputError(said)


def server_said(where: str, response: httpx.Response) -> tuple[str, str]:
    """(the error type a tympan server named, a message quoting its answer) of an error
    response; the clients of its other APIs (the model registry's) read errors the same way."""
    try:
        body = response.json()["error"]
        kind, message = str(body["type"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "", response.text[:300] or response.reason_phrase
    return kind, (f"the tympan server at {where} answered {response.status_code}: "
                  f"{redact(message)}")


def _run(run_id: str) -> str:
    return f"/api/ingest/runs/{quote(run_id, safe='')}"


def _post(run_id: str, route: str, body: dict[str, Any], what: str | None = None) -> Entry:
    """A write about one run, as a journal record; ``what`` names it in listings."""
    return ({"op": "call", "method": "POST", "path": f"{_run(run_id)}/{route}", "body": body,
             "what": what or route, "runs": [run_id]}, None)


def _blob(blob: Blob) -> Entry:
    return ({"op": "blob", "sha256": blob.sha256, "size": blob.size},
            blob.data if blob.data is not None else blob.staged)


def _quiet(record: dict[str, Any]) -> dict[str, Any]:
    """A journaled metrics request carries no heartbeat: sent late, it would say nothing."""
    if record.get("what") == "metrics":
        return {**record, "body": {**record["body"], "live": []}}
    return record


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _read_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            yield chunk


@contextlib.contextmanager
def _discarding_when_final(blob: Blob) -> Iterator[None]:
    """Delete a staged copy once the server has it, or once it never will (a final error);
    keep it while the write may still be retried."""
    try:
        yield
    except (StoreUnavailableError, OSError):
        raise
    except BaseException:
        _discard(blob)
        raise
    _discard(blob)


def _discard(blob: Blob) -> None:
    if blob.staged is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(blob.staged)


def server_client(url: str, token: str | None, timeout: float
                  ) -> tuple[httpx.Client, str, str | None]:
    """An HTTP client for the tympan server at ``url``, the URL as messages name it (its
    credentials masked) and the token it sends: ``token``, else a ``?token=`` in the URL (the
    sign-in link `tympan ui` prints works as is)."""
    import httpx

    from tympan import __version__

    url, token_in_url = _split_token(url.strip())
    token = token or token_in_url
    headers = {"User-Agent": f"tympan/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    client = httpx.Client(base_url=url.rstrip("/"), headers=headers,
                          timeout=httpx.Timeout(timeout, connect=5.0))
    return client, redact(url.rstrip("/")), token


def _split_token(url: str) -> tuple[str, str | None]:
    """``url`` without a ``token`` query parameter, and that parameter's value."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    token = next((value for name, value in params if name == "token"), None)
    kept = urlencode([(name, value) for name, value in params if name != "token"])
    return urlunsplit(parts._replace(query=kept)), token or None
