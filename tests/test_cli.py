"""The `tympan` CLI on real SQLite stores written with the real tracking API."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tympan
from tympan.cli.app import app, main
from tympan.store import environments, open_store, runs
from tympan.store.versioning import HEAD
from tympan.track.environment import environment_digest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def tympan_cli(*args: str, env: dict[str, str | None] | None = None) -> Outcome:
    """Run the CLI in this process exactly as the console script does."""
    runner = CliRunner()
    with runner.isolation(env={"COLUMNS": "200", "TYMPAN_STORE": None, **(env or {})}) as (
        out, err, _
    ):
        code = main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


def assert_one_line_error(result: Outcome, *fragments: str) -> None:
    assert result.code == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@dataclass
class Lab:
    store: str
    gru: str  # asr, finished, loss last 0.5, tags baseline+gru
    lstm: str  # asr, finished, loss last 0.3, tag lstm
    tts: str  # tts, failed with a traceback, no loss metric, tag baseline


@contextmanager
def tympan_settings(**values: str) -> Iterator[None]:
    """For module-scoped fixtures (set up outside conftest's per-test isolation): no TYMPAN_*
    setting of the developer's leaks in; ``values`` are set instead."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("TYMPAN_")]:
            patch.delenv(name)
        patch.setenv("TYMPAN_SYSTEM_METRICS", "0")  # no background keys or artifacts
        patch.setenv("TYMPAN_CONSOLE", "0")
        for name, value in values.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    # The environment is captured for real here, so `show` has one to render.
    with tympan_settings(TYMPAN_CAPTURE_ENV="1"):
        return _make_lab(str(tmp_path_factory.mktemp("lab") / "store"))


def _make_lab(store: str) -> Lab:
    gru = tympan.init(project="asr", name="gru-base", store=store, tags=["baseline", "gru"],
                      config={"model": {"encoder": "gru", "layers": 2}, "lr": 0.001})
    for i in range(5):
        gru.log({"loss": 1.0 - i * 0.125, "wer": 0.5 - i * 0.05}, step=i)
    gru.log_artifact(b"checkpoint bytes", name="ckpt/last.txt")
    gru.log_audio("val/sample", np.zeros(1600, dtype=np.float32), 16000, caption="silence")
    gru.log_image("val/attention", np.eye(3, 5), step=4, caption="diagonal")
    gru.log_table("val/errors", [["u1", 0.5]], columns=["utt", "wer"], step=4)
    gru.finish()
    lstm = tympan.init(project="asr", name="lstm-big", store=store, tags=["lstm"],
                       config={"model": {"encoder": "lstm", "layers": 4}, "lr": 0.01})
    for i in range(3):
        lstm.log({"loss": 0.9 - i * 0.3, "wer": 0.4}, step=i)
    lstm.finish()
    tts = tympan.init(project="tts", name="tacotron-2", store=store, tags=["baseline"],
                      config={"model": {"encoder": "gru"}})
    tts.log({"mel": 2.0})
    try:
        raise ValueError("boom in the decoder")
    except ValueError as exc:
        tts.fail(exc)
    return Lab(store, gru.id, lstm.id, tts.id)


def listed_ids(lab: Lab, *args: str) -> list[str]:
    result = tympan_cli("--store", lab.store, "runs", *args, "--json")
    assert result.code == 0, result
    return [r["id"] for r in json.loads(result.stdout)]


# --- runs --------------------------------------------------------------------------------


def test_runs_table_lists_every_run_with_metric_columns(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "runs")
    assert result.code == 0, result
    for run_id in (lab.gru, lab.lstm, lab.tts):
        assert run_id in result.stdout
    header = result.stdout.splitlines()[0].split()
    assert header[:7] == ["id", "name", "project", "status", "started", "duration", "tags"]
    assert {"loss", "wer", "mel"} <= set(header)
    assert "failed" in result.stdout and "baseline, gru" in result.stdout


def test_runs_filters_by_project_status_and_tag(lab: Lab) -> None:
    assert listed_ids(lab, "--project", "tts") == [lab.tts]
    assert listed_ids(lab, "--status", "failed") == [lab.tts]
    assert set(listed_ids(lab, "--status", "finished", "--status", "failed")) == {
        lab.gru, lab.lstm, lab.tts}
    assert set(listed_ids(lab, "--tag", "baseline")) == {lab.gru, lab.tts}
    assert listed_ids(lab, "--tag", "baseline", "--tag", "gru") == [lab.gru]


def test_runs_where_matches_nested_keys_and_numbers(lab: Lab) -> None:
    assert set(listed_ids(lab, "--where", "model.encoder=gru")) == {lab.gru, lab.tts}
    assert listed_ids(lab, "--where", "model.layers=4") == [lab.lstm]
    assert listed_ids(lab, "--where", "lr=1e-3") == [lab.gru]  # numbers compare as numbers
    assert listed_ids(lab, "-w", "model.encoder=gru", "-w", "model.layers=2") == [lab.gru]


def test_runs_where_that_does_not_read_is_a_one_line_error(lab: Lab) -> None:
    assert_one_line_error(tympan_cli("--store", lab.store, "runs", "--where", "encoder gru"),
                          "where 'encoder gru'", "expected an operator")


def test_runs_unknown_status_or_project_is_a_one_line_error(lab: Lab) -> None:
    assert_one_line_error(tympan_cli("--store", lab.store, "runs", "--status", "done"),
                          "unknown status 'done'")
    assert_one_line_error(tympan_cli("--store", lab.store, "runs", "--project", "vad"),
                          "no project 'vad'", "asr")


def test_runs_sort_by_metric_puts_runs_without_it_last(lab: Lab) -> None:
    assert listed_ids(lab, "--sort", "loss") == [lab.lstm, lab.gru, lab.tts]
    assert listed_ids(lab, "--sort", "loss", "--desc") == [lab.gru, lab.lstm, lab.tts]
    assert listed_ids(lab, "--sort", "loss.max", "--desc") == [lab.gru, lab.lstm, lab.tts]
    assert listed_ids(lab, "--sort", "loss", "--desc", "--limit", "1") == [lab.gru]
    table = tympan_cli("--store", lab.store, "runs", "--sort", "wer.min", "--desc")
    lines = table.stdout.splitlines()
    assert "wer.min" in lines[0].split()
    order = [next(i for i, line in enumerate(lines) if run_id in line)
             for run_id in (lab.lstm, lab.gru, lab.tts)]
    assert order == sorted(order)  # lstm min wer 0.4 > gru min wer 0.3


def test_runs_columns_picks_metric_columns(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "runs", "--project", "asr",
                        "--columns", "wer, loss.min")
    header = result.stdout.splitlines()[0].split()
    assert header[-2:] == ["wer", "loss.min"]
    assert "project" not in header and "mel" not in header
    gru_line = next(line for line in result.stdout.splitlines() if lab.gru in line)
    assert gru_line.split()[-2:] == ["0.3", "0.5"]


def test_runs_with_no_match_says_so(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "runs", "--tag", "nothing-has-this")
    assert result.code == 0 and result.stdout.strip() == "no runs match"
    result = tympan_cli("--store", lab.store, "runs", "--tag", "nothing-has-this", "--json")
    assert result.code == 0 and json.loads(result.stdout) == []


def test_runs_json_has_fields_config_and_summary(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "runs", "--project", "asr", "--sort", "loss",
                        "--json")
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["lstm-big", "gru-base"]
    assert rows[1]["config"] == {"model": {"encoder": "gru", "layers": 2}, "lr": 0.001}
    assert rows[1]["summary"]["loss"]["last"] == pytest.approx(0.5)
    assert rows[1]["summary"]["loss"]["count"] == 5


def test_store_comes_from_the_environment_variable(lab: Lab) -> None:
    result = tympan_cli("runs", "--json", env={"TYMPAN_STORE": lab.store})
    assert result.code == 0 and len(json.loads(result.stdout)) == 3


# --- show --------------------------------------------------------------------------------


def test_show_renders_every_section(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "show", lab.gru)
    assert result.code == 0, result
    out = result.stdout
    for expected in ("gru-base", "asr", "finished", "baseline, gru", "model.encoder", "gru",
                     "model.layers", "lr", "0.001", "environment", "python", "packages",
                     "ckpt/last.txt", "16 B", "text/plain", "val/sample", "16000 Hz",
                     "silence", "0.10s", "val/attention", "5x3 L", "diagonal", "val/errors",
                     "utt, wer"):
        assert expected in out, expected
    loss_row = next(line for line in out.splitlines() if " loss " in line)
    assert "0.5 (step 4)" in loss_row and "1 (step 0)" in loss_row
    assert "─ error ─" not in out  # no error panel for a finished run


def test_show_of_a_failed_run_shows_its_traceback(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "show", "tacotron-2")  # by name
    assert result.code == 0, result
    assert "failed" in result.stdout
    assert "Traceback" in result.stdout and "ValueError: boom in the decoder" in result.stdout


def test_show_accepts_an_id_prefix_and_prints_json(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "show", lab.gru[:6], "--json")
    doc = json.loads(result.stdout)
    assert doc["run"]["id"] == lab.gru
    assert doc["summary"]["wer"]["min"] == pytest.approx(0.3)
    assert {"path": "ckpt/last.txt", "size": 16, "media_type": "text/plain"}.items() <= next(
        a for a in doc["artifacts"] if a["path"] == "ckpt/last.txt").items()
    assert doc["audio_samples"][0]["sample_rate"] == 16000
    assert {"key": "val/attention", "step": 4, "width": 5, "height": 3}.items() <= doc[
        "images"][0].items()
    assert doc["tables"][0]["columns"] == ["utt", "wer"] and doc["tables"][0]["rows"] == 1
    assert doc["environment"]["python"]["version"]


def test_show_unknown_run_is_a_one_line_error(lab: Lab) -> None:
    assert_one_line_error(tympan_cli("--store", lab.store, "show", "zzzzzzzz"),
                          "no run 'zzzzzzzz'", "tympan runs")


def test_an_ambiguous_id_prefix_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TYMPAN_CAPTURE_ENV", "0")
    store = str(tmp_path / "s")
    by_first: dict[str, str] = {}
    for _ in range(40):  # 36 possible first characters: two runs must share one
        new = tympan.init(project="p", store=store)
        new.finish()
        if new.id[0] in by_first:
            break
        by_first[new.id[0]] = new.id
    assert_one_line_error(tympan_cli("--store", store, "show", new.id[0]),
                          "ambiguous", new.id, by_first[new.id[0]])


# --- diff --------------------------------------------------------------------------------


def test_diff_shows_changed_config_and_metric_deltas(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "diff", lab.gru, lab.lstm)
    assert result.code == 0, result
    encoder = next(line for line in result.stdout.splitlines() if "model.encoder" in line)
    assert encoder.split() == ["model.encoder", "gru", "lstm"]
    layers = next(line for line in result.stdout.splitlines() if "model.layers" in line)
    assert layers.split() == ["model.layers", "2", "4"]
    loss_last = next(line for line in result.stdout.splitlines() if line.split()[:2] == [
        "loss", "last"])
    assert loss_last.split()[2:] == ["0.5", "0.3", "-0.2", "-40.00%"]
    assert "environment: identical" in result.stdout


def test_diff_json(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "diff", "gru-base", "tacotron-2", "--json")
    doc = json.loads(result.stdout)
    assert doc["a_id"] == lab.gru and doc["b_id"] == lab.tts
    assert doc["config"]["only_in_a"] == {"model.layers": 2, "lr": 0.001}
    assert doc["config"]["unchanged"] == 1
    assert doc["metrics"]["only_in_a"] == ["loss", "wer"]
    assert doc["metrics"]["only_in_b"] == ["mel"]


def _environment(torch: str, commit: str) -> dict:
    return {
        "git": {"commit": commit, "branch": "main", "dirty": False, "diff": "", "untracked": []},
        "python": {"version": "3.11.9"},
        "packages": {"numpy": "1.26.4", "torch": torch},
        "os": {"system": "Linux", "release": "6.1", "machine": "x86_64"},
        "cpu": {"model": "EPYC", "count": 16},
        "gpu": [{"name": "H100"}],
        "command": {"argv": ["train.py", "--lr", "0.1"]},
        "env_vars": {},
    }


def test_diff_shows_a_changed_package_version(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TYMPAN_CAPTURE_ENV", "0")
    where = str(tmp_path / "s")
    # Names with "-": a name like "b" would also be read as an id prefix (and ids win).
    a = tympan.init(project="p", name="run-a", store=where, config={"x": 1})
    a.finish()
    b = tympan.init(project="p", name="run-b", store=where, config={"x": 2})
    b.finish()
    store = open_store(where)  # attach crafted environments the way start.py records one
    try:
        with store.write() as conn:
            for run_id, env in ((a.id, _environment("2.1.0", "aaa111")),
                                (b.id, _environment("2.2.0", "bbb222"))):
                env_id = environments.intern(conn, environment_digest(env), env, time.time())
                runs.set_fields(conn, run_id, env_id=env_id)
    finally:
        store.close()
    result = tympan_cli("--store", where, "diff", "run-a", "run-b")
    assert result.code == 0, result
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["torch", "2.1.0", "2.2.0"] in lines
    assert ["git.commit", "aaa111", "bbb222"] in lines
    assert ["x", "1", "2"] in lines
    assert not any(line and line[0] == "numpy" for line in lines)
    doc = json.loads(tympan_cli("--store", where, "diff", "run-a", "run-b", "--json").stdout)
    assert doc["environment"]["packages_changed"] == [
        {"key": "torch", "a": "2.1.0", "b": "2.2.0"}]


# --- export ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    store = str(tmp_path_factory.mktemp("odd") / "store")
    with tympan_settings(TYMPAN_CAPTURE_ENV="0"):
        r = tympan.init(project="p", store=store)
        values = [0.1, float("nan"), float("inf"), float("-inf"), 1e-300, 3.0]
        for step, value in zip([5, 1, 2, 9, 3, 4], values, strict=True):  # logging order
            r.log({"loss": value, "lr": 0.5}, step=step)
        r.finish()
    return store, r.id


def _same(a: list[float], b: list[float]) -> bool:
    return np.array_equal(np.array(a), np.array(b), equal_nan=True)


def test_export_csv_round_trips_every_point(odd_run: tuple[str, str]) -> None:
    store, run_id = odd_run
    result = tympan_cli("--store", store, "export", run_id, "--format", "csv")
    assert result.code == 0, result
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.splitlines()[0] == "key,step,time,value"
    loss = [r for r in rows if r["key"] == "loss"]
    history = tympan.load_run(run_id, store=store).history("loss")
    assert [int(r["step"]) for r in loss] == history.steps.tolist() == [5, 1, 2, 9, 3, 4]
    assert _same([float(r["value"]) for r in loss], history.values.tolist())
    assert [float(r["time"]) for r in loss] == history.times.tolist()
    assert [r["value"] for r in loss][1:4] == ["nan", "inf", "-inf"]
    assert len(rows) == 12


def test_export_json_is_standard_and_round_trips(odd_run: tuple[str, str], tmp_path) -> None:
    store, run_id = odd_run
    target = tmp_path / "run.json"
    result = tympan_cli("--store", store, "export", run_id, "-f", "json", "-o", str(target))
    assert result.code == 0 and result.stdout == "" and str(target) in result.stderr

    def no_constants(name: str) -> float:
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(target.read_text(), parse_constant=no_constants)
    assert doc["run"]["id"] == run_id and doc["run"]["status"] == "finished"
    loss = doc["metrics"]["loss"]
    assert loss["values"][1:4] == ["NaN", "Infinity", "-Infinity"]
    history = tympan.load_run(run_id, store=store).history("loss")
    assert _same([float(v) for v in loss["values"]], history.values.tolist())
    assert loss["steps"] == history.steps.tolist()
    assert doc["summary"]["loss"]["nan_count"] == 1
    assert doc["summary"]["loss"]["inf_count"] == 2


def test_export_needs_a_known_format(odd_run: tuple[str, str]) -> None:
    store, run_id = odd_run
    result = tympan_cli("--store", store, "export", run_id, "--format", "xml")
    assert result.code == 2 and "xml" in result.stderr and "Traceback" not in result.stderr


def test_export_to_an_unwritable_place_is_a_one_line_error(odd_run, tmp_path: Path) -> None:
    store, run_id = odd_run
    target = tmp_path / "missing-dir" / "x.csv"
    assert_one_line_error(
        tympan_cli("--store", store, "export", run_id, "-f", "csv", "-o", str(target)),
        "cannot write",
    )


# --- db ----------------------------------------------------------------------------------


def test_db_upgrade_creates_a_store_and_current_reports_it(tmp_path: Path) -> None:
    where = str(tmp_path / "fresh")
    assert_one_line_error(tympan_cli("--store", where, "db", "current"), "no tympan store")
    created = tympan_cli("--store", where, "db", "upgrade")
    assert created.code == 0, created
    assert created.stdout.startswith(f"schema revision none -> {HEAD}")
    current = tympan_cli("--store", where, "db", "current")
    assert current.code == 0, current
    assert f"store schema revision: {HEAD}" in current.stdout
    assert f"this tympan expects: {HEAD} (up to date)" in current.stdout
    assert str(tmp_path / "fresh" / "tympan.db") in current.stdout
    again = tympan_cli("--store", where, "db", "upgrade")
    assert again.stdout.startswith(f"schema revision {HEAD} -> {HEAD}")
    assert tympan_cli("--store", where, "runs").stdout.strip() == "no runs match"


def test_a_store_from_a_newer_tympan_is_reported_not_crashed_on(tmp_path: Path) -> None:
    where = tmp_path / "s"
    assert tympan_cli("--store", str(where), "db", "upgrade").code == 0
    with sqlite3.connect(where / "tympan.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    current = tympan_cli("--store", str(where), "db", "current")
    assert current.code == 0 and "store schema revision: 9999" in current.stdout
    assert "tympan db upgrade" in current.stdout
    assert_one_line_error(tympan_cli("--store", str(where), "db", "upgrade"), "9999", "newer")
    assert_one_line_error(tympan_cli("--store", str(where), "runs"), "9999")


# --- errors, version, help ---------------------------------------------------------------


def test_store_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(tympan_cli("--store", "mysql://x", "runs"), "mysql://x")
    assert_one_line_error(tympan_cli("--store", str(tmp_path / "nothing"), "runs"),
                          "no tympan store")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "tympan.db").write_bytes(os.urandom(4096))
    assert_one_line_error(tympan_cli("--store", str(corrupt), "show", "abc"),
                          "not a tympan store")


def test_usage_errors_exit_2_with_clicks_message(lab: Lab) -> None:
    result = tympan_cli("--store", lab.store, "runs", "--no-such-option")
    assert result.code == 2 and "No such option" in result.stderr
    result = tympan_cli("--store", lab.store, "show")
    assert result.code == 2 and "Missing argument 'RUN'" in result.stderr


def test_version() -> None:
    result = tympan_cli("--version")
    assert result.code == 0 and result.stdout.strip() == f"tympan {tympan.__version__}"


def test_the_typer_app_itself_has_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("runs", "show", "diff", "export", "db", "--store", "--version"):
        assert name in result.stdout


def test_a_real_process_prints_one_line_and_exits_1(lab: Lab) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TYMPAN_STORE"}
    env["PYTHONPATH"] = str(REPO / "src")
    for args, fragment in (
        (["--store", "mysql://x", "runs"], "unsupported store URL"),
        (["--store", lab.store, "show", "no-such-run"], "no run 'no-such-run'"),
    ):
        proc = subprocess.run([sys.executable, "-m", "tympan.cli.app", *args],
                              capture_output=True, text=True, env=env, timeout=60, check=False)
        assert proc.returncode == 1, proc
        assert proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
        assert fragment in proc.stderr and "Traceback" not in proc.stderr


def test_a_real_process_lists_runs(lab: Lab) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tympan.cli.app", "--store", lab.store, "runs", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    assert {r["id"] for r in json.loads(proc.stdout)} == {lab.gru, lab.lstm, lab.tts}


# --- the same commands on both backends ----------------------------------------------------


def test_every_read_command_works_on_each_backend(store_url: str, tmp_path: Path) -> None:
    lab = _make_lab(store_url)
    assert sorted(listed_ids(lab, "--project", "asr", "--sort", "wer")) == sorted(
        [lab.gru, lab.lstm])
    show = tympan_cli("--store", store_url, "show", lab.tts)
    assert show.code == 0 and "boom in the decoder" in show.stdout
    diff = tympan_cli("--store", store_url, "diff", lab.gru, lab.lstm)
    assert diff.code == 0 and "model.encoder" in diff.stdout
    out = tmp_path / "gru.csv"
    export = tympan_cli("--store", store_url, "export", lab.gru, "--format", "csv",
                        "--output", str(out))
    assert export.code == 0
    assert len(out.read_text().splitlines()) == 1 + 10  # header + 5 steps x 2 keys
    current = tympan_cli("--store", store_url, "db", "current")
    assert current.code == 0 and "up to date" in current.stdout
