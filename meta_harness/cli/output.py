"""How commands print: JSON for `--json`, aligned tables, times and ages, one-line notes.

Human output goes to stdout; notes and warnings go to stderr so that piping a command's
output keeps only its data. Errors are printed by `main` (one line), never here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click
import orjson

ELLIPSIS = "…"


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr: not part of the command's output)."""
    click.echo(message, err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def clip(text: str, limit: int) -> str:
    """First line of `text`, at most `limit` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + ELLIPSIS


def clock(ts: float) -> str:
    """Local wall-clock time of day, e.g. `12:01:02`."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def age(ts: float, now: float | None = None) -> str:
    """A short duration since `ts`: `42s`, `5m`, `3h`, `2d`."""
    seconds = max(0.0, (now if now is not None else time.time()) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
