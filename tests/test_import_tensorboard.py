"""TensorBoard: event files written by the real ``torch.utils.tensorboard`` come into tympan
whole (no down-sampling), once (importing again adds only new points), and tympan's own
``SummaryWriter`` records a small training run that reads back the same as its event files."""

from __future__ import annotations

import io

import numpy as np
import pytest

import tympan
from tympan.cli.app import main
from tympan.errors import InvalidInputError
from tympan.integrations.importers.tensorboard import import_logdir
from tympan.track.stores import shared_transport

pytest.importorskip("tensorboard")
torch = pytest.importorskip("torch")
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402

STEPS = 1500  # TensorBoard's default keeps a sample of 1,000 scalars per tag


def _write_events(logdir: str, start: int, stop: int) -> None:
    with TorchWriter(logdir) as writer:
        for step in range(start, stop):
            writer.add_scalar("loss/train", 1.0 / (step + 1), step)
        if start == 0:
            tone = np.sin(np.arange(1600) * 2 * np.pi * 440 / 16000) * 0.5
            writer.add_audio("val/sample", torch.tensor(tone[None, :]), 3, sample_rate=16000)
            writer.add_image("spec", np.linspace(0, 1, 3 * 8 * 10).reshape(3, 8, 10), 4)
            writer.add_text("hyp", "the cat sat", 5)
            writer.add_histogram("weights", np.arange(100.0), 6, bins=4)
            writer.add_scalars("acc", {"a": 0.5, "b": 0.75}, 7)
            writer.add_hparams({"lr": 0.1, "encoder": "gru", "flag": True}, {"hp/wer": 0.25})


def _records(store: str, project: str) -> dict[str, tympan.RunRecord]:
    return {r.name: r for r in tympan.find_runs(project=project, store=store)}


def test_import_is_whole_and_idempotent(tmp_path) -> None:
    logdir, store = str(tmp_path / "tb" / "exp"), str(tmp_path / "store")
    _write_events(logdir, 0, STEPS)
    transport = shared_transport(store)
    first = import_logdir(transport, tmp_path / "tb", "tb")
    assert [r.created for r in first] == [True] * len(first)

    runs = _records(store, "tb")
    main = runs["exp"]
    loss = main.history("loss/train")
    assert len(loss) == STEPS  # every point, none sampled away
    np.testing.assert_array_equal(loss.steps, np.arange(STEPS))
    np.testing.assert_allclose(loss.values, 1.0 / (np.arange(STEPS) + 1), rtol=1e-6)
    assert loss.times[0] > 1e9 and np.all(np.diff(loss.times) >= 0)  # the events' wall times

    samples, rate, _ = main.read_audio("val/sample", step=3)
    assert rate == 16000 and samples.shape == (1600,)
    np.testing.assert_allclose(samples, np.sin(np.arange(1600) * 2 * np.pi * 440 / 16000) * 0.5,
                               atol=1e-4)
    png = main.read_image("spec", step=4)
    assert png.startswith(b"\x89PNG") and main.images()[0].info["width"] == 10
    assert main.read_table("hyp", step=5).rows == [["the cat sat"]]
    histogram = main.read_table("weights", step=6)
    assert histogram.columns == ["left", "right", "count"]
    assert sum(row[2] for row in histogram.rows) == 100
    assert main.note == f"imported from tensorboard:{tmp_path / 'tb' / 'exp'}"
    assert main.status == "finished" and main.ended_at >= loss.times[-1]

    # add_scalars and add_hparams write run directories inside the run's: its children.
    children = {name: r for name, r in runs.items() if name != "exp"}
    assert set(children) >= {"exp/acc_a", "exp/acc_b"}
    assert all(r.parent_id == main.id for r in children.values())
    assert runs["exp/acc_b"].summary["acc"].last == 0.75
    (session,) = [r for r in children.values() if r.config]
    assert session.config == {"lr": 0.1, "encoder": "gru", "flag": True}
    assert session.summary["hp/wer"].last == 0.25

    again = import_logdir(transport, tmp_path / "tb", "tb")
    assert [(r.created, r.points) for r in again] == [(False, 0)] * len(first)
    assert len(_records(store, "tb")) == len(runs)
    assert len(main.audio_samples()) == 1 and len(main.images()) == 1

    _write_events(logdir, STEPS, STEPS + 20)  # training went on: a new event file
    more = {r.name: r for r in import_logdir(transport, tmp_path / "tb", "tb")}
    assert more["exp"].points == 20 and not more["exp"].created
    loss = _records(store, "tb")["exp"].history("loss/train")
    np.testing.assert_array_equal(loss.steps, np.arange(STEPS + 20))
    assert _records(store, "tb")["exp"].status == "finished"


