"""Typed run configs: a dataclass, a YAML file of defaults, and ``key=value`` overrides.

Recipes (and later studies) describe their settings as a dataclass; ``load_config`` fills it
from a YAML mapping and command-line overrides such as ``encoder=gru seed=3``, converting
each value to the field's type (int, float, bool, str, ``Literal[...]`` choices, optional
``None``) and raising ``ConfigError`` with the file or override that was wrong.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from tympan.errors import ConfigError

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: Sequence[str] = ()) -> T:
    """An instance of the dataclass ``cls`` from the YAML mapping at ``path`` (if any),
    then ``key=value`` overrides, each converted to its field's type."""
    values: dict[str, Any] = {}
    if path is not None:
        for key, value in _read_mapping(path).items():
            values[str(key)] = _typed(cls, str(key), config_text(value), str(path))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value (e.g. encoder=gru)")
        values[key.strip()] = _typed(cls, key.strip(), text.strip(), "override")
    return cls(**values)


def _read_mapping(path: str | Path) -> dict[Any, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    for key, value in data.items():
        if isinstance(value, dict | list):
            raise ConfigError(f"{path}: {key} must be a single value, got {value!r}")
    return data


def config_text(value: Any) -> str:
    """A config value as typed on a command line (``True`` -> ``true``, ``None`` -> ``null``).

    YAML values go through it so files and overrides share one parser; ``tympan runs
    --where`` and the CLI's tables use it too."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A stored run config with dotted keys: ``{"model": {"encoder": "gru"}}`` ->
    ``{"model.encoder": "gru"}`` (how filters, tables and diffs name config keys)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _typed(cls: type, key: str, text: str, where: str) -> Any:
    """``text`` converted to the type of ``cls.<key>``, or a ConfigError saying why not."""
    hints = typing.get_type_hints(cls)
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{where}: unknown config key {key!r}; known keys: {known}")
    hint = hints[key]
    text = text.strip("\"'")
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in kinds and text.lower() in ("null", "none", "~", ""):
        return None
    kind = next(k for k in kinds if k is not type(None))
    if typing.get_origin(kind) is Literal:
        if text not in typing.get_args(kind):
            choices = " | ".join(typing.get_args(kind))
            raise ConfigError(f"{where}: {key}={text!r} is not one of {choices}")
        return text
    try:
        if kind is bool:
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        return kind(text)
    except (KeyError, ValueError):
        name = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, kind)
        raise ConfigError(f"{where}: {key}={text!r} is not {name}") from None


def parse_command_line(cls: type[T], base_config: str | Path, argv: Sequence[str] | None = None,
                       description: str = "") -> T:
    """A recipe's command line, ``[--config FILE] [key=value ...]``, as its typed config.

    ``--config`` defaults to ``base_config``. A bad file or override exits with status 2 and
    a usage message naming what was wrong, before anything is trained."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=str(base_config),
                        help=f"YAML file of key: value defaults (default: {base_config})")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. seed=3")
    args = parser.parse_args(argv)
    try:
        return load_config(cls, args.config, args.overrides)
    except (ConfigError, OSError) as exc:
        parser.error(str(exc))
