"""Run management: rename, tags, notes, archive and delete, audited as run events, through the
Python writer (both backends), the CLI and a real server with tokens."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.server_fixtures import live_server
from tests.test_server_auth import cli, create_token

import tympan
from tympan.errors import InvalidInputError, RunNotFoundError, RunStateError
from tympan.store import open_store, run_events
from tympan.track.manage import RunEdit, archive_runs, delete_runs, edit_run
from tympan.track.stores import close_stores


def _runs(where: str) -> dict[str, str]:
    """Runs a, b (with a probe child) and c in project asr, d in tts; b and c share a blob."""
    ids = {}
    for name, project, blob in (("a", "asr", b"weights of a"), ("b", "asr", b"shared"),
                                ("c", "asr", b"shared"), ("d", "tts", b"weights of d")):
        with tympan.init(project=project, name=name, store=where, tags=["base"],
                         config={"lr": 0.1}) as run:
            run.log({"loss": 1.0}, step=0)
            run.log_artifact(blob, name="model.pt")
            ids[name] = run.id
    with tympan.init(project="asr", name="b-probe", store=where, parent=ids["b"]) as run:
        run.log_artifact(b"probe report of b", name="report.json")
        ids["b-probe"] = run.id
    close_stores()
    return ids


def _names(store: str, **options) -> list[str]:
    return sorted(r.name for r in tympan.find_runs(store, **options))


def test_edit_archive_and_delete_are_audited_and_collect_unused_blobs(store_url: str) -> None:
    ids = _runs(store_url)
    store = open_store(store_url)
    try:
        result = edit_run(store, ids["a"], RunEdit(name="a2", add_tags=["keep"],
                                                   remove_tags=["base"], note="good"), "me")
        assert (result["name"], result["tags"], result["note"]) == ("a2", ["keep"], "good")
        assert sorted(result["changed"]) == ["name", "note", "tags"]
        again = edit_run(store, ids["a"], RunEdit(name="a2"), "me")  # already so
        assert again["changed"] == []
        with pytest.raises(InvalidInputError, match="nothing to change"):
            edit_run(store, ids["a"], RunEdit(), "me")
        with pytest.raises(InvalidInputError, match="both added and removed"):
            edit_run(store, ids["a"], RunEdit(add_tags=["x"], remove_tags=["x"]), "me")
        with pytest.raises(RunNotFoundError):
            archive_runs(store, [ids["c"], "nosuchrun0"], "me")  # refused as a whole

        assert archive_runs(store, [ids["a"], ids["c"]], "you") == [ids["a"], ids["c"]]
        assert archive_runs(store, [ids["a"]], "you") == []  # already archived
        assert _names(store_url, project="asr") == ["b", "b-probe"]
        assert _names(store_url, project="asr", archived="include") == [
            "a2", "b", "b-probe", "c"]
        assert _names(store_url, project="asr", archived="only") == ["a2", "c"]
        assert _names(store_url, where="tags has keep") == []  # hidden from queries too
        assert archive_runs(store, [ids["c"]], "you", archived=False) == [ids["c"]]

        shared = tympan.load_run(ids["c"], store=store_url).artifacts()[0].sha256
        own = tympan.load_run(ids["b-probe"], store=store_url).artifacts()[0].sha256
        deleted = delete_runs(store, [ids["b"]], "me")
        assert sorted(deleted.runs) == sorted([ids["b"], ids["b-probe"]])
        assert deleted.children == [ids["b-probe"]]
        assert deleted.blob_files == 1  # the probe's report; b's blob is c's too
        assert not Path(store.blobs.path(own)).exists()
        assert tympan.load_run(ids["c"], store=store_url).read_artifact("model.pt") == b"shared"
        assert Path(store.blobs.path(shared)).exists()
        with pytest.raises(RunNotFoundError):
            tympan.load_run(ids["b"], store=store_url)

        with store.read() as conn:
            events = [(e.run_id, e.action, e.actor) for e in run_events.listed(conn)]
            of_a = [(e.action, e.detail) for e in run_events.listed(conn, run_id=ids["a"])]
        assert (ids["b-probe"], "delete", "me") in events and (ids["b"], "delete", "me") in events
        assert (ids["c"], "unarchive", "you") in events
        assert ("rename", {"before": "a", "after": "a2"}) in of_a
        assert ("tags", {"before": ["base"], "after": ["keep"]}) in of_a
    finally:
        store.close()


def test_a_running_run_is_never_deleted(tmp_path) -> None:
    where = str(tmp_path / "s")
    run = tympan.init(project="asr", store=where)
    run.log({"loss": 1.0}, step=0)
    run.flush()
    store = open_store(where)
    try:
        with pytest.raises(RunStateError, match="is running"):
            delete_runs(store, [run.id], "me")
        run.finish()
        assert delete_runs(store, [run.id], "me").runs == [run.id]
    finally:
        store.close()
        close_stores()


def test_the_cli_edits_archives_deletes_and_shows_history(tmp_path, capsys, monkeypatch) -> None:
    where = str(tmp_path / "s")
    ids = _runs(where)
    code, out, err = cli(capsys, "--store", where, "edit", ids["a"], "--name", "a-best", "--tag",
                         "keep", "--note", "the one")
    assert code == 0, err
    assert f"run {ids['a']} (a-best): changed name, note, tags; tags: base, keep" in out
    code, out, _ = cli(capsys, "--store", where, "archive", "a-best", ids["c"])
    assert (code, out) == (0, "archived 2 runs\n")
    code, out, _ = cli(capsys, "--store", where, "runs", "-p", "asr", "--json")
    assert sorted(r["name"] for r in __import__("json").loads(out)) == ["b", "b-probe"]
    code, out, _ = cli(capsys, "--store", where, "runs", "-p", "asr", "--archived", "only",
                       "--json")
    assert sorted(r["name"] for r in __import__("json").loads(out)) == ["a-best", "c"]
    code, _, err = cli(capsys, "--store", where, "runs", "--archived", "some")
    assert code == 1 and "archived='some': use one of hide, include, only" in err

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    code, out, _ = cli(capsys, "--store", where, "delete", ids["b"])
    assert code == 1 and "and 1 child runs for good?" in out and "nothing deleted" in out
    assert _names(where, project="asr") == ["b", "b-probe"]
    code, out, _ = cli(capsys, "--store", where, "delete", ids["b"], "--yes")
    assert code == 0 and out.startswith("deleted 2 runs (1 child runs); removed 1 blob files")
    code, out, _ = cli(capsys, "--store", where, "history", ids["b"], "--json")
    events = __import__("json").loads(out)
    assert [e["action"] for e in events] == ["delete"]
    assert events[0]["actor"].startswith("user:")
    code, out, _ = cli(capsys, "--store", where, "history", "-p", "asr")
    assert code == 0 and "rename" in out and "'a' -> 'a-best'" in out


def test_the_api_manages_runs_with_write_tokens_and_audits_the_token(
        tmp_path, capsys) -> None:
    where = str(tmp_path / "s")
    ids = _runs(where)
    reader = create_token(capsys, where, "--scope", "read", "--name", "ro")
    writer = create_token(capsys, where, "--scope", "write", "--name", "alice")
    tts_writer = create_token(capsys, where, "--scope", "write", "--project", "tts")
    with live_server(where) as url:
        def call(token: str, method: str, path: str, **kw) -> httpx.Response:
            return httpx.request(method, f"{url}{path}", timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}, **kw)

        refused = call(reader, "PATCH", f"/api/runs/{ids['a']}", json={"name": "x"})
        assert refused.status_code == 403 and "scope write" in refused.json()["error"]["message"]
        hidden = call(tts_writer, "PATCH", f"/api/runs/{ids['a']}", json={"name": "x"})
        assert hidden.status_code == 404  # another project's run: as if it did not exist
        bad = call(writer, "PATCH", f"/api/runs/{ids['a']}", json={})
        assert bad.status_code == 400 and "nothing to change" in bad.json()["error"]["message"]

        done = call(writer, "PATCH", f"/api/runs/{ids['a']}",
                    json={"name": "a2", "add_tags": ["keep"], "note": "n", "archived": True})
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["name"] == "a2" and body["tags"] == ["base", "keep"]
        assert body["archived_at"] is not None
        assert body["changed"] == ["archived", "name", "note", "tags"]

        listed = call(reader, "GET", "/api/runs", params={"project": "asr"}).json()
        assert sorted(r["name"] for r in listed["runs"]) == ["b", "b-probe", "c"]
        everything = call(reader, "GET", "/api/runs",
                          params={"project": "asr", "archived": "include"}).json()
        assert {r["name"]: r["archived_at"] is not None for r in everything["runs"]}["a2"]

        archived = call(writer, "POST", "/api/runs/archive",
                        json={"runs": [ids["a"], ids["c"]], "archived": False})
        assert archived.json() == {"archived": False, "changed": [ids["a"]]}  # c was not
        deleted = call(writer, "POST", "/api/runs/delete", json={"runs": [ids["b"]]}).json()
        assert sorted(deleted["deleted"]) == sorted([ids["b"], ids["b-probe"]])
        assert deleted["blob_files"] == 1
        gone = call(reader, "GET", f"/api/runs/{ids['b']}")
        assert gone.status_code == 404
        assert call(tts_writer, "DELETE", f"/api/runs/{ids['c']}").status_code == 404
        assert call(writer, "DELETE", f"/api/runs/{ids['c']}").json()["deleted"] == [ids["c"]]

        events = call(reader, "GET", "/api/events", params={"project": "asr"}).json()["events"]
        token_id = writer.split("_")[1]
        assert {(e["run_id"], e["action"]) for e in events} >= {
            (ids["a"], "rename"), (ids["a"], "archive"), (ids["a"], "unarchive"),
            (ids["b"], "delete"), (ids["b-probe"], "delete"), (ids["c"], "delete")}
        assert all(e["actor"] == f"token:{token_id} (alice)" for e in events)
        of_tts = call(tts_writer, "GET", "/api/events").json()["events"]
        assert of_tts == []  # a tts token sees no asr changes
