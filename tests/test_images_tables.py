"""Images (PNG) and tables (JSON with their columns) round-trip exactly, on SQLite and
PostgreSQL; what cannot be stored is refused at the call with the key, column and row."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import tympan
from tympan.errors import ImageError, RunStateError, TableError
from tympan.store import media, open_store
from tympan.track.local import LocalTransport
from tympan.track.transport import MediaItem

Image = pytest.importorskip("PIL.Image")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def open_run(tmp_path_factory: pytest.TempPathFactory):
    """One run for the tests of refused input (nothing they try is stored)."""
    run = tympan.init(project="p", store=str(tmp_path_factory.mktemp("refused") / "s"))
    yield run
    run.finish()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_images_round_trip_from_every_source(store_url: str) -> None:
    torch = pytest.importorskip("torch")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    attention = rng.normal(0, 3, (16, 24))  # logits: outside [0, 1]
    figure, axes = plt.subplots(figsize=(2, 1.5), dpi=50)
    axes.plot([0, 1, 4])

    run = tympan.init(project="tts", store=store_url)
    run.log_image("rgb", rgb, step=3, caption="epoch 3")
    rgb[:] = 0  # the caller reuses its buffer at once: what was logged must not change
    run.log_image("rgba", rgba)
    run.log_image("grey", np.linspace(0, 1, 6 * 4).reshape(6, 4))
    run.log_image("mask", np.eye(3, dtype=bool))
    run.log_image("chw", torch.from_numpy(rgba[..., :3].transpose(2, 0, 1).copy()))
    run.log_image("attention", attention, step=1)
    run.log_image("attention", attention * 2, step=2)
    run.log_image("pil", Image.fromarray(rgba[..., :3]).convert("CMYK"))
    run.log_image("figure", figure)
    axes.plot([4, 1, 0])  # drawn on after logging: the logged image stays as it was
    run.log_image("axes", axes, step=5)
    plt.close(figure)
    tympan.log_image("module", np.zeros((2, 2), np.uint8))
    run.finish()

    record = tympan.load_run(run.id, store=store_url)
    images = {(i.key, i.step): i for i in record.images()}
    assert set(images) == {("rgb", 3), ("rgba", 0), ("grey", 0), ("mask", 0), ("chw", 0),
                           ("attention", 1), ("attention", 2), ("pil", 0), ("figure", 0),
                           ("axes", 5), ("module", 0)}
    first = images[("rgb", 3)]
    assert first.caption == "epoch 3" and first.path.startswith("images/rgb/step-00000003-")
    assert first.info == {"width": 20, "height": 12, "mode": "RGB"}
    assert first.media_type == "image/png"
    original = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    assert np.array_equal(_pixels(record.read_image("rgb")), original)
    assert np.array_equal(_pixels(record.read_image("rgba")), rgba)
    assert np.array_equal(_pixels(record.read_image("chw")), rgba[..., :3])
    assert np.array_equal(_pixels(record.read_image("grey")).ravel(),
                          np.rint(np.linspace(0, 255, 24)).astype(np.uint8))
    assert np.array_equal(_pixels(record.read_image("mask")), np.eye(3, dtype=np.uint8) * 255)
    scaled = images[("attention", 2)].info["scaled_from"]
    assert scaled == pytest.approx([2 * attention.min(), 2 * attention.max()])
    back = _pixels(record.read_image("attention")).astype(float)  # the latest: step 2
    restored = scaled[0] + back / 255 * (scaled[1] - scaled[0])
    assert np.abs(restored - attention * 2).max() <= (scaled[1] - scaled[0]) / 255
    assert _pixels(record.read_image("attention", step=1)).shape == (16, 24)
    assert images[("pil", 0)].info["mode"] == "RGB"  # CMYK has no PNG form
    assert images[("figure", 0)].info == {"width": 100, "height": 75, "mode": "RGBA"}
    assert not np.array_equal(_pixels(record.read_image("figure")),
                              _pixels(record.read_image("axes")))
    with pytest.raises(tympan.errors.InvalidInputError, match="no image 'rgb' at step 4"):
        record.read_image("rgb", step=4)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((2, 3, 4, 4)), r"shape \(2, 3, 4, 4\).*one image at a time"),
        (np.zeros((5, 5, 7)), r"C = 1, 3 or 4"),
        (np.zeros((0, 5)), "empty"),
        (np.array([[0.0, np.nan]]), r"NaN or Inf pixels \(first at row, column \(0, 1\)\)"),
        (np.zeros((2, 2), np.complex64), "dtype complex64"),
        ("a picture", "got str"),
        ([[object()]], "got list"),
    ],
)
def test_bad_images_are_refused_at_the_call(open_run, image, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        open_run.log_image("spec", image)
    assert isinstance(info.value, ImageError) and "'spec'" in str(info.value)


def test_bad_keys_captions_and_finished_runs_are_refused(tmp_path) -> None:
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    for log in (lambda **kw: run.log_image(image=np.zeros((2, 2)), **kw),
                lambda **kw: run.log_table(data=[[1]], columns=["a"], **kw)):
        with pytest.raises(tympan.errors.MetricKeyError):
            log(key="bad key!")
        with pytest.raises(ValueError, match="caption must be a str"):
            log(key="k", caption=3)
        with pytest.raises(ValueError, match="step must be"):
            log(key="k", step=-1)
    run.finish()
    with pytest.raises(RunStateError):
        run.log_image("spec", np.zeros((2, 2)))
    with pytest.raises(RunStateError):
        run.log_table("t", [[1]], columns=["a"])
    assert tympan.load_run(run.id, store=str(tmp_path / "s")).images() == []


def test_tables_round_trip_from_every_shape(store_url: str) -> None:
    frame = pd.DataFrame({
        "utt": ["u1", "u2", "u3"],
        "wer": [0.25, float("nan"), float("inf")],
        "words": np.array([4, 3, 5], dtype=np.int64),
        "correct": [True, False, True],
        "when": pd.to_datetime(["2026-01-02", "2026-01-03", None]),
        "tokens": [["a", "b"], [], {"n": 1}],
    })
    run = tympan.init(project="asr", store=store_url)
    run.log_table("errors", frame, step=10, caption="worst utterances")
    run.log_table("rows", [(1, "a"), [2, None]], columns=["n", "s"])
    run.log_table("records", [{"a": 1}, {"b": "x", "a": 2}])
    run.log_table("by_column", {"layer": ["enc.0", "enc.1"], "p": [0.5, 1e-9]})
    run.log_table("confusion", np.array([[5, 1], [0, 7]]), columns=["yes", "no"], step=2)
    run.log_table("confusion", np.array([[6, 0], [0, 7]]), columns=["yes", "no"], step=4)
    tympan.log_table("empty", [], columns=["only"])
    run.finish()

    record = tympan.load_run(run.id, store=store_url)
    listed = {(t.key, t.step): t for t in record.tables()}
    assert set(listed) == {("errors", 10), ("rows", 0), ("records", 0), ("by_column", 0),
                           ("confusion", 2), ("confusion", 4), ("empty", 0)}
    assert listed[("errors", 10)].info == {
        "columns": ["utt", "wer", "words", "correct", "when", "tokens"],
        "types": ["string", "number", "number", "bool", "string", "json"], "rows": 3}
    assert listed[("errors", 10)].path.endswith(".json")
    errors = record.read_table("errors")
    assert (errors.key, errors.step, errors.caption) == ("errors", 10, "worst utterances")
    assert errors.column("utt") == ["u1", "u2", "u3"]
    wer = errors.column("wer")
    assert wer[0] == 0.25 and math.isnan(wer[1]) and wer[2] == math.inf  # NaN/Inf come back
    assert errors.column("words") == [4, 3, 5]
    assert errors.column("when") == ["2026-01-02T00:00:00", "2026-01-03T00:00:00", None]
    assert errors.column("tokens") == [["a", "b"], [], {"n": 1}]
    back = errors.to_pandas()
    assert list(back.columns) == list(frame.columns) and back["words"].sum() == 12
    assert record.read_table("rows").rows == [[1, "a"], [2, None]]
    records = record.read_table("records")
    assert records.columns == ["a", "b"] and records.rows == [[1, None], [2, "x"]]
    assert record.read_table("by_column").rows == [["enc.0", 0.5], ["enc.1", 1e-9]]
    assert record.read_table("confusion").rows == [[6, 0], [0, 7]]  # the latest step
    assert record.read_table("confusion", step=2).rows == [[5, 1], [0, 7]]
    assert record.read_table("empty").types == ["empty"]
    with pytest.raises(TableError, match="no column 'nope'.*utt, wer"):
        errors.column("nope")


@pytest.mark.parametrize(
    ("data", "columns", "message"),
    [
        ([[1, 2], [3]], ["a", "b"], r"row 1 has 1 cells, but there are 2 columns \(a, b\)"),
        ([[1, 2]], None, "rows need column names: pass columns="),
        ([[1, 2]], ["a", "a"], "column names must differ; repeated: a"),
        ([[1, 2]], ["a", ""], "column name '' must be 1-200 characters"),
        ([[1, object()]], ["a", "b"], "cell in column 'b', row 0 is a object"),
        ([[1, b"raw"]], ["a", "b"], "cell in column 'b', row 0 is a bytes"),
        ({"a": [1, 2], "b": [1]}, None, r"different lengths \(a: 2, b: 1\)"),
        ({"a": 1}, None, "column 'a' must be a list of values, got int"),
        ({"a": [1]}, ["a"], "drop columns="),
        ("text", None, "expected a pandas DataFrame.*got str"),
        (42, None, "got int"),
        ([1, 2], ["a"], "row 0 is a int, not a list or tuple"),
        ([], [], "has no columns"),
    ],
)
def test_bad_tables_are_refused_at_the_call(open_run, data, columns, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        open_run.log_table("t", data, columns=columns)
    assert isinstance(info.value, TableError) and "'t'" in str(info.value)


def test_a_dataframe_names_its_columns_and_a_table_has_a_size_limit(open_run,
                                                                   monkeypatch) -> None:
    from tympan.track import table

    with pytest.raises(TableError, match="DataFrame names its own columns"):
        open_run.log_table("t", pd.DataFrame({"a": [1]}), columns=["b"])
    monkeypatch.setattr(table, "MAX_ROWS", 10)
    with pytest.raises(TableError, match="has 11 rows, more than 10: log a sample"):
        open_run.log_table("t", {"a": [0] * 11})


def test_the_same_image_recorded_twice_is_stored_once(tmp_path) -> None:
    """A retried write (its response lost) stores nothing twice."""
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    run.finish()
    with open_store(str(tmp_path / "s")) as store:
        transport = LocalTransport(store)
        blob = transport.keep_bytes(b"\x89PNG not really")
        item = MediaItem("image", "x", 1, None, {"width": 1, "height": 1, "mode": "L"}, 1.0)
        transport.record_media(run.id, item, blob)
        transport.record_media(run.id, item, blob)
        with store.read() as conn:
            assert len(media.for_run(conn, run.id)) == 1
