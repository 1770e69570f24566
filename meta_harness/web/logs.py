"""Reading append-only JSONL logs by byte offset, a bounded window at a time.

`read_lines` returns the complete records after an offset, about `max_bytes` of them (a
days-long transcript must not be read into memory whole; `base.jsonl.read_from` reads to
the end), with `read_from`'s rules: a torn last line waits, a corrupt line is skipped.
`tail_start`, `log_end` and `check_boundary` place offsets on record boundaries, so a
cursor always names the start of a record.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from meta_harness.base.errors import UsageError

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]

READ_WINDOW = 1 << 20  # bytes read per step while catching up on a long log


class Line(NamedTuple):
    """One complete record of a log: where it starts, its bytes (no newline), its value."""

    start: int
    raw: bytes
    record: JsonObject


def read_lines(path: Path, offset: int, max_bytes: int = READ_WINDOW) -> tuple[list[Line], int]:
    """Complete records from byte `offset` on (about `max_bytes` of them), and the next offset.

    A single line longer than `max_bytes` is read whole. At the end of the file a torn
    (newline-less) line is left for a later call. Blank lines are skipped; so are lines
    that are not a JSON object, with a warning.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return [], offset
    try:
        want = max(1, max_bytes)
        while True:
            data = os.pread(fd, want, offset)
            end = data.rfind(b"\n")
            if end >= 0 or len(data) < want:
                break
            want *= 2  # one line longer than the window: read until its end
    finally:
        os.close(fd)
    out: list[Line] = []
    pos = 0
    while pos <= end:
        nl = data.find(b"\n", pos)
        line = data[pos:nl]
        if line.strip():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                logger.warning("%s: skipping a corrupt line at byte %d", path, offset + pos)
            else:
                if isinstance(value, dict):
                    out.append(Line(offset + pos, line, value))
        pos = nl + 1
    return out, offset + max(end + 1, 0)


def read_window(
    path: Path, offset: int, max_bytes: int = READ_WINDOW
) -> tuple[list[tuple[int, JsonObject]], int]:
    """`read_lines` as `base.jsonl.read_from` shapes it: (start offset, record) pairs."""
    lines, nxt = read_lines(path, offset, max_bytes)
    return [(line.start, line.record) for line in lines], nxt


def log_end(path: Path) -> int:
    """Offset just past the last complete line (0 for a missing or empty file)."""
    return tail_start(path, 0)


def tail_start(path: Path, tail: int) -> int:
    """The first record boundary at or after `size - tail` (the whole file if it is shorter)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - tail)
        if start == 0:
            return 0
        # the boundary is just past the first newline at or after start - 1
        pos = start - 1
        while pos < size:
            chunk = os.pread(fd, 1 << 16, pos)
            nl = chunk.find(b"\n")
            if nl >= 0:
                return pos + nl + 1
            if not chunk:
                break
            pos += len(chunk)
        # no complete line after start: everything complete ends before it
        return _last_line_end(fd, start)
    finally:
        os.close(fd)


def _last_line_end(fd: int, limit: int) -> int:
    pos = limit
    while pos > 0:
        begin = max(0, pos - (1 << 16))
        chunk = os.pread(fd, pos - begin, begin)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return begin + nl + 1
        pos = begin
    return 0


def check_boundary(path: Path, offset: int, what: str) -> int:
    """`offset` if it starts a record of `path` (or is its end); UsageError otherwise."""
    if offset == 0:
        return 0
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise UsageError(
            f"{what} offset {offset} is beyond the end (the file does not exist)"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if offset > size:
            raise UsageError(f"{what} offset {offset} is beyond the end of the file ({size} bytes)")
        if os.pread(fd, 1, offset - 1) != b"\n":
            raise UsageError(f"{what} offset {offset} is not the start of a record")
    finally:
        os.close(fd)
    return offset
