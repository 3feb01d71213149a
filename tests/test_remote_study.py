"""Studies through a real ``tympan server`` process: ``tympan ablate`` run by a client whose
only store setting is ``TYMPAN_STORE=http://...`` and a write token keeps every study record
on the server; ``tympan study``, ``tympan findings``, ``tympan quantify`` and the Python API
read it back through the server with the same answers as from the store; a read token
cannot run a study (403, said in one line) and a project-bound token neither sees nor runs
another project's studies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from tests.server_fixtures import live_server
from tests.test_cli import Outcome, assert_one_line_error, tympan_cli
from tests.test_study_runner import write_study

from tympan.cli.study import study_json
from tympan.store import open_store, tokens
from tympan.study.analysis import analyse
from tympan.study.catalog import list_studies
from tympan.study.findings import pooled_findings
from tympan.study.records import load_stored_study
from tympan.study.runner import register
from tympan.study.source import open_studies
from tympan.study.spec import load_study

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

TOY = """\
    name: toy
    project: toy
    command: python train.py
    factors:
      enc: {levels: [a, b], baseline: a}
    seeds: 2
    metrics:
      - {name: wer, split: test, direction: lower}
"""

# A learning curve whose trials train nothing: each logs the size of its fraction of 32
# utterances and per-utterance errors drawn from a power law of it.
CURVE_TRIAL = """\
import json, random, sys
import tympan

args = dict(a.split("=", 1) for a in sys.argv[1:])
size = round(32 * float(args["train_fraction"]))
seed = int(args["seed"])
rng = random.Random(seed * 1000 + size)
rate = 0.04 + 0.5 * (size / 4) ** -0.6
ids = [f"test/{i}" for i in range(60)]
errors = [sum(rng.random() < rate for _ in range(4)) for _ in ids]
with tympan.init(project="toy", config=args) as run:
    run.log({"data/train_utterances": size, "test/wer": sum(errors) / (4 * len(ids))})
    run.log_artifact(json.dumps({"ids": ids, "wer": {"errors": errors,
                                                     "counts": [4] * len(ids)}}).encode(),
                     name="test/utterances.json")
"""

CURVE = """\
name: curve
project: toy
command: python trial.py
design: learning_curve
data_size: {key: train_fraction, fractions: [1/8, 1/4, 1/2, 1], measure: data/train_utterances}
seeds: 2
metrics:
  - {name: wer, split: test, direction: lower}
"""


class Team:
    url: str
    store: str
    folder: Path
    made: dict[str, str]  # tokens by role
    ablate: subprocess.CompletedProcess[str]


def client(url: str, token: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `tympan` command with no store setting but the server's address and a token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TYMPAN_")}
    env |= {"TYMPAN_STORE": url, "TYMPAN_TOKEN": token}
    tympan = str(Path(sys.executable).parent / "tympan")
    return subprocess.run([tympan, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("remote-study")
    info = Team()
    info.store = str(root / "store")
    info.made = {}
    with open_store(info.store, create=True) as store, store.write() as conn:
        for role, scope, project in (("write", "write", None), ("read", "read", None),
                                     ("asr-read", "read", "asr"),
                                     ("asr-write", "write", "asr")):
            info.made[role] = tokens.create(conn, scope, project, name=role)[0]
    info.folder = root / "client"
    path = write_study(info.folder, TOY)
    (info.folder / "trial.py").write_text(CURVE_TRIAL)
    (info.folder / "curve.yaml").write_text(CURVE)
    with open_store(info.store) as store:  # a second study, run later through the server
        register(store, load_study(info.folder / "curve.yaml"))
    with live_server(info.store) as url:
        info.url = url
        info.ablate = client(url, info.made["write"], "ablate", str(path), "--quiet",
                             "--workers", "2", cwd=info.folder)
        yield info


Place = tuple[tuple[str, ...], dict[str, str | None]]


def places(team: Team, token: str = "read") -> tuple[Place, Place]:
    """Where the CLI reads studies from (its arguments and settings): the store itself,
    then the server with one of the team's tokens."""
    return ((("--store", team.store), {}),
            ((), {"TYMPAN_STORE": team.url, "TYMPAN_TOKEN": team.made[token]}))


def both(team: Team, *args: str, token: str = "read") -> tuple[Outcome, Outcome]:
    """The CLI's answer from the store, then through the server."""
    local, remote = (tympan_cli(*where, *args, env=env) for where, env in places(team, token))
    return local, remote


@pytest.fixture
def refused_ablate(team: Team) -> Callable[[str], list[str]]:
    """``tympan ablate study.yaml`` through the server with one of the team's tokens, which
    must fail with nothing on stdout: the lines it printed on stderr."""
    def refused(token: str) -> list[str]:
        done = client(team.url, team.made[token], "ablate", "study.yaml", "--quiet",
                      cwd=team.folder)
        assert done.returncode == 1 and done.stdout == "", done
        return done.stderr.splitlines()
    return refused


