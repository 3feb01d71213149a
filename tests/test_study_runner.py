"""Study files, planning, and the runner on real child processes: failures, resume, force."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tympan
from tympan.errors import (
    StoreNotFoundError,
    StudyBusyError,
    StudyChangedError,
    StudyError,
    StudyFileError,
)
from tympan.store import open_store, studies
from tympan.study.plan import plan
from tympan.study.records import load_stored_study
from tympan.study.runner import run_study
from tympan.study.spec import load_study

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

TOY = """\
import os, random, sys, time
import tympan

START = time.time()
args = dict(a.split("=", 1) for a in sys.argv[1:])
seed = int(args["seed"])
if args.get("sleep"):
    time.sleep(float(args["sleep"]))
if args.get("enc") == "broken" and seed == 1:
    raise RuntimeError("broken encoder diverged")
if args.get("fail") == "all":
    raise ModuleNotFoundError("No module named 'warpctc'")
if args.get("enc") == "silent":
    sys.exit(0)  # never starts a run
effect = {"a": 0.0, "b": -0.2, "c": 0.0, "broken": 0.1, "silent": 0.0}[args["enc"]]
noise = random.Random(seed * 7 + len(args["enc"])).gauss(0, 0.01)
with tympan.init(project="toy", config=args) as run:
    run.log({"test/wer": 0.5 + effect + noise + 0.05 * (seed % 2)})
    while args.get("hold") and os.path.exists(args["hold"]) and time.time() - START < 60:
        time.sleep(0.05)  # inside the run: it stays running
while args.get("linger") and os.path.exists(args["linger"]) and time.time() - START < 60:
    time.sleep(0.05)  # the run finished, the process has not exited yet
print("threads", os.environ.get("OMP_NUM_THREADS"), "gpus", os.environ.get("CUDA_VISIBLE_DEVICES"))
"""


def write_study(folder: Path, body: str, name: str = "study.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(TOY)
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


BASIC = """\
    name: toy
    command: python train.py
    factors:
      enc: {levels: [a, b, c], baseline: a}
    seeds: 3
    metrics:
      - {name: wer, split: test, direction: lower}
