"""Model and model-version records, and the references that name a version.

A reference is ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME`` (the
latest version); the ``models:/`` prefix may be left out where only a model can be meant
(``NAME@ALIAS``, ``NAME/3``). ``lookup.resolve_run_id`` resolves a ``models:/`` URI to the run
that trained the version, which is why the syntax lives down here, next to the SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tympan.errors import InvalidInputError, ModelNotFoundError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

PREFIX = "models:/"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME (the latest version)"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a model name and at most one of a version number or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{PREFIX}{self.name}@{self.alias}"
        if self.version is not None:
            return f"{PREFIX}{self.name}/{self.version}"
        return f"{PREFIX}{self.name}"


def is_model_uri(text: str) -> bool:
    return isinstance(text, str) and text.strip().startswith(PREFIX)


def check_name(name: str) -> str:
    return _checked(name, _NAME, "model name", "1-200 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit (e.g. asr-digits)")


def check_alias(alias: str) -> str:
    return _checked(alias, _ALIAS, "alias", "1-100 letters, digits, '_' or '-', starting "
                    "with a letter (e.g. champion)")


def _checked(text: str, pattern: re.Pattern[str], what: str, rule: str) -> str:
    if not isinstance(text, str) or not pattern.fullmatch(text):
        raise InvalidInputError(f"{what} {text!r} is not valid: use {rule}")
    return text


def parse_ref(text: str) -> ModelRef:
    """``models:/asr@champion`` -> ModelRef("asr", alias="champion"), and the other forms."""
    raw = str(text).strip()
    body = raw.removeprefix(PREFIX)
    name, at, alias = body.partition("@")
    if at:
        return ModelRef(check_name(name), alias=check_alias(alias))
    name, slash, number = body.partition("/")
    if slash:
        if not number.isdigit() or int(number) < 1:
            raise InvalidInputError(f"{raw!r}: the version must be a number from 1 (use {_FORMS})")
        return ModelRef(check_name(name), version=int(number))
    if not name:
        raise InvalidInputError(f"{raw!r} names no model: use {_FORMS}")
    return ModelRef(check_name(name))


# -- models ---------------------------------------------------------------------------------

def ensure(conn: Connection, name: str, project_id: int, now: float, created_by: str,
           protected: list[str], description: str = "") -> Row:
    """The model called ``name``, created in ``project_id`` if it is new (races are safe)."""
    from tympan.store.schema import models
    from tympan.store.upsert import insert_for

    conn.execute(insert_for(conn, models).values(
        name=name, project_id=project_id, description=description, protected=protected,
        created_at=now, created_by=created_by).on_conflict_do_nothing())
    return get(conn, name)


def get(conn: Connection, name: str) -> Row | None:
    """The model row with its project's name as ``project``."""
    from sqlalchemy import select

    from tympan.store.schema import models, projects

    stmt = (select(models, projects.c.name.label("project"))
            .join(projects, projects.c.id == models.c.project_id)
            .where(models.c.name == name))
    return conn.execute(stmt).first()


def lock(conn: Connection, model_id: int) -> None:
    """Serialise version numbering on PostgreSQL (SQLite's BEGIN IMMEDIATE already does)."""
    from sqlalchemy import select

    from tympan.store.schema import models

    if conn.dialect.name == "postgresql":
        conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())


def listing(conn: Connection, project: str | None = None) -> list[Row]:
    """Every model (of ``project``) with its project name, its latest version number and
    when that version was registered, by name."""
    from sqlalchemy import func, select

    from tympan.store.schema import model_versions, models, projects

    latest = (select(model_versions.c.model_id, func.max(model_versions.c.version).label("latest"),
                     func.max(model_versions.c.created_at).label("updated_at"),
                     func.count().label("versions"))
              .group_by(model_versions.c.model_id).subquery())
    stmt = (select(models, projects.c.name.label("project"), latest.c.latest,
                   latest.c.updated_at, latest.c.versions)
            .join(projects, projects.c.id == models.c.project_id)
            .outerjoin(latest, latest.c.model_id == models.c.id)
            .order_by(models.c.name))
    if project is not None:
        stmt = stmt.where(projects.c.name == project)
    return list(conn.execute(stmt))


