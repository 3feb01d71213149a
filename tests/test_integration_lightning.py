"""Lightning: a small real model trains through ``TympanLogger`` (and the probe callback);
its metrics, hyperparameters and checkpoints are read back from the store."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import lightning.pytorch as pl  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import tympan  # noqa: E402
from tympan.integrations.lightning import TympanLogger, TympanProbe  # noqa: E402

# Lightning's own warnings about itself and about a toy setup (pytest turns warnings into
# errors): its pytree use that torch deprecates, and "few dataloader workers" hints.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
]


class TinyClassifier(pl.LightningModule):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val/loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(-1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/acc", (self.net(x).argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _data(n: int = 64, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()  # learnable
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _trainer(tmp_path, logger, **kwargs) -> pl.Trainer:
    options = {"max_epochs": 3, **kwargs}
    return pl.Trainer(default_root_dir=tmp_path, logger=logger, log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", devices=1, **options)


def test_a_lightning_training_is_recorded(tmp_path) -> None:
    store = str(tmp_path / "store")
    logger = TympanLogger(project="asr", name="tiny", config={"data": "toy"}, tags=["pl"],
                          store=store)
    checkpoints = pl.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=2,
                                               save_last=True)
    trainer = _trainer(tmp_path, logger, callbacks=[checkpoints, TympanProbe(every=2)])
    model = TinyClassifier()
    trainer.fit(model, _data(), _data(32, seed=1))
    run_id = logger.version
    assert logger.name == "asr" and logger.experiment.status == "finished"
    trainer.test(model, _data(32, seed=2))  # resumes the run for the test metrics

    record = tympan.load_run(run_id, store=store)
    assert (record.name, record.status, record.tags) == ("tiny", "finished", ["pl"])
    assert record.config["data"] == "toy"
    assert record.config["hidden"] == 16 and record.config["lr"] == 0.05  # save_hyperparameters
    loss = record.history("train/loss")
    assert len(loss) == 12 and loss.steps.tolist() == list(range(12))  # 3 epochs x 4 batches
    val = record.history("val/loss")
    assert val.steps.tolist() == [3, 7, 11] and val.values[-1] < val.values[0]
    assert record.summary["test/acc"].count == 1 and record.summary["test/acc"].last_step >= 11
    assert {"epoch", "val/acc"} <= set(record.summary)
    files = {a.path for a in record.artifacts()}
    stored = {p for p in files if p.startswith("checkpoints/")}
    assert "checkpoints/last.ckpt" in stored and len(stored) >= 3  # every epoch's, and last
    best = record.config["checkpoint"]
    assert best["monitor"] == "val/loss" and best["best"] in stored
    state = torch.load(__import__("io").BytesIO(record.read_artifact(best["best"])),
                       weights_only=False)
    assert state["hyper_parameters"]["hidden"] == 16
    assert {"probe/stats.json", "probe/events.json"} <= files  # the probe callback's snapshot
    assert any(k.startswith("probe/") and k.endswith("/mean") for k in record.summary)


def test_only_the_end_checkpoints_or_none(tmp_path) -> None:
    store = str(tmp_path / "store")
    for mode, expected in (("end", {"checkpoints/last.ckpt"}), (False, set())):
        logger = TympanLogger(project="asr", store=store, log_checkpoints=mode)
        trainer = _trainer(tmp_path / str(mode), logger, max_epochs=2, callbacks=[
            pl.callbacks.ModelCheckpoint(monitor="val/loss", save_top_k=1, save_last=True)])
        trainer.fit(TinyClassifier(), _data(), _data(32, seed=1))
        record = tympan.load_run(logger.version, store=store)
        stored = {a.path for a in record.artifacts() if a.path.startswith("checkpoints/")}
        if mode == "end":
            assert expected <= stored and len(stored) == 2  # the best and the last
        else:
            assert stored == expected
    with pytest.raises(tympan.errors.InvalidInputError, match="log_checkpoints"):
        TympanLogger(project="asr", store=store, log_checkpoints="sometimes")


def test_logging_into_a_run_of_your_own(tmp_path) -> None:
    store = str(tmp_path / "store")
    with tympan.init(project="asr", store=store) as run:
        logger = TympanLogger(run=run, prefix="stage1/", log_checkpoints=False)
        _trainer(tmp_path, logger, max_epochs=1).fit(TinyClassifier(), _data())
        assert run.status == "running"  # the logger leaves your run open
        run.log({"after": 1.0})
    record = tympan.load_run(run.id, store=store)
    assert "stage1/train/loss" in record.summary and "after" in record.summary
