"""Append-only JSON Lines logs with torn-tail recovery.

A log has one writer (the supervisor) holding a `JsonlWriter`. A crash can leave a torn
last line; `JsonlWriter.open` truncates it before appending, and `read_records`
ignores it, so readers in other processes never fail on a log being written. Readers
that follow a log live resume from a byte offset (`read_from`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]


def dumps(record: JsonObject) -> bytes:
    """One log line (with its newline)."""
    return orjson.dumps(record) + b"\n"


def read_from(path: Path, offset: int = 0) -> tuple[list[tuple[int, JsonObject]], int]:
    """Complete records from byte `offset` on, each with its start offset, and the next offset.

    A torn (newline-less) last line is left for a later call. A line that is not a JSON
    object is skipped with a warning; it never stops the reader.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    out: list[tuple[int, JsonObject]] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        if line.strip():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                logger.warning("%s: skipping a corrupt line at byte %d", path, offset + pos)
            else:
                if isinstance(value, dict):
                    out.append((offset + pos, value))
        pos = nl + 1
    return out, offset + pos


def end_offset(path: Path) -> int:
    """The offset just past the last complete line (0 if missing): where a live follower starts.

    A follower that starts at the file size could land inside a line still being written.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        return _last_line_end(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def read_reversed(path: Path, *, block: int = 1 << 16) -> Iterator[JsonObject]:
    """Complete records from the last to the first, reading backwards in blocks.

    For readers that only need the recent end of a long log (e.g. the session phases since
    the last supervisor start). A torn last line is skipped; so are corrupt lines.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; a generator cannot use `with` early)
    except FileNotFoundError:
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        carry = b""  # the start of a line whose beginning lies before `pos`
        torn = True  # bytes after the last newline are not a record yet
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            parts = (f.read(pos - start) + carry).split(b"\n")
            pos = start
            if torn:
                if len(parts) == 1:
                    carry = b""  # still inside the torn tail
                    continue
                parts.pop()
                torn = False
            carry = parts.pop(0) if pos > 0 else b""
            for line in reversed(parts):
                if not line.strip():
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    logger.warning("%s: skipping a corrupt line", path)
                    continue
                if isinstance(value, dict):
                    yield value


def read_records(path: Path) -> list[JsonObject]:
    """Every complete record of a log (missing file: none)."""
    return [record for _, record in read_from(path)[0]]


def iter_records(path: Path) -> Iterator[JsonObject]:
    yield from read_records(path)


class JsonlWriter:
    """The single appender of one log. Not thread-safe; one per file per process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def open(cls, path: Path) -> JsonlWriter:
        """Open for appending, first cutting off a torn last line left by a crash."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(fd).st_size
        if size:
            tail_len = min(size, 1 << 16)
            tail = os.pread(fd, tail_len, size - tail_len)
            if not tail.endswith(b"\n"):
                cut = _last_line_end(fd, size)
                logger.warning("%s: truncating a torn last line (%d bytes)", path, size - cut)
                os.ftruncate(fd, cut)
                os.fsync(fd)
        return cls(path, fd)

    def append(self, records: Iterable[JsonObject], *, durable: bool) -> int:
        """Append records in one write; with `durable`, fsync before returning. Returns bytes."""
        data = b"".join(dumps(r) for r in records)
        if not data:
            return 0
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        if durable:
            os.fdatasync(self._fd)
        return len(data)

    def detached_sync(self) -> Callable[[], None]:
        """A call that fdatasyncs everything appended so far, for another thread: it owns
        a duplicate descriptor, so closing this writer meanwhile cannot break it."""
        fd = os.dup(self._fd)

        def sync() -> None:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

        return sync

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _last_line_end(fd: int, size: int) -> int:
    """Offset just past the last newline in the file (0 if none)."""
    pos = size
    block = 1 << 16
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
    return 0