def test_ablate_runs_a_study_against_the_server(team: Team) -> None:
    done = team.ablate
    assert done.returncode == 0, done.stdout + done.stderr
    assert "study toy: 4 trials, 0 already finished, 4 to run" in done.stdout
    assert done.stdout.count(" finished (run ") == 4 and "verdicts" in done.stdout
    assert not (team.folder / ".tympan").exists()  # nothing stored on the client
    with open_store(team.store) as store:
        stored = load_stored_study(store, "toy")
        assert [t.status for t in stored.current_trials()] == ["finished"] * 4
        assert stored.runner is None  # the runner let go of it
        assert all(run.study_id == stored.id for run in stored.runs.values())
        assert "threads 1" in stored.read_log(stored.current_trials()[0])
        from tympan.store import findings

        with store.read() as conn:  # recorded by the server from its own analysis
            assert len(findings.query(conn)) == 1


def test_study_and_findings_read_the_same_through_the_server(team: Team,
                                                              tmp_path: Path) -> None:
    for args in (("study", "toy", "--json"), ("study", "toy"), ("findings", "--json"),
                 ("findings",), ("findings", "--component", "enc", "--metric", "test/wer")):
        local, remote = both(team, *args)
        assert local.code == 0, local
        assert remote == local, args
    wikis = []
    for where, env in places(team):
        folder = tmp_path / f"wiki{len(wikis)}"
        exported = tympan_cli(*where, "findings", "export", "--wiki", str(folder), env=env)
        assert exported.code == 0, exported
        wikis.append({p.name: p.read_text() for p in folder.iterdir()})
    assert wikis[1] == wikis[0] and "enc.md" in wikis[0]
    found = json.loads(both(team, "findings", "--json")[1].stdout)
    assert [(f["component"], f["level"], f["baseline"]) for f in found] == [("enc", "b", "a")]
    trials = json.loads(both(team, "study", "toy", "--json")[1].stdout)["trials"]
    assert sorted((t["arm"], t["seed"], t["status"]) for t in trials) == [
        ("baseline", 0, "finished"), ("baseline", 1, "finished"),
        ("enc=b", 0, "finished"), ("enc=b", 1, "finished")]


