"""No message, log line or API answer carries a URL's credentials (issue 11, item 3).

``tympan.store.location.redact`` is the one function every store URL, artifact root and
server URL goes through before it reaches text; these tests check it on its own, then the
places a URL used to leak: not-found and unreachable-store messages (a real PostgreSQL URL
with a password in the userinfo and in ``?password=``), the CLI's one-line errors, a remote
store that cannot be reached, the environment a run records (argv, TYMPAN_STORE) and serves.
"""

from __future__ import annotations

import json
import sys

import pytest

import tympan
from tympan.cli.app import main
from tympan.errors import TympanError
from tympan.store.location import redact
from tympan.track.stores import close_stores

SECRETS = ("hunter2", "hunter3", "hunter4", "AKIA-SECRET", "ghp_abc123", "sig-xyz", "tok-9")


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql+psycopg://me:hunter2@db:5432/tympan",
     "postgresql+psycopg://me:***@db:5432/tympan"),
    ("postgresql+psycopg://me@db/tympan?password=hunter3&sslmode=require",
     "postgresql+psycopg://me@db/tympan?password=***&sslmode=require"),
    ("postgresql://me:hun/ter?2@db/t", "postgresql://me:***@db/t"),  # unescaped / and ?
    ("postgresql://me:p%40ss@db/t?PassWord=x&pass%77ord=y&sslpassword=z",
     "postgresql://me:***@db/t?PassWord=***&pass%77ord=***&sslpassword=***"),
    ("https://ghp_abc123@tympan.lab.example", "https://***@tympan.lab.example"),
    ("http://user:tok-9@127.0.0.1:8787/", "http://***@127.0.0.1:8787/"),
    ("s3://AKIA:AKIA-SECRET@bucket/tympan", "s3://AKIA:***@bucket/tympan"),
    ("https://b.s3.amazonaws.com/x?X-Amz-Signature=sig-xyz&X-Amz-Credential=c&v=1",
     "https://b.s3.amazonaws.com/x?X-Amz-Signature=***&X-Amz-Credential=***&v=1"),
    ("http://127.0.0.1:8787/?token=tok-9", "http://127.0.0.1:8787/?token=***"),
    ("ssh://git@github.com/a/b.git", "ssh://git@github.com/a/b.git"),
    ("ssh://git:pw@github.com:2222/a/b.git", "ssh://git:***@github.com:2222/a/b.git"),
    ("s3://bucket/model@v1/x", "s3://bucket/model@v1/x"),  # an @ in a path is no userinfo
    ("https://h/x?q=a@b&api_key=k", "https://h/x?q=a@b&api_key=***"),
    ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ("/srv/runs/tympan.db", "/srv/runs/tympan.db"),
    ("cannot use the store at postgresql://me:hunter2@db/t: timeout; "
     "'https://x:hunter4@h' too",
     "cannot use the store at postgresql://me:***@db/t: timeout; 'https://***@h' too"),
])
def test_redact_masks_every_form_of_credential(text: str, expected: str) -> None:
    assert redact(text) == expected


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_store_messages_never_carry_the_url_credentials(pg_database: str, capsys) -> None:
    # trust auth on the test server: the passwords are sent and ignored
    user, rest = pg_database.split("://", 1)[1].split("@", 1)
    url = f"postgresql+psycopg://{user}:hunter2@{rest}?password=hunter3"
    run = tympan.init(project="p", store=url, config={"lr": 1})
    run.finish()
    close_stores()
    with pytest.raises(TympanError) as missing:
        tympan.load_run("zzzzzz", store=url)
    assert "zzzzzz" in str(missing.value) and not _leaks(str(missing.value)), missing.value
    code = main(["--store", url, "show", "zzzzzz"])
    err = capsys.readouterr().err
    assert code == 1 and "zzzzzz" in err and not _leaks(err), err
    unreachable = url.replace(rest.split("/")[0], "127.0.0.1:1", 1)
    with pytest.raises(TympanError) as down:
        tympan.load_run("zzzzzz", store=unreachable)
    assert "127.0.0.1:1" in str(down.value) and not _leaks(str(down.value)), down.value
    code = main(["--store", unreachable, "runs"])
    err = capsys.readouterr().err
    assert code == 1 and not _leaks(err), err
    close_stores()


def test_an_unreachable_server_is_named_without_its_credentials() -> None:
    with pytest.raises(TympanError) as down:
        tympan.init(project="p", store="http://user:tok-9@127.0.0.1:1/?token=tok-9")
    assert "127.0.0.1:1" in str(down.value) and not _leaks(str(down.value)), down.value
    close_stores()


def test_the_recorded_environment_keeps_no_url_credentials(tmp_path, monkeypatch) -> None:
    where = str(tmp_path / "store")
    tympan.init(project="p", store=where).finish()  # the store exists: its artifact root too
    monkeypatch.setenv("TYMPAN_CAPTURE_ENV", "1")
    monkeypatch.setenv("TYMPAN_ARTIFACTS", "s3://AKIA:AKIA-SECRET@bucket/x")
    monkeypatch.setattr(sys, "argv", ["train.py", "--store",
                                      "postgresql://me:hunter2@db/t?password=hunter3",
                                      "--push=https://ghp_abc123@github.com/a/b"])
    with tympan.init(project="p", store=where) as run:
        pass
    close_stores()
    monkeypatch.delenv("TYMPAN_ARTIFACTS")
    environment = tympan.load_run(run.id, store=where).environment()
    text = json.dumps([environment["command"], environment["env_vars"]])
    assert environment["command"]["argv"][0] == "train.py"
    assert "db/t" in text and "s3://AKIA:***@bucket/x" in text and not _leaks(text), text
    close_stores()
