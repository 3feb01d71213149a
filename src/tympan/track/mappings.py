"""``run.config`` and ``run.summary``: mappings whose changes are stored, never dropped.

People coming from W&B write ``run.config["lr"] = 3e-4``, ``run.config.update(...)`` and
``run.summary["best/wer"] = 0.12`` and expect the run to keep them. A plain dict would take
the assignment and store nothing, which is the worst outcome: the run looks right in the
script and wrong in the store. So ``run.config`` is a dict (JSON-ready, ``isinstance(...,
dict)``) whose every change, nested dicts and lists included, is validated and saved through
the run's transport like ``run.update_config``, and raises once the run has finished;
``run.summary`` is a read-out of what was logged whose assignments log the value (so it
shows in ``tympan runs`` and sorts like any metric).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tympan.errors import InvalidInputError
from tympan.track.validate import to_config

_MISSING = object()


class _SavedDict(dict):  # type: ignore[type-arg]
    """The dict methods that must go through ``__setitem__``/``update`` to be saved (dict's
    own C versions would change the dict without saving)."""

    def __ior__(self, other: Any) -> Any:  # type: ignore[override]
        self.update(other)
        return self

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class RunConfig(_SavedDict):
    """The run's config; setting, updating or deleting a key (at any depth) saves it.

    ``save(change)`` is handed each change: it raises when the run can no longer be
    changed, else applies ``change()`` and stores the result. Values are validated
    (JSON-ready) before anything is modified.
    """

    __slots__ = ("_save",)

    def __init__(self, data: Mapping[str, Any],
                 save: Callable[[Callable[[], Any]], Any]) -> None:
        super().__init__()
        self._save = save
        for key, value in data.items():
            dict.__setitem__(self, key, self._wrap(value))

    def _wrap(self, value: Any) -> Any:
        return _wrap(value, self._save)

    def _checked(self, items: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
        pairs = list(items)
        for key, _ in pairs:
            if not isinstance(key, str):
                raise InvalidInputError(f"config keys must be str, got {key!r}")
        return to_config(dict(pairs))

    def _set_all(self, values: dict[str, Any]) -> None:
        def change() -> None:
            for key, value in values.items():
                dict.__setitem__(self, key, self._wrap(value))

        self._save(change)

    def __setitem__(self, key: str, value: Any) -> None:
        self._set_all(self._checked([(key, value)]))

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Set each key as ``dict.update`` does (top-level keys replaced); saved once."""
        self._set_all(self._checked(dict(*args, **kwargs).items()))

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._save(lambda: dict.__delitem__(self, key))

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._save(lambda: dict.pop(self, key))

    def popitem(self) -> tuple[str, Any]:
        if not self:
            raise KeyError("popitem(): the config is empty")
        return self._save(lambda: dict.popitem(self))

    def clear(self) -> None:
        self._save(lambda: dict.clear(self))

    def replace_all(self, values: Mapping[str, Any]) -> None:
        """Make the config exactly ``values`` (validated here), then save."""
        checked = self._checked(values.items())

        def change() -> None:
            dict.clear(self)
            for key, value in checked.items():
                dict.__setitem__(self, key, self._wrap(value))

        self._save(change)

    def __reduce__(self) -> Any:  # copies and pickles are plain dicts, detached from the run
        return (dict, (to_config(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return to_config(self)


def _wrap(value: Any, save: Callable[[Callable[[], Any]], Any]) -> Any:
    """A checked config value as held by the run: dicts and lists that save their changes."""
    if isinstance(value, Mapping):
        return RunConfig(value, save)
    if isinstance(value, list):
        return ConfigList(value, save)
    return value


class ConfigList(list):  # type: ignore[type-arg]
    """A list inside ``run.config`` (``layers: [{dim: 256}, ...]``): appending, setting an
    item or changing a dict inside it saves the config, as a change to a nested dict does."""

    __slots__ = ("_save",)

    def __init__(self, items: Iterable[Any], save: Callable[[Callable[[], Any]], Any]) -> None:
        super().__init__(_wrap(item, save) for item in items)
        self._save = save

    def _checked(self, values: Iterable[Any]) -> list[Any]:
        return [_wrap(v, self._save) for v in to_config({"list": list(values)})["list"]]

    def __setitem__(self, index: Any, value: Any) -> None:
        new = self._checked(value) if isinstance(index, slice) else self._checked([value])[0]
        self._save(lambda: list.__setitem__(self, index, new))

    def __delitem__(self, index: Any) -> None:
        self[index]  # an IndexError before saving anything
        self._save(lambda: list.__delitem__(self, index))

    def append(self, value: Any) -> None:
        new = self._checked([value])[0]
        self._save(lambda: list.append(self, new))

    def extend(self, values: Iterable[Any]) -> None:
        new = self._checked(values)
        self._save(lambda: list.extend(self, new))

    def __iadd__(self, values: Iterable[Any]) -> ConfigList:  # type: ignore[override]
        self.extend(values)
        return self

    def __imul__(self, times: Any) -> ConfigList:  # type: ignore[override]
        self._save(lambda: list.__imul__(self, times))
        return self

    def insert(self, index: Any, value: Any) -> None:
        new = self._checked([value])[0]
        self._save(lambda: list.insert(self, index, new))

    def pop(self, index: Any = -1) -> Any:
        self[index]  # an IndexError before saving anything
        return self._save(lambda: list.pop(self, index))

    def remove(self, value: Any) -> None:
        self.index(value)  # a ValueError before saving anything
        self._save(lambda: list.remove(self, value))

    def clear(self) -> None:
        self._save(lambda: list.clear(self))

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._save(lambda: list.sort(self, *args, **kwargs))

    def reverse(self) -> None:
        self._save(lambda: list.reverse(self))

    def __reduce__(self) -> Any:  # copies and pickles are plain lists, detached from the run
        return (list, (to_config({"list": self})["list"],))

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return to_config({"list": self})["list"]


class RunSummary(_SavedDict):
    """Per-key last/min/max/count of what the run logged so far (a snapshot). Assigning
    ``summary[key] = value`` logs ``value`` at the run's current step and refreshes the key,
    so the value is stored and summarised like any metric; a key cannot be deleted."""

    __slots__ = ("_log", "_read")

    def __init__(self, data: Mapping[str, Any], log: Callable[[dict[str, Any]], None],
                 read: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__(data)
        self._log = log
        self._read = read

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        values = dict(*args, **kwargs)
        self._log(values)
        fresh = self._read()
        for key in values:
            dict.__setitem__(self, key, fresh[key])

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise InvalidInputError(
            "run.summary is computed from the points logged; a metric cannot be removed from "
            "it (log a new value instead, e.g. run.summary[key] = value)")

    __delitem__ = pop = popitem = clear = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))