def test_the_python_api_reads_a_study_through_the_server(
    team: Team, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TYMPAN_TOKEN", team.made["read"])
    with open_store(team.store) as store, closing(open_studies(team.url)) as remote:
        local_study = load_stored_study(store, "toy")
        remote_study = load_stored_study(remote, "toy")
        assert remote_study.trials == local_study.trials
        assert sorted(remote_study.runs) == sorted(local_study.runs)
        for run_id, run in local_study.runs.items():
            assert repr(remote_study.runs[run_id]) == repr(run)
        assert study_json(remote_study, analyse(remote_study)) == study_json(
            local_study, analyse(local_study))
        trial = remote_study.current_trials()[0]
        assert remote_study.read_log(trial) == local_study.read_log(trial) != ""
        assert pooled_findings(remote) == pooled_findings(store)
        assert pooled_findings(remote, project="toy") == pooled_findings(store, project="toy")


def test_quantify_reads_a_learning_curve_study_through_the_server(team: Team,
                                                                   tmp_path: Path) -> None:
    ran = client(team.url, team.made["write"], "ablate", "curve.yaml", "--quiet",
                 "--workers", "2", cwd=team.folder)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    answers = []
    for where, env in places(team):
        out = tmp_path / str(len(answers))
        result = tympan_cli(*where, "quantify", "curve", "--target", "test/wer=10%",
                            "--out", str(out), env=env)
        assert result.code == 0, result
        answers.append((result.stdout.replace(str(out), "OUT"),
                        json.loads((out / "quantify.json").read_text())))
    assert answers[1] == answers[0]
    # The answer names the target (reached, or beyond what this small curve supports).
    assert "test/wer ≤ 0.1" in answers[0][0] and "quantify.json" in answers[0][0]
    local, remote = both(team, "quantify", "toy")
    assert_one_line_error(remote, "reads learning-curve studies")
    assert remote == local


def test_a_read_token_cannot_run_a_study(team: Team, refused_ablate: Callable) -> None:
    assert refused_ablate("read") == [
        f"error: the tympan server at {team.url} answered 403: this needs a token with "
        "scope write; yours has scope read"]


def test_a_read_token_cannot_record_findings_and_writes_no_report(team: Team,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "report"
    refused = tympan_cli("report", "toy", "--out", str(out),
                         env={"TYMPAN_STORE": team.url, "TYMPAN_TOKEN": team.made["read"]})
    assert_one_line_error(refused, "answered 403: this needs a token with scope write")
    assert not out.exists()  # no report.md, forest.svg or report.html from a refused command
    written = tympan_cli("report", "toy", "--out", str(out),
                         env={"TYMPAN_STORE": team.url, "TYMPAN_TOKEN": team.made["write"]})
    assert written.code == 0, written
    assert sorted(p.name for p in out.iterdir()) == ["forest.svg", "report.html", "report.md"]


def test_a_project_bound_token_neither_sees_nor_runs_other_projects_studies(
    team: Team, refused_ablate: Callable,
) -> None:
    assert refused_ablate("asr-write") == [
        f"error: the tympan server at {team.url} answered 404: this token cannot run "
        "studies of project 'toy'"]
    for token in ("asr-read", "asr-write"):
        _, shown = both(team, "study", "toy", token=token)
        assert_one_line_error(shown, "answered 404: no study 'toy'")
        _, found = both(team, "findings", "--json", token=token)
        assert found.code == 0 and json.loads(found.stdout) == []
    # A study's id does not help either: the same answer as for no such study.
    with open_store(team.store) as store:
        study_id = load_stored_study(store, "toy").id
    _, by_id = both(team, "study", study_id, token="asr-read")
    _, none = both(team, "study", "s000000000", token="asr-read")
    assert_one_line_error(by_id, f"answered 404: no study {study_id!r}")
    assert_one_line_error(none, "answered 404: no study 's000000000'")


def test_a_project_bound_token_cannot_read_another_projects_quantification(team: Team) -> None:
    import httpx

    with open_store(team.store) as store:
        curve_id = load_stored_study(store, "curve").id

    def page(ref: str, token: str) -> httpx.Response:
        return httpx.get(f"{team.url}/api/studies/{ref}/quantify.html",
                         headers={"Authorization": f"Bearer {team.made[token]}"})

    for ref in (curve_id, "curve"):  # by id or by name: the same answer as no such study
        hidden = page(ref, "asr-read")
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["error"]["message"] == f"no study {ref!r}"
    none = page("s000000000", "asr-read")
    assert none.status_code == 404
    assert none.json()["error"]["message"] == "no study 's000000000'"
    seen = page(curve_id, "read")  # a token of every project still reaches it
    assert seen.status_code != 404 and "no study" not in seen.text, seen.text


def test_the_write_routes_refuse_what_a_runner_never_sends(team: Team) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {team.made['write']}"}
    with open_store(team.store) as store:
        stored = load_stored_study(store, "toy")
        other = load_stored_study(store, "curve")
    trial = stored.current_trials()[0]
    base = f"{team.url}/api/records/studies"
    wrong = httpx.patch(f"{base}/{other.id}/trials/{trial.id}", json={"status": "failed"},
                        headers=headers)
    assert wrong.status_code == 404
    assert wrong.json()["error"]["message"] == f"study {other.id} has no trial {trial.id}"
    hidden = httpx.patch(f"{base}/{stored.id}/trials/{trial.id}",
                         json={"log_sha256": "0" * 64}, headers=headers)
    assert hidden.status_code == 422  # the log only comes with its bytes
    bad = httpx.patch(f"{base}/{stored.id}/trials/{trial.id}", json={"status": "done"},
                      headers=headers)
    assert bad.status_code == 422
    # A runner elsewhere holds the study: a second one is told who, as beside the store.
    runner = {"host": "gpu-box-7", "pid": 4242}
    assert httpx.post(f"{base}/{stored.id}/claim", json=runner, headers=headers).is_success
    busy = client(team.url, team.made["write"], "ablate", "study.yaml", "--quiet",
                  cwd=team.folder)
    assert httpx.post(f"{base}/{stored.id}/release", json=runner, headers=headers).is_success
    assert busy.returncode == 1 and busy.stderr.splitlines() == [
        f"error: the tympan server at {team.url} answered 409: study toy is being run by pid "
        "4242 on gpu-box-7; wait for it to end (or stop it) and run again"], busy
    # A study file is registered in the project it names, and no other.
    meta = {"spec": stored.spec.model_dump(mode="json"), "path": stored.path,
            "config_sha256": None, "trial_keys": [], "data_path": None}
    body = {"project": "asr", "name": "toy", "file_name": "study.yaml", "meta": meta,
            "digest": "0" * 64, "source": stored.source, "trials": []}
    elsewhere = httpx.post(base, json=body, headers={
        "Authorization": f"Bearer {team.made['asr-write']}"})
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["message"] == (
        "meta.spec is study 'toy' of project 'toy', not 'toy' of 'asr'")
    with open_store(team.store) as store:
        assert load_stored_study(store, "toy").current_trials()[0] == trial
        assert sorted(s.name for s in list_studies(store)) == ["curve", "toy"]


def test_a_study_file_keeps_its_text_on_the_server(team: Team) -> None:
    with open_store(team.store) as store:
        stored = load_stored_study(store, "toy")
    assert stored.source == textwrap.dedent(TOY)
    assert stored.path == str(team.folder / "study.yaml")


@pytest.mark.postgres
def test_a_study_runs_through_a_server_on_postgresql(pg_database: str, tmp_path: Path) -> None:
    with open_store(pg_database, create=True) as store, store.write() as conn:
        token = tokens.create(conn, "write", name="runner")[0]
    folder = tmp_path / "client"
    path = write_study(folder, TOY)
    with live_server(pg_database) as url:
        done = client(url, token, "ablate", str(path), "--quiet", "--workers", "2",
                      cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
        remote = tympan_cli("study", "toy", "--json",
                            env={"TYMPAN_STORE": url, "TYMPAN_TOKEN": token})
    local = tympan_cli("--store", pg_database, "study", "toy", "--json")
    assert local.code == 0 and remote == local, remote
    assert [t["status"] for t in json.loads(local.stdout)["trials"]] == ["finished"] * 4
