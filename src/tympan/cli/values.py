"""Option values that need no pydantic: strings, integers, numbers and lists of strings.

Typer (0.2x) checks every parameter's value with a pydantic ``TypeAdapter`` built when the
value arrives, even an option left at its default; importing pydantic and building a dozen
adapters is a third of ``tympan runs``' start-up. :func:`plain_values` gives each plain
parameter a checker that takes a well-formed value as is and hands anything else (a bad
integer, a number out of range, a value from an environment variable) to typer's own
pydantic checker, so accepted values and error messages stay exactly typer's. Parameters of
other types (paths, choices, files), and typer versions without this hook, keep typer's.
"""

from __future__ import annotations

import re
from typing import Any

INTEGER = re.compile(r"-?[1-9][0-9]*|0")  # what int() and pydantic both read the same way
NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ELSEWHERE = object()  # "not plainly well-formed: ask typer"


class PlainValue:
    """Stands in for typer's runtime checker of one plain parameter (see module docstring)."""

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self.kind = _kind(descriptor)
        info = descriptor.parameter_info
        self.low, self.high = info.min, info.max

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:  # as typer does, before any type check
            return () if multiple else None
        plain = self._plain(value)
        if plain is not _ELSEWHERE:
            return plain
        from typer._coercion import build_runtime_param  # pydantic: only for odd values

        return build_runtime_param(self.descriptor).coerce(value, param=param, ctx=ctx)

    def _plain(self, value: Any) -> Any:
        if self.kind == "str":
            return value if isinstance(value, str) else _ELSEWHERE
        if self.kind == "list[str]":
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return list(value)
            return _ELSEWHERE
        if self.kind == "bool":
            return value if isinstance(value, bool) else _ELSEWHERE
        if isinstance(value, bool):
            return _ELSEWHERE
        if self.kind == "int":
            if isinstance(value, str) and INTEGER.fullmatch(value):
                value = int(value)
            elif not isinstance(value, int):
                return _ELSEWHERE
        elif self.kind == "float":
            if not (isinstance(value, int | float)
                    or (isinstance(value, str) and NUMBER.fullmatch(value))):
                return _ELSEWHERE
            value = float(value)
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            return _ELSEWHERE  # typer says what the range is
        return value


def _kind(descriptor: Any) -> str | None:
    """The kind of a plain parameter (str, list[str], bool, int, float), else None."""
    info = descriptor.parameter_info
    if (info.parser is not None or descriptor.is_path or descriptor.is_choice
            or descriptor.is_file or getattr(info, "clamp", False)):
        return None
    annotation = descriptor.annotation
    if annotation == list[str]:
        return "list[str]"
    for kind in (str, bool, int, float):
        if annotation is kind:
            return kind.__name__
    return None


def plain_values(command: Any, subcommands: bool = True) -> Any:
    """``command`` (and, with ``subcommands``, those of a group) with a :class:`PlainValue`
    checker on each plain parameter typer has not checked yet, its ``--help`` flag included
    (made on first use); returns ``command``."""
    for param in getattr(command, "params", ()):
        _plain(param)
    help_option = getattr(command, "get_help_option", None)
    if help_option is not None:
        def get_help_option(ctx: Any) -> Any:
            return _plain(help_option(ctx))

        command.get_help_option = get_help_option
    for sub in (getattr(command, "commands", None) or {}).values() if subcommands else ():
        plain_values(sub)
    return command


def _plain(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and getattr(param, "_runtime_param", False) is None \
            and _kind(descriptor) is not None:
        param._runtime_param = PlainValue(descriptor)
    return param