"""


def test_every_mistake_in_a_study_file_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write_study(tmp_path, """\
        name: bad name!
        command: python train.py
        factors:
          enc: {levels: [a, b], baseline: z}
        seeds: 1
        metrics:
          - {name: wer, direction: sideways}
        resources: {cpus: 0, gpu: 1}
    """)
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    message = str(info.value)
    for fragment in (":1: name: use letters", ":4: factors.enc: baseline 'z' is not one of the "
                     "levels (a, b)", ":5: seeds: at least 2 seeds",
                     ":7: metrics.0.direction: Input should be 'lower' or 'higher'",
                     ":8: resources.cpus: Input should be greater than 0",
                     ":8: resources.gpu: unknown field"):
        assert fragment in message, message
    assert message.index(":1:") < message.index(":8:")  # in file order


@pytest.mark.parametrize(("body", "fragment"), [
    ("name: x\nfactors: {e: {levels: [a, b], baseline: a}}\nseeds: 2\n"
     "metrics: [{name: m, direction: lower}]\n", ":1: (top level): give exactly one of recipe"),
    ("name: x\ncommand: t\nfactors: {}\nseeds: 2\nmetrics: []\n",
     ":3: factors: list at least one factor"),
    ("- just\n- a list\n", "a study file is a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
    ("name: x\ncommand: python t.py\nconfig: missing.yaml\nfactors: {e: {levels: [a, b], "
     "baseline: a}}\nseeds: 2\nmetrics: [{name: m, direction: lower}]\n",
     ":3: config: missing.yaml does not exist"),
])
def test_malformed_study_files_say_what_is_wrong(tmp_path: Path, body: str,
                                                 fragment: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(body)
    with pytest.raises(StudyFileError, match=re.escape(fragment)):
        load_study(path)
    with pytest.raises(StudyFileError, match="cannot read the study file"):
        load_study(tmp_path / "absent.yaml")


def test_plans_pair_every_arm_on_the_same_seeds(tmp_path: Path) -> None:
    path = write_study(tmp_path, """\
        name: plan
        command: python train.py
        overrides: {epochs: 2}
        factors:
          enc: {levels: [a, b, c], baseline: a}
          size: {levels: {small: {hidden: 8, layers: 1}, big: {hidden: 64, layers: 4}},
                 baseline: small}
        seeds: [5, 9]
        metrics: [{name: wer, split: test, direction: lower}]
    """)
    trials = plan(load_study(path))
    assert [t.arm for t in trials[:4]] == ["baseline", "enc=b", "enc=c", "size=big"]
    assert [t.seed for t in trials] == [5] * 4 + [9] * 4  # seed-major
    big = trials[3]
    assert big.overrides == ["epochs=2", "enc=a", "hidden=64", "layers=4", "seed=5"]
    assert len({t.key for t in trials}) == 8
    full = path.read_text().replace("seeds: [5, 9]", "design: full\nseeds: [5, 9]")
    path.write_text(full)
    full_trials = plan(load_study(path))
    assert len(full_trials) == 2 * 3 * 2 and full_trials[0].arm == "baseline"
    assert {t.key for t in trials} <= {t.key for t in full_trials}  # same command, same key


def test_trials_run_linked_and_a_failure_does_not_stop_the_study(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC.replace("[a, b, c]", "[a, b, broken, silent]"))
    store = str(tmp_path / "store")
    stored = run_study(load_study(path), store=store, workers=2)
    by = {(t.arm, t.seed): t for t in stored.current_trials()}
    assert len(by) == 12
    assert by[("enc=broken", 1)].status == "failed"
    assert "RuntimeError: broken encoder diverged" in by[("enc=broken", 1)].error
    assert by[("enc=broken", 0)].status == "finished"
    silent = by[("enc=silent", 0)]
    assert silent.status == "failed" and "without starting a tympan run" in silent.error
    assert by[("baseline", 2)].status == "finished"
    run = tympan.load_run(by[("enc=b", 0)].run_id, store=store)
    assert run.study_id == stored.id and run.config["enc"] == "b" and run.config["seed"] == "0"
    assert "threads 1" in stored.read_log(by[("enc=b", 0)])  # resources.cpus -> threads

    # Running it again keeps every finished trial and does not retry failures by default.
    again = run_study(load_study(path), store=store)
    assert {t.key: t.attempts for t in again.trials} == {t.key: t.attempts for t in stored.trials}
    retried = run_study(load_study(path), store=store, retry_failed=True)
    attempts = {(t.arm, t.seed): t.attempts for t in retried.current_trials()}
    assert attempts[("enc=broken", 1)] == 2 and attempts[("enc=b", 0)] == 1


def test_a_changed_study_file_is_refused_unless_forced(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC)
    store = str(tmp_path / "store")
    first = run_study(load_study(path), store=store, workers=2)
    path.write_text(path.read_text().replace("seeds: 3", "seeds: 4"))
    with pytest.raises(StudyChangedError, match="changed since study toy .* ran 9 trial"):
        run_study(load_study(path), store=store)
    forced = run_study(load_study(path), store=store, force=True, workers=2)
    current = forced.current_trials()
    assert len(current) == 12 and all(t.status == "finished" for t in current)
    kept = {t.key for t in first.trials}
    assert all(t.attempts == 1 for t in current)  # the first 9 were not run again
    assert kept <= {t.key for t in current}


def test_a_renamed_factor_relabels_the_trials_it_keeps(tmp_path: Path) -> None:
    """Renaming a factor (with ``key:`` keeping its config key) changes no command line: the
    trials are kept, under the new name, and the analysis compares them."""
    path = write_study(tmp_path, BASIC.replace("seeds: 3", "seeds: 2"))
    store = str(tmp_path / "store")
    run_study(load_study(path), store=store, workers=2)
    path.write_text(path.read_text().replace("enc: {levels", "encoder: {key: enc, levels"))
    forced = run_study(load_study(path), store=store, force=True, workers=2)
    current = forced.current_trials()
    assert len(current) == 6 and all(t.attempts == 1 for t in current)  # none ran again
    assert {t.arm for t in current} == {"baseline", "encoder=b", "encoder=c"}
    assert all(set(t.levels) == {"encoder"} for t in current)


def test_a_killed_runner_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC.replace("command: python train.py",
                                               "command: python train.py\n"
                                               "    overrides: {sleep: 1.5}"))
    store = str(tmp_path / "store")
    tympan_cli = str(Path(sys.executable).parent / "tympan")
    runner = subprocess.Popen([tympan_cli, "--store", store, "ablate", str(path), "--quiet"],
                              stdout=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.monotonic() + 60
    while "[2/9]" not in seen and time.monotonic() < deadline:  # two trials done
        seen += runner.stdout.readline()
    runner.kill()
    runner.wait(10)
    runner.stdout.close()
    assert "[2/9]" in seen
    with open_store(store) as handle:
        stored = load_stored_study(handle, "toy")
        mid = {t.key: t for t in stored.current_trials()}
    assert sum(t.status == "finished" for t in mid.values()) >= 2
    orphans = [t for t in mid.values() if t.status == "running"]
    time.sleep(0.5)
    for trial in orphans:  # the trial processes died with their runner
        run = stored.runs.get(trial.run_id or "")
        assert run is None or run.status != "running" or not _alive(run.pid)

    done = run_study(load_study(path), store=store, workers=3)
    final = {t.key: t for t in done.current_trials()}
    assert all(t.status == "finished" for t in final.values())
    for key, trial in mid.items():
        if trial.status == "finished":
            assert final[key].attempts == 1 and final[key].run_id == trial.run_id


def test_a_live_runner_holds_the_study(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC)
    store = str(tmp_path / "store")
    from tympan.study.runner import register

    holder = subprocess.Popen(["sleep", "30"])
    try:
        with open_store(store, create=True) as handle:
            study_id = register(handle, load_study(path))
            with handle.write() as conn:
                studies.change(conn, study_id, runner_host=os.uname().nodename,
                               runner_pid=holder.pid, runner_beat=time.time())
        with pytest.raises(StudyBusyError, match=f"being run by pid {holder.pid}"):
            run_study(load_study(path), store=store)
    finally:
        holder.kill()
        holder.wait()
    assert len(run_study(load_study(path), store=store).current_trials()) == 9  # dead: freed


def test_a_trial_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC.replace("seeds: 3", "seeds: 2").replace(
        "command: python train.py", "command: python train.py\n    overrides: {sleep: 30}\n"
                                    "    resources: {timeout: 1}"))
    started = time.monotonic()
    # Every first trial (one per arm) times out alike: the study stops there.
    with pytest.raises(StudyError, match="first 3 trials all failed the same way: timed out"
                       ) as info:
        run_study(load_study(path), store=str(tmp_path / "store"), workers=3)
    assert time.monotonic() - started < 25
    with open_store(str(tmp_path / "store")) as handle:
        trials = load_stored_study(handle, "toy").current_trials()
    pending = sum(t.status == "pending" for t in trials)  # a 4th may have started meanwhile
    assert pending >= 1 and f"{pending} trial{' was' if pending == 1 else 's were'} not run" in \
        str(info.value)
    assert sum(t.status == "timed_out" for t in trials) == 6 - pending
    # The first line names the limit, so trials stopped at 1.4 s and 2.1 s read alike.
    assert all(t.error.startswith("timed out after 1 s (resources.timeout)")
               for t in trials if t.status == "timed_out")


@pytest.mark.parametrize(("text", "seconds"), [("", 10800.0), ("timeout: 90", 90.0),
                                               ("timeout: none", None),
                                               ("timeout: None", None)])
def test_a_trial_timeout_defaults_to_3_hours_and_none_disables_it(
        tmp_path: Path, text: str, seconds: float | None) -> None:
    path = write_study(tmp_path, BASIC + (f"    resources: {{{text}}}\n" if text else ""))
    assert load_study(path).spec.resources.timeout_seconds == seconds


@pytest.mark.parametrize("value", ["0", "-5", "forever", "true"])
def test_a_timeout_that_is_not_positive_is_refused(tmp_path: Path, value: str) -> None:
    path = write_study(tmp_path, BASIC + f"    resources: {{timeout: {value}}}\n")
    with pytest.raises(StudyFileError, match=r":8: resources.timeout: .* is not a timeout: give "
                       r"a positive number of seconds per trial \(e.g. 10800 for 3 hours\), or "
                       r"none for no limit"):
        load_study(path)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def _ablate(store: str, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tympan_cli = str(Path(sys.executable).parent / "tympan")
    return subprocess.run([tympan_cli, "--store", store, "ablate", str(path), "--quiet", *args],
                          capture_output=True, text=True, timeout=120)


def test_ablate_exits_non_zero_when_a_trial_failed(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC.replace("[a, b, c]", "[a, broken]"))
    store = str(tmp_path / "store")
    done = _ablate(store, path, "--workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdicts" in done.stdout or "no comparisons" in done.stdout  # still reported
    assert done.stderr.strip().splitlines()[-1] == (
        "error: 1 of 6 trials failed (enc=broken seed=1: exit status 1: RuntimeError: "
        "broken encoder diverged); see `tympan study toy`, then run again with --retry-failed")
    again = _ablate(store, path)  # nothing left to run, but the study is still incomplete
    assert again.returncode == 1 and "1 of 6 trials failed" in again.stderr


def test_ablate_stops_when_every_first_trial_fails_the_same_way(tmp_path: Path) -> None:
    path = write_study(tmp_path, BASIC.replace("command: python train.py",
                                               "command: python train.py\n"
                                               "    overrides: {fail: all}"))
    store = str(tmp_path / "store")
    done = _ablate(store, path)
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        "error: study toy stopped: its first 3 trials all failed the same way: "
        "exit status 1: ModuleNotFoundError: No module named 'warpctc'; 6 trials were not "
        "run. Fix the cause, then run again with --retry-failed"]
    assert done.stdout.count("failed") == 3  # one line per trial that ran, then nothing
    with open_store(store) as handle:
        states = [t.status for t in load_stored_study(handle, "toy").current_trials()]
    assert sorted(states) == ["failed"] * 3 + ["pending"] * 6


def test_a_dead_runner_is_seen_and_a_finished_run_is_never_run_again(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    path = write_study(tmp_path, f"""\
        name: toy
        command: python train.py
        factors:
          enc:
            levels: {{a: {{enc: a, linger: "{gate}"}}, b: {{enc: b, hold: "{gate}"}}}}
            baseline: a
        seeds: 2
        metrics:
          - {{name: wer, split: test, direction: lower}}
    """)
    store = str(tmp_path / "store")
    tympan_cli = str(Path(sys.executable).parent / "tympan")
    runner = subprocess.Popen([tympan_cli, "--store", store, "ablate", str(path), "--quiet",
                               "--workers", "2"], stdout=subprocess.DEVNULL)
    try:
        # Seed 0 of arm a has finished its run but its process lingers; arm b's run is open.
        deadline = time.monotonic() + 60
        finished = []
        while not finished and time.monotonic() < deadline:
            time.sleep(0.1)
            with contextlib.suppress(StoreNotFoundError):  # until the runner made the store
                finished = tympan.find_runs(store=store, status="finished")
        assert finished, "the first trial's run never finished"
        time.sleep(0.3)  # arm b's trial is inside its run by now
    finally:
        runner.send_signal(9)  # SIGKILL: no clean-up of any kind
        runner.wait(10)
    [run_a] = finished
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the trials die with their runner
        open_runs = tympan.find_runs(store=store, status="running")
        if not open_runs:
            break
        time.sleep(0.1)

    shown = subprocess.run([tympan_cli, "--store", store, "study", "toy", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    seen = {(t["arm"], t["seed"]): t for t in json.loads(shown.stdout)["trials"]}
    assert seen[("baseline", 0)]["status"] == "finished"  # its run finished: taken
    assert seen[("baseline", 0)]["run_id"] == run_a.id
    crashed = seen[("enc=b", 0)]
    assert crashed["status"] == "crashed" and crashed["run_id"] is not None
    assert f"the runner (pid {runner.pid} on " in crashed["error"]
    assert {t["status"] for t in seen.values()} <= {"finished", "crashed", "pending"}
    with open_store(store) as handle:
        assert load_stored_study(handle, "toy").runner is None  # the slot is free again

    gate.unlink()
    done = run_study(load_study(path), store=store, workers=2)
    final = {(t.arm, t.seed): t for t in done.current_trials()}
    assert all(t.status == "finished" for t in final.values())
    assert final[("baseline", 0)].attempts == 1 and final[("baseline", 0)].run_id == run_a.id
    assert final[("enc=b", 0)].attempts == 2
    runs = tympan.find_runs(store=store, status="finished")
    per_trial = sorted((r.config["enc"], r.config["seed"]) for r in runs)
    assert per_trial == [("a", "0"), ("a", "1"), ("b", "0"), ("b", "1")]  # no duplicates


def test_a_0006_store_upgrades_so_a_trial_names_its_run_before_it_exists(
        tmp_path: Path, store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from tympan.store import upgrade_store, versioning
    from tympan.study.runner import register
    from tympan.track.stores import close_stores

    run = tympan.init(project="toy", store=store_url)
    run.finish()
    close_stores()
    path = write_study(tmp_path, BASIC)

    def downgrade() -> None:
        with open_store(store_url) as handle, handle.engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(versioning.MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")

    with open_store(store_url) as handle:
        study_id = register(handle, load_study(path))
        with handle.write() as conn:
            first, second = studies.trials_of(conn, study_id)[:2]
            studies.change_trial(conn, first.id, run_id=run.id, status="finished")
    downgrade()
    assert upgrade_store(store_url)[:2] == ("0006", versioning.HEAD)
    with open_store(store_url) as handle:
        with handle.write() as conn:  # refused by the foreign key before 0007
            studies.change_trial(conn, second.id, run_id="r-to-come", status="running")
        with handle.read() as conn:
            kept = {t.id: t for t in studies.trials_of(conn, study_id)}
    assert len(kept) == 9 and kept[first.id].run_id == run.id
    assert kept[first.id].status == "finished" and kept[second.id].run_id == "r-to-come"
    downgrade()  # and back: an id naming no run cannot stay under the key
    upgrade_store(store_url)
    with open_store(store_url) as handle, handle.read() as conn:
        back = {t.id: t.run_id for t in studies.trials_of(conn, study_id)}
    assert back[first.id] == run.id and back[second.id] is None


def test_a_study_stored_before_analysis_test_existed_keeps_its_digest(tmp_path: Path) -> None:
    """The digest of an unchanged file is what it was before ``analysis.test``, ``data_size``
    and ``steps`` existed (the same dump without those keys), so such studies resume without
    --force; setting one changes the digest."""
    import hashlib

    spec = load_study(write_study(tmp_path, BASIC)).spec
    dump = spec.model_dump(mode="json")
    del dump["analysis"]["test"], dump["data_size"], dump["steps"]
    before = hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()
    assert spec.digest() == before
    chosen = load_study(write_study(tmp_path, BASIC + "    analysis: {test: t-test}\n")).spec
    assert chosen.digest() != before