def set_protected(conn: Connection, model_id: int, protected: list[str]) -> None:
    from sqlalchemy import update

    from tympan.store.schema import models

    conn.execute(update(models).where(models.c.id == model_id).values(protected=protected))


# -- versions -------------------------------------------------------------------------------

def next_number(conn: Connection, model_id: int) -> int:
    from sqlalchemy import func, select

    from tympan.store.schema import model_versions

    current = conn.execute(select(func.max(model_versions.c.version))
                           .where(model_versions.c.model_id == model_id)).scalar()
    return (current or 0) + 1


def insert_version(conn: Connection, **fields: Any) -> int:
    from tympan.store.schema import model_versions

    result = conn.execute(model_versions.insert().values(**fields))
    return int(result.inserted_primary_key[0])


def _versions():
    from sqlalchemy import select

    from tympan.store.schema import model_versions, models, projects

    return (select(model_versions, models.c.name.label("model"),
                   projects.c.name.label("project"))
            .join(models, models.c.id == model_versions.c.model_id)
            .join(projects, projects.c.id == models.c.project_id))


def version(conn: Connection, model_id: int, number: int) -> Row | None:
    from tympan.store.schema import model_versions

    return conn.execute(_versions().where(model_versions.c.model_id == model_id,
                                          model_versions.c.version == number)).first()


def version_by_id(conn: Connection, version_id: int) -> Row | None:
    from tympan.store.schema import model_versions

    return conn.execute(_versions().where(model_versions.c.id == version_id)).first()


def versions(conn: Connection, model_id: int) -> list[Row]:
    """The model's versions, newest first."""
    from tympan.store.schema import model_versions

    return list(conn.execute(_versions().where(model_versions.c.model_id == model_id)
                             .order_by(model_versions.c.version.desc())))


def versions_of_run(conn: Connection, run_id: str) -> list[Row]:
    from tympan.store.schema import model_versions

    return list(conn.execute(_versions().where(model_versions.c.run_id == run_id)
                             .order_by(model_versions.c.created_at)))


def resolve(conn: Connection, ref: ModelRef) -> Row:
    """The version row ``ref`` names (one query when it exists), or ModelNotFoundError
    saying what exists instead."""
    from sqlalchemy import select

    from tympan.store.schema import model_aliases, model_versions, models

    stmt = _versions().where(models.c.name == ref.name)
    if ref.alias is not None:
        stmt = stmt.join(model_aliases, (model_aliases.c.version_id == model_versions.c.id)
                         & (model_aliases.c.alias == ref.alias))
    elif ref.version is not None:
        stmt = stmt.where(model_versions.c.version == ref.version)
    else:
        stmt = stmt.order_by(model_versions.c.version.desc()).limit(1)
    row = conn.execute(stmt).first()
    if row is not None:
        return row
    model = get(conn, ref.name)
    if model is None:
        raise ModelNotFoundError(f"no model {ref.name!r} in the registry: `tympan model list` "
                                 "shows the registered models")
    if ref.alias is not None:
        known = ", ".join(sorted(conn.execute(select(model_aliases.c.alias).where(
            model_aliases.c.model_id == model.id)).scalars())) or "none"
        raise ModelNotFoundError(f"model {ref.name!r} has no alias {ref.alias!r} (its "
                                 f"aliases: {known})")
    latest = next_number(conn, model.id) - 1
    have = f"it has versions 1 to {latest}" if latest else "it has no versions yet"
    asked = f"no version {ref.version}" if ref.version is not None else "no versions"
    raise ModelNotFoundError(f"model {ref.name!r} has {asked} ({have})")


def run_of(conn: Connection, text: str) -> str:
    """The id of the run that trained the version a ``models:/`` URI names."""
    return resolve(conn, parse_ref(text)).run_id