def test_cli_import_and_bad_input(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    logdir, store = tmp_path / "tb", str(tmp_path / "store")
    with TorchWriter(str(logdir / "a b")) as writer:
        writer.add_scalar("val loss [dB]", 1.5, 0)
    cli = ["--store", store, "import", "tensorboard"]
    assert main([*cli, str(logdir), "--project", "p"]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "'a b'" in out
    assert tympan.find_runs(project="p", store=store)[0].summary["val_loss__dB_"].last == 1.5
    assert main([*cli, str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.startswith("error: TensorBoard log directory")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no TensorBoard event files"):
        import_logdir(shared_transport(store), tmp_path / "empty", "p")


def test_summary_writer_trains_a_model_into_tympan_and_tensorboard(tmp_path) -> None:
    from tympan.integrations.tensorboard import SummaryWriter

    store, logdir = str(tmp_path / "store"), tmp_path / "tb" / "linear"
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with SummaryWriter(str(logdir), project="shim", store=store, tensorboard=True) as writer:
        for step in range(30):
            loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            writer.add_scalar("train/loss", loss, step)
            writer.add_scalars("grad", {"w": model.weight.grad.norm(), "b": model.bias.grad.norm()},
                               step)
        writer.add_histogram("weight", model.weight, 29)
        writer.add_audio("sample", torch.zeros(1, 800).uniform_(-0.5, 0.5), 29, sample_rate=8000)
        writer.add_image("weights", model.weight.detach().repeat(3, 4, 1).clamp(0, 1), 29)
        writer.add_text("note", "linear regression", 29)
        writer.add_hparams({"lr": 0.1, "opt": "sgd"}, {"final/loss": loss.item()})
        # TensorBoard-only: goes to the event files (and is reported skipped on import)
        writer.add_pr_curve("pr", np.array([0, 1, 1]), np.array([0.2, 0.9, 0.6]), 29)
        run_id = writer.run.id
    record = tympan.load_run(run_id, store=store)
    assert record.status == "finished" and record.name == "linear"
    assert record.config == {"lr": 0.1, "opt": "sgd"}
    losses = record.history("train/loss")
    assert len(losses) == 30 and losses.values[-1] < losses.values[0] / 10  # it trained
    assert set(record.summary) >= {"grad/w", "grad/b", "final/loss"}
    assert record.read_table("note").rows == [["linear regression"]]
    assert record.read_table("weight").columns == ["left", "right", "count"]
    assert record.read_audio("sample")[1] == 8000
    assert record.read_image("weights").startswith(b"\x89PNG")

    # The event files it wrote alongside hold the same series.
    (from_events, *_) = import_logdir(shared_transport(store), logdir, "from-events")
    assert from_events.skipped == {"pr_curves (pr)": 1}
    imported = _records(store, "from-events")["linear"]
    np.testing.assert_allclose(imported.history("train/loss").values, losses.values, rtol=1e-6)

    plain = SummaryWriter(project="shim", store=store)
    with pytest.raises(InvalidInputError, match="add_embedding has no tympan record"):
        plain.add_embedding(torch.zeros(2, 2))
    plain.close()


def test_tensorboard_image_bytes_decode(tmp_path) -> None:
    """A JPEG image summary (as tf.summary writes for some images) is converted to PNG."""
    image = pytest.importorskip("PIL.Image")
    from tympan.integrations.importers.writing import image_media

    buffer = io.BytesIO()
    image.new("RGB", (6, 4), (200, 10, 10)).save(buffer, format="JPEG")
    media = image_media("photo", 0, buffer.getvalue(), None, 0.0)
    assert media.data.startswith(b"\x89PNG") and media.item.info["width"] == 6
