"""No silent no-ops (issue 16, item 4): what a W&B user writes is stored, or refused aloud."""

from __future__ import annotations

import copy
import pickle

import pytest

import tympan
from tympan.errors import InvalidInputError, RunStateError, TympanError


@pytest.fixture
def store(tmp_path) -> str:
    return str(tmp_path / "store")


def start(store: str, **kwargs):
    return tympan.init(project="asr", store=store, system_metrics=False, console=False,
                       **kwargs)


def stored_config(store: str, run_id: str) -> dict:
    return tympan.load_run(run_id, store=store).config


def test_config_assignments_at_any_depth_are_stored(store: str) -> None:
    run = start(store, config={"lr": 1e-3, "model": {"encoder": "gru", "layers": 2}})
    run.config["lr"] = 3e-4
    run.config["model"]["layers"] = 4
    run.config.update({"batch": 16}, epochs=3)
    run.config |= {"warmup": 100}
    run.config.setdefault("seed", 7)
    del run.config["warmup"]
    assert run.config.pop("epochs") == 3
    assert isinstance(run.config, dict)
    run.finish()
    assert stored_config(store, run.id) == {
        "lr": 3e-4, "model": {"encoder": "gru", "layers": 4}, "batch": 16, "seed": 7}


def test_config_lists_and_dicts_inside_them_are_stored(store: str) -> None:
    run = start(store, config={"layers": [{"dim": 256}, {"dim": 256}], "augment": ["speed"]})
    run.config["layers"][0]["dim"] = 512  # a dict inside a list
    run.config["layers"].append({"dim": 128})
    run.config["layers"][1] = {"dim": 64, "act": "relu"}
    run.config["layers"][-1]["act"] = "gelu"  # a dict the list took in keeps saving
    run.config["augment"] += ["noise", "reverb"]
    run.config["augment"].remove("speed")
    run.config["augment"].insert(0, "clip")
    assert run.config["augment"].pop() == "reverb"
    run.config["augment"].sort()
    with pytest.raises(InvalidInputError, match="cannot be stored as JSON"):
        run.config["augment"].append(object())
    with pytest.raises(ValueError):
        run.config["augment"].remove("absent")
    for copied in (copy.deepcopy(run.config), pickle.loads(pickle.dumps(run.config))):
        assert type(copied["layers"]) is list and type(copied["layers"][0]) is dict
    expected = {"layers": [{"dim": 512}, {"dim": 64, "act": "relu"},
                           {"dim": 128, "act": "gelu"}], "augment": ["clip", "noise"]}
    assert run.config == expected
    run.finish()
    assert stored_config(store, run.id) == expected
    with pytest.raises(RunStateError, match="has finished"):
        run.config["augment"].append("late")
    assert run.config["augment"] == ["clip", "noise"]


def test_config_replaced_whole_is_stored_and_copies_are_plain_dicts(store: str) -> None:
    run = start(store, config={"lr": 1e-3})
    run.config = {"lr": 2e-3, "model": {"encoder": "conv"}}
    for copied in (copy.deepcopy(run.config), pickle.loads(pickle.dumps(run.config)),
                   copy.copy(run.config)):
        assert type(copied) is dict and copied == {"lr": 2e-3, "model": {"encoder": "conv"}}
    copy.deepcopy(run.config)["lr"] = 9.0  # a copy is detached: the run keeps its value
    run.finish()
    assert stored_config(store, run.id) == {"lr": 2e-3, "model": {"encoder": "conv"}}


def test_config_change_after_finish_or_with_a_bad_value_raises_and_changes_nothing(
    store: str,
) -> None:
    run = start(store, config={"lr": 1e-3, "model": {"encoder": "gru"}})
    with pytest.raises(InvalidInputError, match="cannot be stored as JSON"):
        run.config["optimizer"] = object()
    with pytest.raises(InvalidInputError, match="keys must be str"):
        run.config[3] = "x"
    assert run.config == {"lr": 1e-3, "model": {"encoder": "gru"}}
    run.finish()
    for change in (lambda: run.config.__setitem__("lr", 1.0),
                   lambda: run.config["model"].update(encoder="conv"),
                   lambda: run.config.pop("lr"), run.config.clear):
        with pytest.raises(RunStateError, match="has finished"):
            change()
    assert run.config == {"lr": 1e-3, "model": {"encoder": "gru"}}
    assert stored_config(store, run.id) == {"lr": 1e-3, "model": {"encoder": "gru"}}


def test_summary_assignment_logs_the_value(store: str) -> None:
    run = start(store)
    run.log({"val/wer": 0.3}, step=10)
    run.summary["best/wer"] = 0.25
    summary = run.summary
    summary.update({"best/cer": 0.1})
    assert summary["best/cer"].last == 0.1
    assert run.summary["best/wer"].last == 0.25 and run.summary["best/wer"].max_step == 10
    with pytest.raises(InvalidInputError, match="cannot be removed"):
        del run.summary["val/wer"]
    with pytest.raises(TympanError, match="must be a number"):
        run.summary["best/name"] = "gru"
    run.finish()
    stored = tympan.load_run(run.id, store=store).summary
    assert stored["best/wer"].last == 0.25 and stored["best/cer"].last == 0.1
    with pytest.raises(RunStateError):
        run.summary["late"] = 1.0


def test_resume_adds_new_config_keys_and_refuses_changes(store: str) -> None:
    run = start(store, config={"lr": 1e-3, "model": {"encoder": "gru"}}, tags=["a"])
    run.finish()
    with pytest.raises(RunStateError, match=r"config values lr=0\.1 \(the run's is 0\.001\)"):
        tympan.init(resume=run.id, store=store, config={"lr": 0.1})
    with pytest.raises(RunStateError, match="model.encoder='conv'"):
        tympan.init(resume=run.id, store=store, config={"model": {"encoder": "conv"}})
    with pytest.raises(RunStateError, match="project='tts'"):
        tympan.init(resume=run.id, store=store, project="tts")
    with pytest.raises(RunStateError, match="tags"):
        tympan.init(resume=run.id, store=store, tags=["b"])
    with pytest.raises(RunStateError, match="note"):
        tympan.init(resume=run.id, store=store, notes="why")
    resumed = tympan.init(resume=run.id, store=store, project="asr", tags=["a"],
                          config={"lr": 1e-3, "model": {"layers": 3}, "epochs": 5},
                          system_metrics=False, console=False)
    resumed.finish()
    assert stored_config(store, run.id) == {
        "lr": 1e-3, "model": {"encoder": "gru", "layers": 3}, "epochs": 5}


def test_finish_without_a_run_does_nothing() -> None:
    assert tympan.active_run() is None
    tympan.finish()
    tympan.finish()


def test_notes_is_accepted_as_wandb_spells_it(store: str) -> None:
    with start(store, notes="baseline, fixed seed") as run:
        pass
    assert tympan.load_run(run.id, store=store).note == "baseline, fixed seed"
    with pytest.raises(InvalidInputError, match="note= and notes="):
        start(store, note="one", notes="another")


def test_find_runs_tags_as_a_string_is_one_tag(store: str) -> None:
    with start(store, tags=["mfcc"]) as tagged:
        pass
    with start(store, tags=["m", "f"]):
        pass
    assert [r.id for r in tympan.find_runs(store, tags="mfcc")] == [tagged.id]
