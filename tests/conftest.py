"""Shared fixtures: real SQLite stores in tmp dirs and real PostgreSQL databases.

PostgreSQL tests run against the server at TYMPAN_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/postgres). Where none is reachable they skip with the
reason, unless TYMPAN_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The stock MLflow client's own venv (`make mlflow-venv`), for tests that drive it for real.
MLFLOW_PYTHON = Path(__file__).resolve().parents[1] / ".venv-mlflow" / "bin" / "python"
PG_ADMIN = os.environ.get("TYMPAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_state: dict[str, object] = {}


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)


def _pg_available() -> str | None:
    """None if PostgreSQL is usable, else why not."""
    if "error" not in _pg_state:
        try:
            with _pg_admin() as conn:
                conn.execute("SELECT 1")
            _pg_state["error"] = None
        except Exception as exc:  # any failure to connect means: no PostgreSQL here
            _pg_state["error"] = f"PostgreSQL not reachable at {PG_ADMIN}: {exc}"
    return _pg_state["error"]  # type: ignore[return-value]


def _pg_url(database: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


def require_postgres() -> None:
    reason = _pg_available()
    if reason is None:
        return
    if os.environ.get("TYMPAN_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (TYMPAN_REQUIRE_POSTGRES=1: these tests must run)")
    pytest.skip(reason)


@contextmanager
def fresh_pg_database(prefix: str = "tympan_test") -> Iterator[str]:
    """A new, empty PostgreSQL database's URL, dropped afterwards (also for benchmarks)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        from tympan.track.stores import close_stores

        close_stores()
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards); yields its URL."""
    require_postgres()
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A store location on each backend: the same test runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "store")
    return request.getfixturevalue("pg_database")


@pytest.fixture(scope="session", autouse=True)
def _no_background_recording() -> Iterator[None]:
    """Background samples and captured prints would add keys and artifacts to the runs of
    every test, module fixtures included; the tests of those features turn them on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TYMPAN_SYSTEM_METRICS", "0")
        patch.setenv("TYMPAN_CONSOLE", "0")
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test reads the developer's TYMPAN_* settings or writes ./.tympan by accident."""
    for name in list(os.environ):
        if name.startswith("TYMPAN_") and name not in {"TYMPAN_REQUIRE_POSTGRES", "TYMPAN_TEST_PG"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("TYMPAN_STORE", str(tmp_path / "default-store"))
    monkeypatch.setenv("TYMPAN_SPOOL_DIR", str(tmp_path / "spool"))  # never ~/.cache
    monkeypatch.setenv("TYMPAN_SQL_CACHE", str(tmp_path / "sql"))
    monkeypatch.setenv("TYMPAN_CAPTURE_ENV", "0")
    monkeypatch.setenv("TYMPAN_SYSTEM_METRICS", "0")  # see _no_background_recording
    monkeypatch.setenv("TYMPAN_CONSOLE", "0")
    # A terminal's width (pytest-xdist's workers set COLUMNS=80) would fold the CLI's tables;
    # the tests read them as they reach a pipe.
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(scope="session")
def mlflow_python() -> str:
    """MLFLOW_PYTHON; missing, the test fails under CI and skips elsewhere, naming the fix."""
    if not MLFLOW_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{MLFLOW_PYTHON} is missing: `make mlflow-venv` makes it")
        pytest.skip(f"{MLFLOW_PYTHON} is missing: run `make mlflow-venv`")
    return str(MLFLOW_PYTHON)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test marked slow run first. `make test` hands whole modules to its two
    workers in this order (``--dist loadfile --no-loadscope-reorder``): xdist's own order,
    most tests first, left the few-test modules that train models or start Ray to the end,
    where one worker ran them while the other had finished."""
    slow = {item.module for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.module not in slow)  # stable: each module keeps its order
