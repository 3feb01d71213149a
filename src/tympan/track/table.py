"""Tables: rows under named columns, checked in the caller's thread and stored as JSON.

Accepted: a pandas DataFrame (its index is not stored: ``reset_index()`` keeps it), rows
(lists or tuples, or a 2-D numpy array) with ``columns=``, a list of dicts (columns in the
order they first appear; a missing cell is null), or a dict of column -> values.

Cells are None, bools, numbers, strings, dates and times (stored as ISO 8601 text), or lists
and dicts of those (stored as JSON). JSON has no NaN or infinity, so non-finite numbers are
stored as the strings "NaN", "Infinity" and "-Infinity" (as the JSON API writes them) and
each column's type is kept, so reading a table back gives the floats again.

The stored file: ``{"columns": [...], "types": [...], "rows": [[...], ...]}`` where a type
is "number", "string", "bool", "json" (lists, dicts, mixed) or "empty" (only nulls).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tympan.errors import TableError

MAX_ROWS = 200_000  # beyond this a table is a data set: log_artifact it
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class Table:
    """A logged table as read back."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    key: str = ""
    step: int = 0
    caption: str | None = None

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        from tympan.errors import MissingDependencyError

        try:
            import pandas
        except ImportError:
            raise MissingDependencyError(
                "Table.to_pandas() needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.rows, columns=self.columns)

    def column(self, name: str) -> list[Any]:
        """One column's values, top to bottom."""
        if name not in self.columns:
            raise TableError(f"table {self.key!r} has no column {name!r} "
                             f"(its columns: {', '.join(self.columns)})")
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def prepare(key: str, data: Any, columns: Sequence[Any] | None = None) -> Table:
    """Check ``data`` and copy it into plain Python values now."""
    names, rows = _columns_and_rows(key, data, columns)
    if len(rows) > MAX_ROWS:
        raise TableError(f"table {key!r} has {len(rows)} rows, more than {MAX_ROWS}: log a "
                         "sample of it, or the whole as a file with log_artifact()")
    names = _check_names(key, names)
    width = len(names)
    cells: list[list[Any]] = []
    for r, row in enumerate(rows):
        if len(row) != width:
            raise TableError(f"table {key!r}: row {r} has {len(row)} cells, but there are "
                             f"{width} columns ({', '.join(names)})")
        cells.append([_cell(key, names[c], r, v) for c, v in enumerate(row)])
    types = [_column_type([row[c] for row in cells]) for c in range(width)]
    return Table(names, types, cells, key=key)


def encode(table: Table) -> bytes:
    rows = [[_finite(v) for v in row] for row in table.rows]
    return json.dumps({"columns": table.columns, "types": table.types, "rows": rows},
                      separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def decode(data: bytes, key: str = "", step: int = 0, caption: str | None = None) -> Table:
    """A stored table file back as a :class:`Table` (non-finite numbers as floats again)."""
    try:
        parsed = json.loads(data)
        columns, types, rows = parsed["columns"], parsed["types"], parsed["rows"]
    except (ValueError, TypeError, KeyError):
        raise TableError(f"table {key!r}: the stored file is not a tympan table") from None
    if not (isinstance(columns, list) and isinstance(types, list) and isinstance(rows, list)
            and len(columns) == len(types)
            and all(isinstance(row, list) and len(row) == len(columns) for row in rows)):
        raise TableError(f"table {key!r}: the stored file is not a tympan table")
    numeric = [i for i, t in enumerate(types) if t == "number"]
    for row in rows:
        for i in numeric:
            if isinstance(row[i], str):
                row[i] = _NON_FINITE.get(row[i], row[i])
    return Table(columns, types, rows, key=key, step=step, caption=caption)


def info(table: Table) -> dict[str, Any]:
    """What the media record keeps: the columns, their types and the number of rows."""
    return {"columns": table.columns, "types": table.types, "rows": len(table.rows)}


def _columns_and_rows(key: str, data: Any,
                      columns: Sequence[Any] | None) -> tuple[list[Any], list[Sequence[Any]]]:
    if hasattr(data, "columns") and hasattr(data, "itertuples"):  # a pandas DataFrame
        if columns is not None:
            raise TableError(f"table {key!r}: a DataFrame names its own columns; select "
                             "them with df[[...]] instead of columns=")
        return list(data.columns), data.to_numpy(dtype=object).tolist()
    if isinstance(data, Mapping):  # column -> values
        if columns is not None:
            raise TableError(f"table {key!r}: a dict of columns names its own columns; "
                             "drop columns=")
        names = list(data)
        values = [list(v) if not isinstance(v, str | bytes) and hasattr(v, "__iter__")
                  else _not_a_column(key, n, v) for n, v in data.items()]
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            sizes = ", ".join(f"{n}: {len(v)}" for n, v in zip(names, values, strict=True))
            raise TableError(f"table {key!r}: columns have different lengths ({sizes})")
        return names, [list(row) for row in zip(*values, strict=True)]
    if hasattr(data, "tolist") and getattr(data, "ndim", None) == 2:  # numpy, torch
        data = data.tolist()
    if isinstance(data, str | bytes) or not isinstance(data, Sequence):
        raise TableError(
            f"table {key!r}: expected a pandas DataFrame, a list of rows with columns=, a list "
            f"of dicts or a dict of columns, got {type(data).__name__}"
        )
    rows = list(data)
    if rows and all(isinstance(row, Mapping) for row in rows):
        if columns is not None:
            raise TableError(f"table {key!r}: rows given as dicts name their own columns; "
                             "drop columns=")
        names = list(dict.fromkeys(k for row in rows for k in row))
        return names, [[row.get(n) for n in names] for row in rows]
    for r, row in enumerate(rows):
        if isinstance(row, str | bytes | Mapping) or not isinstance(row, Sequence):
            raise TableError(f"table {key!r}: row {r} is a {type(row).__name__}, not a list "
                             "or tuple of cells")
    if columns is None:
        raise TableError(f"table {key!r}: rows need column names: pass columns=[...]")
    return list(columns), rows


def _not_a_column(key: str, name: Any, value: Any) -> list[Any]:
    raise TableError(f"table {key!r}: column {name!r} must be a list of values, got "
                     f"{type(value).__name__}")


def _check_names(key: str, names: list[Any]) -> list[str]:
    if not names:
        raise TableError(f"table {key!r} has no columns")
    out = [str(n) for n in names]
    for name in out:
        if not name.strip() or len(name) > 200 or "\x00" in name:
            raise TableError(f"table {key!r}: column name {name!r} must be 1-200 characters, "
                             "without NUL")
    repeated = sorted({n for n in out if out.count(n) > 1})
    if repeated:
        raise TableError(f"table {key!r}: column names must differ; repeated: "
                         f"{', '.join(repeated)}")
    return out


def _cell(key: str, column: str, row: int, value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    item = getattr(value, "item", None)  # numpy scalars, 0-d arrays and tensors
    if item is not None and getattr(value, "ndim", 0) == 0 and not _is_time(value):
        return _cell(key, column, row, item(), depth)
    if _is_missing(value):
        return None
    if _is_time(value):
        return value.isoformat()
    if depth < 8:
        if isinstance(value, Mapping):
            return {str(k): _cell(key, column, row, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_cell(key, column, row, v, depth + 1) for v in value]
        if hasattr(value, "tolist"):  # numpy arrays in a cell
            return _cell(key, column, row, value.tolist(), depth + 1)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _cell(key, column, row, dataclasses.asdict(value), depth + 1)
    raise TableError(
        f"table {key!r}: the cell in column {column!r}, row {row} is a "
        f"{type(value).__name__}, which a table cannot hold: use numbers, strings, "
        "booleans, dates, or lists and dicts of those"
    )


def _is_time(value: Any) -> bool:
    return isinstance(value, dt.date | dt.time) or (
        hasattr(value, "isoformat") and type(value).__module__.startswith(("pandas", "numpy")))


def _is_missing(value: Any) -> bool:
    """pandas' NA and NaT."""
    return type(value).__name__ in ("NAType", "NaTType")


def _column_type(values: list[Any]) -> str:
    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int | float):
            kinds.add("number")
        elif isinstance(v, str):
            kinds.add("string")
        else:
            kinds.add("json")
    if not kinds:
        return "empty"
    return kinds.pop() if len(kinds) == 1 else "json"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
