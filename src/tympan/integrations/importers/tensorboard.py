"""Reading TensorBoard log directories: every event, nothing down-sampled.

TensorBoard's own reader (``plugin_event_accumulator.EventAccumulator``) keeps a random sample
of 500 points per tag unless told otherwise; it is told to keep everything (size guidance 0),
so a scalar's history comes over whole. Its accumulator also migrates old-style summaries
(``simple_value``, encoded images and audio) into the tensor form read here, and drops the
events a restarted writer orphaned, exactly as TensorBoard shows them.

A *run* is a directory holding event files, as in TensorBoard; a run directory inside
another one (``add_scalars`` and ``add_hparams`` of ``torch.utils.tensorboard`` make those)
becomes a child run of it. What each plugin's data becomes:

    scalars   metric series (step, value, wall time)
    audio     audio clips (decoded from WAV; several clips at a step: KEY/0, KEY/1, ...)
    images    images (PNG kept as it is)
    text      tables with a ``text`` column (a 2-D text tensor keeps its rows and columns)
    histograms  tables of bucket edges and counts (left, right, count) per step
    hparams   the run's config (the HParams plugin's session data)

Graphs, PR curves, meshes and other plugins have no tympan record yet: they are counted and
reported as skipped, never silently dropped.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tympan.errors import InvalidInputError
from tympan.integrations import require
from tympan.integrations.importers.writing import (
    Audio,
    Imported,
    SourceRun,
    image_media,
    metric_key,
    table_media,
    write_run,
)
from tympan.track.transport import Transport

HPARAMS_START = "_hparams_/session_start_info"
HPARAMS_END = "_hparams_/session_end_info"


def import_logdir(transport: Transport, logdir: str | Path, project: str) -> list[Imported]:
    """Import every run under ``logdir`` into ``project`` (again: only what is new)."""
    return [write_run(transport, run, parent=parent)
            for run, parent in read_runs(logdir, project)]


def run_directories(logdir: str | Path) -> list[Path]:
    """The run directories under ``logdir`` (it included), parents before their children."""
    io_wrapper = require("tensorboard.backend.event_processing.io_wrapper", "tensorboard",
                         "tympan import tensorboard")
    root = Path(logdir).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInputError(f"TensorBoard log directory {str(logdir)!r} does not exist")
    found = sorted(Path(d) for d in io_wrapper.GetLogdirSubdirectories(str(root)))
    if not found:
        raise InvalidInputError(f"no TensorBoard event files (events.out.tfevents.*) under "
                                f"{str(root)!r}")
    return found


def read_runs(logdir: str | Path, project: str) -> Iterator[tuple[SourceRun, str | None]]:
    """Each run under ``logdir`` and the source of its parent run (None at the top)."""
    root = Path(logdir).expanduser().resolve()
    directories = run_directories(root)
    sources: dict[Path, str] = {}
    for directory in directories:
        run = read_run(directory, project, name=_name(root, directory))
        parent = next((sources[p] for p in directory.parents if p in sources), None)
        sources[directory] = run.source
        yield run, parent


def _name(root: Path, directory: Path) -> str:
    relative = directory.relative_to(root).as_posix()
    name = root.name if relative == "." else relative
    return name[-200:] or "tensorboard"


def read_run(directory: Path, project: str, name: str) -> SourceRun:
    """One run directory's events, whole."""
    accumulator_module = require(
        "tensorboard.backend.event_processing.plugin_event_accumulator", "tensorboard",
        "tympan import tensorboard")
    from tensorboard.util import tensor_util

    accumulator: Any = accumulator_module.EventAccumulator(  # type: ignore[attr-defined]
        str(directory), size_guidance={"tensors": 0})
    accumulator.Reload()
    try:
        started = accumulator.FirstEventTimestamp()
    except ValueError:  # event files without an event yet
        started = directory.stat().st_mtime
    run = SourceRun(source=f"tensorboard:{directory}", project=project, name=name,
                    created_at=started, tags=["tensorboard"])
    last = started
    for tag, metadata in sorted(accumulator.AllSummaryMetadata().items()):
        plugin = metadata.plugin_data.plugin_name
        events = accumulator.Tensors(tag)
        for event in events:
            last = max(last, event.wall_time)
            if event.step < 0:
                raise InvalidInputError(f"{directory}: tag {tag!r} has step {event.step}; "
                                        "tympan steps are >= 0")
        reader = _READERS.get(plugin)
        if reader is None:
            run.skip(f"{plugin or 'untyped'} ({tag})")
            continue
        for event in events:
            reader(run, tag, metadata, event, tensor_util.make_ndarray(event.tensor_proto))
    run.ended_at = last
    return run


def _scalar(run: SourceRun, tag: str, metadata: Any, event: Any, array: Any) -> None:
    run.points(tag).add(event.step, float(array.reshape(-1)[0]), event.wall_time)


def _audio(run: SourceRun, tag: str, metadata: Any, event: Any, array: Any) -> None:
    import soundfile

    clips = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    for i, row in enumerate(clips):
        label = row[1].decode("utf-8", "replace") if len(row) > 1 and row[1] else None
        try:
            samples, rate = soundfile.read(io.BytesIO(row[0]), dtype="float32")
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise InvalidInputError(f"audio {tag!r} at step {event.step} cannot be decoded: "
                                    f"{exc}") from None
        key = metric_key(tag if len(clips) == 1 else f"{tag}/{i}")
        run.audio.append(Audio(key, event.step, samples, rate, label, event.wall_time))


def _image(run: SourceRun, tag: str, metadata: Any, event: Any, array: Any) -> None:
    encoded = list(array.reshape(-1)[2:])  # width, height, then the encoded images
    for i, data in enumerate(encoded):
        key = metric_key(tag if len(encoded) == 1 else f"{tag}/{i}")
        run.media.append(image_media(key, event.step, bytes(data), None, event.wall_time))


def _text(run: SourceRun, tag: str, metadata: Any, event: Any, array: Any) -> None:
    def text(value: Any) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    if array.ndim == 2:
        rows = [[text(v) for v in row] for row in array]
        columns = [f"column {i}" for i in range(array.shape[1])]
    else:
        rows = [[text(v)] for v in array.reshape(-1)]
        columns = ["text"]
    key = metric_key(tag.removesuffix("/text_summary"))
    run.media.append(table_media(key, event.step, rows, columns, None, event.wall_time))


def _histogram(run: SourceRun, tag: str, metadata: Any, event: Any, array: Any) -> None:
    rows = [[float(left), float(right), float(count)] for left, right, count in
            array.reshape(-1, 3)]
    run.media.append(table_media(metric_key(tag), event.step, rows, ["left", "right", "count"],
                                 None, event.wall_time))


def _hparams(run: SourceRun, tag: str, metadata: Any, event: Any, array: Any) -> None:
    from tensorboard.plugins.hparams import metadata as hparams

    content = metadata.plugin_data.content
    if tag == HPARAMS_START:
        info = hparams.parse_session_start_info_plugin_data(content)
        for name, value in info.hparams.items():
            run.config[name] = _value(value)
    elif tag == HPARAMS_END:
        end = hparams.parse_session_end_info_plugin_data(content)
        if end.status == 2:  # STATUS_FAILURE
            run.status = "failed"
            run.error = "the HParams session ended with status FAILURE"
    # the experiment summary only lists the hyperparameters and metrics it shows


def _value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None


_READERS = {"scalars": _scalar, "audio": _audio, "images": _image, "text": _text,
            "histograms": _histogram, "hparams": _hparams}
