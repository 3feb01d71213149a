"""How the CLI shows things: times, durations, sizes, numbers, statuses, tables and JSON.

Every user-supplied string goes into a ``rich.text.Text``, never into markup, so a tag or a
config value like ``[red]`` is shown as typed. rich is imported by the functions that draw,
so a command module can import this one and `tympan --help` still loads no rich.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tympan.config import config_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

STATUS_STYLES = {"running": "cyan", "finished": "green", "failed": "bold red",
                 "crashed": "magenta", "timed_out": "bold red"}
MISSING = "-"
PIPE_WIDTH = 200  # columns of a table written to a pipe or file: rows stay whole for grep


def console() -> Console:
    """A console on the current sys.stdout (made per command: tests swap sys.stdout); no
    emoji codes, so ``:x:`` in a header or a run's name prints as typed."""
    from rich.console import Console

    out = Console(highlight=False, emoji=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    return out


def panel(body: Any, title: str, style: str = "") -> Panel:
    """A titled box around ``body``, as wide as its content."""
    from rich.panel import Panel

    return Panel(body, title=title, title_align="left", border_style=style, expand=False)


def print_json(data: Any) -> None:
    """Standard JSON on stdout (non-finite floats as "NaN"/"Infinity"/"-Infinity")."""
    from tympan.records.export import json_safe

    sys.stdout.write(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def text(value: Any, style: str = "") -> Text:
    from rich.text import Text

    if value is None:
        return Text(MISSING, style="dim")
    return Text(value if isinstance(value, str) else config_text(value), style=style)


def status(value: str) -> Text:
    from rich.text import Text

    return Text(value, style=STATUS_STYLES.get(value, ""))


def local_time(timestamp: float | None, seconds: bool = False) -> str:
    """A timestamp in local time: ``2024-05-01 14:03:07``."""
    if timestamp is None:
        return MISSING
    return datetime.fromtimestamp(timestamp).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )


def short_time(timestamp: float | None) -> str:
    """``May 01 14:03`` in local time this year, ``2023-05-01`` before."""
    if timestamp is None:
        return MISSING
    when = datetime.fromtimestamp(timestamp)
    return when.strftime("%b %d %H:%M" if when.year == datetime.now().year else "%Y-%m-%d")


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.5s``, ``3m 07s``, ``2h 05m``, ``3d 4h``."""
    if seconds is None:
        return MISSING
    if seconds < 59.95:  # what would print as 60.0s is 1m 00s
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def size(n_bytes: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``20.0 MiB``."""
    if n_bytes is None:
        return MISSING
    if n_bytes < 1024:
        return f"{n_bytes} B"
    value = n_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def number(value: float | int | None) -> str:
    """A metric value in at most 6 significant digits; ``nan``, ``inf``, ``-inf`` as such."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def signed(value: float | None, percent: bool = False) -> str:
    if value is None:
        return MISSING
    return f"{value * 100:+.2f}%" if percent else f"{value:+.6g}"


def with_step(value: float | None, step: int | None) -> str:
    return MISSING if value is None else f"{number(value)} (step {step})"


def key_value_table(rows: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    """Two columns, name and value; values are rendered with :func:`text`."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else text(value))
    return table


def table(*columns: str, title: str | None = None, right: Iterable[str] = (),
          no_wrap: Iterable[str] = ()) -> Table:
    """A table with a header row; columns named in ``right`` are right-aligned, those in
    ``no_wrap`` are never wrapped or shortened (ids, times), the others fold."""
    from rich import box
    from rich.table import Table

    aligned, whole = set(right), set(no_wrap)
    out = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                collapse_padding=True, pad_edge=False, show_edge=False)
    for name in columns:
        out.add_column(name, justify="right" if name in aligned else "left",
                       overflow="fold", no_wrap=name in whole, min_width=len(name))
    return out

