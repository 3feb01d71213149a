"""`tympan probe fit|score|drift` on a real ASR recipe run: model rebuilt from its checkpoint,
real synthesized speech, results recorded as runs and shown by `tympan show`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_cli import assert_one_line_error, tympan_cli

import tympan

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

REPO = Path(__file__).resolve().parents[1]
FIT = ("--data", "split:valid,test", "--calibration", "0.65")
TINY = ["voices=6", "per_speaker=80", "epochs=1", "hidden=48", "layers=2", "n_boot=20",
        "audio_samples=0", "batch_size=16"]


def _train(store: Path, corpus: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "recipes.asr_ctc.train", f"store={store}",
                           f"corpus_dir={corpus}", *TINY, *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].split("(")[1].split(")")[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(store, run id, a second checkpoint's run id): the tiny recipe, trained twice."""
    root = tmp_path_factory.mktemp("probe-cli")
    store, corpus = root / "store", root / "corpus"
    first = _train(store, corpus)
    second = _train(store, corpus, "seed=1")
    return str(store), first, second


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Inputs of different lengths run one forward pass each: torch's thread pool only adds
    contention to such small passes on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cli(store: str, *args: str):
    return tympan_cli("--store", store, *args)


def test_fit_then_score_flags_noisy_speech_and_names_a_layer(trained) -> None:
    store, run_id, _ = trained
    # 104 calibration inputs: p-values reach 1/105, so alpha 0.01 can be reached.
    fitted = cli(store, "probe", "fit", run_id, *FIT)
    assert fitted.code == 0, fitted.stderr
    assert "160 inputs (split:valid,test)" in fitted.stdout and "104 held out" in fitted.stdout
    fit_run = tympan.find_runs(store=store, tags=["probe-fit"])[0]
    assert fit_run.parent_id == run_id and fit_run.config["probe"]["model_run"] == run_id
    assert "probe/profile.npz" in [a.path for a in fit_run.artifacts()]

    noisy = cli(store, "probe", "score", run_id, "--shift", "white:-5", "--limit", "12",
                "--alpha", "0.05", "--json")
    assert noisy.code == 0, noisy.stderr
    report = json.loads(noisy.stdout)
    assert report["label"] == "split:test + white:-5" and report["profile"] == fit_run.id
    assert len(report["inputs"]) == 12
    flagged = [r for r in report["inputs"] if r["flagged"]]
    assert len(flagged) >= 10  # -5 dB white noise is far from clean digits
    assert all(set(r["p_values"]) == set(report["layers"]) for r in report["inputs"])
    # Noise enters at the input: the z profile jumps at the first layer probed.
    named = [r["entry_layer"] for r in flagged]
    assert None not in named and max(set(named), key=named.count) == report["layers"][0]
    assert report["stages"] == [*report["layers"], "output"]
    assert all(set(r["z"]) == set(report["stages"]) for r in report["inputs"])
    assert set(report["inputs"][0]["outputs"]) == {"energy", "msp", "blank_ratio"}

    score_run = tympan.load_run(report["run"], store=store)
    assert score_run.parent_id == run_id and "probe-score" in score_run.tags
    assert score_run.summary["probe/flagged"].last == len(flagged)
    stored = json.loads(score_run.read_artifact("probe/anomaly/split_test_white_-5.json"))
    assert stored["inputs"] == report["inputs"]

    # The model run's probe data (what the web UI's probe page shows) gathers its probe runs.
    from tympan.records.probe import probe_data
    from tympan.records.record import get_run
    from tympan.server.views.run_page import run_page
    from tympan.track.stores import shared_store

    model_record = get_run(shared_store(store), run_id)
    gathered = probe_data(model_record)
    assert any(r["run"] == score_run.id and r["flagged"] == len(flagged)
               for r in gathered.anomaly)
    assert gathered.profile
    page = run_page(model_record)
    assert {fit_run.id, score_run.id} <= {c["id"] for c in page["children"]}
    assert page["probe"]["available"] and score_run.id in page["probe"]["runs"]

    shown = cli(store, "show", score_run.id)
    assert shown.code == 0, shown.stderr
    assert "probe: anomaly report" in shown.stdout
    assert f"{len(flagged)} of 12 inputs flagged" in shown.stdout


