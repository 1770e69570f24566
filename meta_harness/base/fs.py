"""Durable file primitives: atomic snapshots and fsync'd appends.

Every snapshot in a workspace is written with `atomic_write` (temp file in the same
directory, fsync, rename, fsync the directory), so a reader sees the old or the new
content, never a mix. Append-only logs live in `jsonl`. Nothing here knows what the
files mean.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TMP_PREFIX = ".tmp-"  # watchers and inbox scanners ignore names starting with "."


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically; with `durable`, survive a power cut too."""
    _publish(path, data, durable=durable, mode=mode)
    if durable:
        fsync_dir(path.parent)


def write_new(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Publish a new file that readers may pick up at any moment (drop files, answers).

    Written under a dot-name first and renamed into place, so a watcher never sees it
    half-written. Not fsync'd: the reader makes it durable by ingesting it.
    """
    _publish(path, data, durable=False, mode=mode)


def _publish(path: Path, data: bytes, *, durable: bool, mode: int) -> None:
    """Write `data` to a dot-named temp beside `path`, then rename it over `path`.

    On any failure (bad data, short disk, failed rename) the temp is removed and `path`
    keeps its old content, or stays absent.
    """
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files left by writers that died mid-write; return how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.name.startswith(TMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
