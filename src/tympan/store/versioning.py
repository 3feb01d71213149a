"""Schema revisions: refuse a store whose schema this tympan does not speak; upgrade on demand.

The check reads ``alembic_version`` with plain SQL so opening a store does not import Alembic;
``HEAD`` must equal Alembic's head revision (a test keeps them in step).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tympan.errors import SchemaVersionError, StoreCorruptError
from tympan.store import statements
from tympan.store.location import MASK
from tympan.store.sqlite_reader import SqliteReader

if TYPE_CHECKING:
    from sqlalchemy import Engine

HEAD = "0012"
# every revision ever shipped, oldest first
KNOWN = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008",
         "0009", "0010", "0011", "0012")
MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(engine: Engine) -> str | None:
    """The store's revision, or None for an empty database."""
    with engine.connect() as conn:
        return revision_of(conn)


def revision_of(conn: Any) -> str | None:
    """:func:`current_revision` on an open connection (SQLAlchemy's or a SqliteReader)."""
    if isinstance(conn, SqliteReader):
        tables = set(statements.scalars(conn, _sqlite_tables))
    else:
        from sqlalchemy import inspect

        tables = set(inspect(conn).get_table_names())
    if "alembic_version" not in tables:
        if tables & {"runs", "projects"}:
            raise StoreCorruptError(
                "the database has tympan-like tables but no schema revision; it was not "
                "created by tympan or was damaged"
            )
        return None
    return statements.scalar(conn, _revision)


def _sqlite_tables() -> Any:
    from sqlalchemy import column, select, table

    return select(column("name")).select_from(table("sqlite_master")).where(
        column("type") == "table")


def _revision() -> Any:
    from sqlalchemy import column, select, table

    return select(column("version_num")).select_from(table("alembic_version"))


def check(engine: Engine, where: str) -> str | None:
    """Raise SchemaVersionError unless the store is at HEAD (None means: empty, create it)."""
    return checked(current_revision(engine), where)


def checked(revision: str | None, where: str) -> str | None:
    """``revision``, unless it is not HEAD: then SchemaVersionError (None: an empty store)."""
    if revision is None or revision == HEAD:
        return revision
    if revision in KNOWN:
        raise SchemaVersionError(
            f"the store at {where} has schema revision {revision}, older than this tympan's "
            f"{HEAD}: {upgrade_hint(where)} (back it up first if it matters)"
        )
    raise SchemaVersionError(
        f"the store at {where} has schema revision {revision}, which this tympan "
        f"(schema {HEAD}) does not know: it was written by a newer tympan; upgrade tympan"
    )


def upgrade_hint(where: str) -> str:
    """How to upgrade the store at ``where``: ``--store`` is a global option, so it comes
    before the subcommand; a password hidden in ``where`` must be filled in."""
    hint = f"run `tympan --store {shlex.quote(where)} db upgrade`"
    return hint + (f" with the password in place of {MASK}" if MASK in where else "")


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Migrate the store to ``target``; returns (revision before, revision after)."""
    from alembic import command
    from alembic.config import Config

    before = current_revision(engine)
    if before is not None and before not in KNOWN:
        raise SchemaVersionError(
            f"schema revision {before} is newer than this tympan ({HEAD}): upgrade tympan"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, target)
    return before, current_revision(engine) or ""