def test_score_prints_a_short_report(trained) -> None:
    store, run_id, _ = trained
    assert cli(store, "probe", "fit", run_id, *FIT).code == 0
    out = cli(store, "probe", "score", run_id, "--data", "split:valid", "--shift", "speed:1.5",
              "--limit", "6", "--show", "3")
    assert out.code == 0, out.stderr
    assert "split:valid + speed:1.5:" in out.stdout and "inputs flagged" in out.stdout
    assert out.stdout.count(".flac") == 3  # the 3 most anomalous inputs, by file


def test_drift_between_data_sets_and_checkpoints(trained) -> None:
    store, run_id, second = trained
    shifted = cli(store, "probe", "drift", run_id, "--b-shift", "white:0", "--limit", "20",
                  "--permutations", "200", "--json")
    assert shifted.code == 0, shifted.stderr
    report = json.loads(shifted.stdout)
    assert report["a"] == "split:test" and report["b"] == "split:test + white:0"
    assert all(row["drifted"] for row in report["layers"][:1])
    same = cli(store, "probe", "drift", run_id, "--b", "split:test", "--limit", "20",
               "--permutations", "200", "--json")
    assert not any(row["drifted"] for row in json.loads(same.stdout)["layers"])

    other = cli(store, "probe", "drift", run_id, "--checkpoint-b", second, "--limit", "20",
                "--permutations", "200")
    assert other.code == 0, other.stderr
    assert f"{run_id} on split:test" in other.stdout and "drifted" in other.stdout
    drift_runs = tympan.find_runs(store=store, tags=["probe-drift"])
    assert len(drift_runs) == 3 and all(r.parent_id == run_id for r in drift_runs)
    shown = cli(store, "show", drift_runs[0].id)
    assert "probe: drift" in shown.stdout


def test_bad_input_is_one_clear_line(trained, tmp_path: Path) -> None:
    store, run_id, _ = trained
    assert cli(store, "probe", "fit", run_id, *FIT).code == 0
    assert_one_line_error(cli(store, "probe", "score", run_id, "--alpha", "0.005"),
                          "alpha 0.005 is below 1/(n_cal + 1) = 0.009524", "199 calibration")
    assert_one_line_error(cli(store, "probe", "score", run_id, "--shift", "loud:3"),
                          "shift 'loud:3'", "white")
    assert_one_line_error(cli(store, "probe", "fit", run_id, "--data", str(tmp_path / "nope")),
                          "neither split:NAME nor an audio file")
    assert_one_line_error(cli(store, "probe", "fit", run_id, "--data", "split:dev"),
                          "unknown split 'dev'")
    assert_one_line_error(cli(store, "probe", "drift", run_id), "needs a second side")
    assert_one_line_error(cli(store, "probe", "fit", run_id, "--detector", "magic"), "magic")
    plain = tmp_path / "plain.py"
    plain.write_text("print('no probe here')\n")
    assert_one_line_error(cli(store, "probe", "fit", run_id, "--recipe", str(plain)),
                          "defines no probe_target()")
    # A run started from `python -c` names no recipe on its command line.
    code = f"import tympan; print(tympan.init(project='other', store={store!r}).id)"
    from_c = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert_one_line_error(cli(store, "probe", "fit", from_c), "cannot tell which recipe")


def test_score_a_folder_of_audio_files(trained, tmp_path: Path) -> None:
    from tympan.audio.io import load, save

    store, run_id, _ = trained
    record = tympan.load_run(run_id, store=store)
    corpus = Path(record.config["corpus_dir"])
    folder = tmp_path / "deployed"
    folder.mkdir()
    for i, path in enumerate(sorted(corpus.rglob("*.flac"))[:3]):
        wave, sr = load(path, mono=True)
        save(folder / f"clip{i}.wav", wave, sr)
    assert cli(store, "probe", "fit", run_id, *FIT).code == 0
    out = cli(store, "probe", "score", run_id, "--data", str(folder), "--json")
    assert out.code == 0, out.stderr
    assert [r["id"] for r in json.loads(out.stdout)["inputs"]] == [
        "clip0.wav", "clip1.wav", "clip2.wav"]


