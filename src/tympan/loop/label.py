"""Audio a serving run sampled, labelled by a person, as a new batch of the loop's data.

``tympan serve`` keeps a sample of the requests (and every flagged one) as audio under
``requests/sampled`` and ``requests/flagged``, captioned with the model's answer and the
guard's verdict. :func:`labelling_sheet` lists those clips with the answer as a pre-filled
transcript; a person corrects the transcripts and marks the clips to keep, and
:func:`write_batch` turns the filled sheet into WAV files plus a ``manifest.jsonl`` in the
corpus format (``tympan.audio.corpus.Utterance``), which the pipeline's data folder takes as
one new batch. Everything is read through a run source, so a team server works too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tympan.errors import InvalidInputError
from tympan.records.source import RunSource

# The serving run's format, owned here (tympan.serve.recording writes it, a face this layer
# cannot import): its tag, the keys of the clips it keeps and their captions.
SERVING_TAG = "serving"
SAMPLED, FLAGGED = "requests/sampled", "requests/flagged"
CLIP_KEYS = (SAMPLED, FLAGGED)
_CAPTION = 400  # characters of an answer kept in a caption
COLUMNS = ("clip", "verdict", "p_value", "transcript", "keep")
_KEEP = {"yes": True, "y": True, "keep": True, "1": True, "true": True, "x": True,
         "no": False, "n": False, "0": False, "false": False, "": False}


def labelling_sheet(source: RunSource, ref: str) -> list[dict[str, str]]:
    """One row per clip of serving run ``ref``, in request order: the clip id
    (``key@step``), the verdict (``flagged`` or ``sampled``), the guard's p-value (empty
    without a guard), the model's answer as the transcript to correct, and ``keep`` empty."""
    _, clips = _clips(source, ref)
    rows = []
    for clip in clips:
        answer, p_value = _read_caption(clip.caption or "")
        rows.append({"clip": _clip_id(clip), "verdict": clip.key.rsplit("/", 1)[1],
                     "p_value": p_value, "transcript": answer, "keep": ""})
    return rows


def sheet_csv(rows: Iterable[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_batch(source: RunSource, ref: str, labels: Path, out: Path,
                lang: str = "en") -> list[dict[str, Any]]:
    """Write the kept clips of the filled sheet ``labels`` into the folder ``out`` as WAV
    files and ``manifest.jsonl`` (written last, so a watching loop never sees half a batch);
    returns the manifest's rows."""
    import soundfile

    if (out / "manifest.jsonl").exists():
        raise InvalidInputError(f"{out} already holds a manifest.jsonl: give a new folder "
                                "for each batch")
    run, clips = _clips(source, ref)
    by_id = {_clip_id(c): c for c in clips}
    kept = _kept_rows(labels, by_id)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip_id, text in kept:
        clip = by_id[clip_id]
        samples = run.read_audio(clip.key, clip.step)[0]
        name = f"{clip.step:06d}-{clip.key.rsplit('/', 1)[1]}.wav"
        soundfile.write(out / name, samples, clip.sample_rate, subtype="FLOAT")  # exact
        rows.append({"path": name, "text": text, "speaker": "unknown", "lang": lang,
                     "split": "train", "duration": round(len(samples) / clip.sample_rate, 6),
                     "sample_rate": clip.sample_rate,
                     "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
                     "events": []})
    partial = out / "manifest.jsonl.part"
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
    os.replace(partial, out / "manifest.jsonl")
    return rows


def _clips(source: RunSource, ref: str) -> tuple[Any, list[Any]]:
    run = source.run(ref)
    if SERVING_TAG not in run.tags:
        raise InvalidInputError(f"run {run.id} ({run.name}) is not a serving run (no "
                                f"{SERVING_TAG!r} tag): label the run `tympan serve` recorded")
    clips = sorted((c for c in source.audio_samples(run.id) if c.key in CLIP_KEYS),
                   key=lambda c: (c.step, c.key))
    if not clips:
        raise InvalidInputError(f"serving run {run.id} kept no audio under "
                                f"{' or '.join(CLIP_KEYS)}: serve with a sample rate above 0 "
                                "or with the guard on")
    return run, clips


def _clip_id(clip: Any) -> str:
    return f"{clip.key}@{clip.step}"


def clip_caption(answer: dict[str, Any], verdict: Any | None) -> str:
    """The caption of a kept request's clip: ``answer: {json}`` (cut at 400 characters),
    then the guard's `` | p=... score=...`` and, when flagged, `` FLAGGED at LAYER``."""
    caption = f"answer: {json.dumps(answer, default=str)[:_CAPTION]}"
    if verdict is not None:
        caption += (f" | p={verdict.p_value:.3g} score={verdict.score:.4g}"
                    f"{' FLAGGED at ' + str(verdict.entry_layer) if verdict.flagged else ''}")
    return caption


def _read_caption(caption: str) -> tuple[str, str]:
    """(the answer's text, the guard's p-value) of a clip's caption; an answer cut short or
    without a transcript gives an empty text, for the person to write."""
    body, _, verdict = caption.removeprefix("answer: ").partition(" | p=")
    p_value = verdict.split(" ", 1)[0] if verdict else ""
    try:
        answer = json.loads(body)
    except ValueError:
        return "", p_value
    text = answer.get("transcript", answer.get("output")) if isinstance(answer, dict) else answer
    return (text if isinstance(text, str) else ""), p_value


def _kept_rows(labels: Path, clips: dict[str, Any]) -> list[tuple[str, str]]:
    """(clip id, transcript) of each row marked to keep, after checking the whole sheet."""
    try:
        with labels.open(encoding="utf-8", newline="") as f:
            sheet = list(csv.DictReader(f))
            header = set(sheet[0]) if sheet else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"labels {labels}: cannot read it as a CSV sheet: {exc}") \
            from None
    missing = {"clip", "transcript", "keep"} - header
    if missing:
        raise InvalidInputError(f"labels {labels}: no column {', '.join(sorted(missing))} "
                                f"(the sheet has: {', '.join(COLUMNS)})")
    unknown = [r["clip"] for r in sheet if r["clip"] not in clips]
    if unknown:
        raise InvalidInputError(f"labels {labels}: unknown clip id(s) {', '.join(unknown[:5])}"
                                f"{' ...' if len(unknown) > 5 else ''}: the serving run has "
                                f"{len(clips)} clips, listed by the sheet this command writes")
    seen: set[str] = set()
    kept = []
    for row in sheet:
        clip, keep = row["clip"], (row["keep"] or "").strip().lower()
        if clip in seen:
            raise InvalidInputError(f"labels {labels}: clip {clip} is listed twice")
        seen.add(clip)
        if keep not in _KEEP:
            raise InvalidInputError(f"labels {labels}: clip {clip}: keep={row['keep']!r}: use "
                                    "yes to keep it, no or nothing to leave it out")
        if _KEEP[keep]:
            kept.append((clip, " ".join((row["transcript"] or "").split())))
    empty = [clip for clip, text in kept if not text]
    if empty:
        raise InvalidInputError(f"labels {labels}: kept clip(s) {', '.join(empty[:5])} have an "
                                "empty transcript: write what is said, or set keep to no")
    if not kept:
        raise InvalidInputError(f"labels {labels}: no row is marked keep=yes: nothing to write")
    return kept
