"""The store refuses what it cannot read, names the problem, and its migrations match schema.py."""

from __future__ import annotations

import sqlite3
import warnings

import pytest
from sqlalchemy import text

import tympan
from tympan.errors import (
    SchemaVersionError,
    StoreCorruptError,
    StoreNotFoundError,
    StoreUnavailableError,
    StoreURLError,
)
from tympan.store import open_store, upgrade_store, versioning
from tympan.store.schema import metadata
from tympan.track.stores import close_stores


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("mysql://root@localhost/x", "unsupported store URL"),
        ("http://example.org", "unsupported store URL"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
        ("   ", "empty store location"),
    ],
)
def test_bad_store_urls(where: str, message: str) -> None:
    with pytest.raises(StoreURLError, match=message):
        open_store(where)


def test_passwords_never_appear_in_messages() -> None:
    with pytest.raises(StoreURLError) as info:
        open_store("mysql://me:hunter2@db/x")
    assert "hunter2" not in str(info.value)


def test_missing_store_is_not_created_by_readers(tmp_path) -> None:
    with pytest.raises(StoreNotFoundError, match="no tympan store"):
        open_store(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(StoreNotFoundError):
        tympan.load_run("abc", store=str(tmp_path / "nothing"))


def test_corrupt_and_foreign_files(tmp_path) -> None:
    junk = tmp_path / "junk" / "tympan.db"
    junk.parent.mkdir()
    junk.write_bytes(b"\x00garbage" * 500)
    before = junk.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a SQLite database"):
        open_store(tmp_path / "junk")
    assert junk.read_bytes() == before  # never "repaired" into an empty store
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE runs (x)")
    with pytest.raises(StoreCorruptError, match="no schema revision"):
        open_store(foreign)
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreCorruptError, match="is a directory"):
        open_store(tmp_path / "dir.db")


def test_truncated_database_is_reported_not_misread(tmp_path) -> None:
    store = tmp_path / "s"
    run = tympan.init(project="p", store=str(store))
    run.log({"x": 1.0})
    run.finish()
    from tympan.track.stores import close_stores

    close_stores()
    db = store / "tympan.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\xff" * 4000 + data[4100:])  # smash the schema page
    with pytest.raises((StoreCorruptError, StoreUnavailableError)):
        open_store(store)


def test_unreachable_postgres_is_one_clear_error() -> None:
    with pytest.raises(StoreUnavailableError, match="cannot use the store at .*127.0.0.1:1/"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_newer_and_older_schemas_are_refused(store_url: str, monkeypatch) -> None:
    store = open_store(store_url, create=True)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(SchemaVersionError, match="newer tympan"):
        open_store(store_url)
    with pytest.raises(SchemaVersionError, match="newer than this tympan"), open_store(
        store_url, check_schema=False
    ) as unchecked:
        versioning.upgrade(unchecked.engine)
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{versioning.HEAD}'"))
    store.close()
    # Pretend this tympan shipped one more revision: the HEAD store is now "older".
    following = f"{int(versioning.HEAD) + 1:04d}"
    monkeypatch.setattr(versioning, "HEAD", following)
    monkeypatch.setattr(versioning, "KNOWN", (*versioning.KNOWN, following))
    with pytest.raises(SchemaVersionError, match=f"older than this tympan's {following}: run "
                                                 "`tympan --store .* db upgrade`"):
        open_store(store_url)


def test_migrations_build_exactly_the_declared_schema(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(store_url, create=True)
    with store.engine.connect() as conn, warnings.catch_warnings():
        # SQLAlchemy does not reflect SQLite's member-order index (0012, an expression)
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based "
                                          "index ix_runs_member_order")
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        dialect = conn.dialect.name
    store.close()
    # PostgreSQL's JSONB copy of the config (0010) is left out of the shared table, which
    # SQLite stores lack: it is read by name in store/run_where.py
    extra = [d for d in diffs if d[0] == "remove_column" and d[3].name == "config_jsonb"]
    assert [d[2] for d in extra] == (["runs"] if dialect == "postgresql" else [])
    assert [d for d in diffs if d not in extra] == []


def test_head_constant_matches_the_migration_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(versioning.MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [versioning.HEAD]
    assert [s.revision for s in reversed(list(scripts.walk_revisions()))] == list(versioning.KNOWN)


def test_sqlite_store_uses_wal_and_big_pages(tmp_path) -> None:
    open_store(tmp_path / "s", create=True).close()
    with sqlite3.connect(tmp_path / "s" / "tympan.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 65536


def test_artifact_root_is_recorded_in_the_store(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TYMPAN_ARTIFACTS", str(tmp_path / "shared-blobs"))
    store = open_store(tmp_path / "s", create=True)
    assert store.blobs.root == str(tmp_path / "shared-blobs")
    store.close()
    monkeypatch.delenv("TYMPAN_ARTIFACTS")
    with open_store(tmp_path / "s") as reopened:
        assert reopened.blobs.root == str(tmp_path / "shared-blobs")


def test_bad_settings_name_the_variable(tmp_path, monkeypatch) -> None:
    from tympan.errors import SettingsError

    monkeypatch.setenv("TYMPAN_BUSY_TIMEOUT", "soon")
    with pytest.raises(SettingsError, match="TYMPAN_BUSY_TIMEOUT='soon'"):
        open_store(tmp_path / "s", create=True)


def test_a_0001_store_upgrades_to_head_keeping_its_runs(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    run = tympan.init(project="old", store=store_url, config={"a": 1})
    run.log({"loss": 0.5}, step=1)
    run.finish()
    close_stores()
    store = open_store(store_url)
    with store.engine.begin() as conn:  # back to the schema of the first release
        config = Config()
        config.set_main_option("script_location", str(versioning.MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    store.close()
    with pytest.raises(SchemaVersionError, match="`tympan --store .* db upgrade`"):
        open_store(store_url)
    assert upgrade_store(store_url)[:2] == ("0001", versioning.HEAD)
    with open_store(store_url) as upgraded, upgraded.read() as conn:
        assert {"studies", "trials", "findings", "tokens", "media"} <= set(
            inspect(conn).get_table_names())
    assert tympan.load_run(run.id, store=store_url).summary["loss"].last == 0.5