def test_the_scorer_of_a_stored_run_scores_waveforms(trained) -> None:
    """The serving guard's entry point: a run id in, verdicts on waveforms out."""
    import numpy as np

    from tympan.probe import Scorer
    from tympan.probe.target import load_target

    store, run_id, _ = trained
    assert cli(store, "probe", "fit", run_id, *FIT).code == 0
    scorer = Scorer.from_run(run_id, store=store, alpha=0.05)
    assert scorer.stages[-1] == "output" and scorer.profile.n_calibration == 104
    record = tympan.load_run(run_id, store=store)
    target = load_target(None, record)
    target.load_model(record)
    clean = [w for _, w in target.split(record, "test")[:6]]
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    odd = [np.zeros(16000, np.float32) + 1e-4 * rng.standard_normal(16000).astype(np.float32),
           (0.5 * np.sin(2 * np.pi * (100 * t + 3000 * t ** 2))).astype(np.float32)]
    verdicts = scorer.score(clean + odd)
    assert len(verdicts) == 8
    assert all(v.flagged and v.entry_layer in scorer.stages for v in verdicts[6:])
    assert min(v.score for v in verdicts[6:]) > max(v.score for v in verdicts[:6])
    assert all(v.p_value == 1 / 105 for v in verdicts[6:])


def test_fit_on_training_speech_and_calibrate_on_held_out_speech(trained) -> None:
    """The demo's set-up: every held-out clean input calibrates, so alpha 0.01 is reachable."""
    store, run_id, _ = trained
    fitted = cli(store, "probe", "fit", run_id, "--data", "split:train", "--limit", "120",
                 "--calibrate-on", "split:valid,test")
    assert fitted.code == 0, fitted.stderr
    assert "120 inputs (split:train); 160 of split:valid,test to calibrate" in fitted.stdout
    assert "smallest p-value 1/161 = 0.00621" in fitted.stdout
    fit_run = max(tympan.find_runs(store=store, tags=["probe-fit"]), key=lambda r: r.started_at)
    assert fit_run.config["probe"]["calibration"] == "split:valid,test"
    out = cli(store, "probe", "score", run_id, "--shift", "white:-5", "--limit", "6",
              "--show", "6")
    assert out.code == 0, out.stderr
    assert "6 of 6 inputs flagged at alpha = 0.01 (smallest p-value 1/161" in out.stdout
    assert "enters at" in out.stdout and any(c in out.stdout for c in "▁▂▃▄▅▆▇█")


def test_probe_works_from_any_folder_and_never_rebuilds_a_corpus(trained, tmp_path) -> None:
    """The run recorded its script (``-m recipes.asr_ctc.train``) and corpus relative to the
    folder it ran in: both are found from elsewhere, and a missing corpus is an error naming
    its path, not a new corpus synthesized here (issue 12, item 6)."""
    store, run_id, _ = trained
    assert cli(store, "probe", "fit", run_id, *FIT).code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "tympan.cli.app", "--store", store, "probe",
                           "score", run_id, "--limit", "2", "--alpha", "0.05", "--json"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["inputs"]) == 2
    assert list(elsewhere.iterdir()) == []  # nothing synthesized or written here

    from recipes.asr_ctc.train import AsrProbeTarget

    record = tympan.load_run(run_id, store=store)
    corpus = Path(record.config["corpus_dir"])

    class Relative:  # the same run as if it had recorded corpus_dir relative to its folder
        def __init__(self, corpus_dir: str) -> None:
            self.id = record.id
            self.config = {**record.config, "corpus_dir": corpus_dir}

        def environment(self) -> dict:
            return {"command": {"cwd": str(corpus.parent)}}

    target = AsrProbeTarget()
    target.load_model(record)
    assert len(target.split(Relative(corpus.name), "test")) == len(target.split(record, "test"))
    with pytest.raises(tympan.TympanError, match=f"not at {corpus.parent / 'no-such-corpus'}"):
        target.split(Relative("no-such-corpus"), "test")
    assert not (corpus.parent / "no-such-corpus").exists()
