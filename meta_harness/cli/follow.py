"""Following append-only logs live: `logs -f`, `send --wait` and the demo's progress view.

A `Waker` blocks until something changes in one directory (watchfiles, tuned: a 2 ms
quiet step ends a batch, so a streamed reply shows up within milliseconds) or until
`RECHECK_MS` passed, then the caller re-reads its logs from byte offsets
(`jsonl.read_from`). The periodic re-check is not polling for data: it covers the
moment before the watcher is in place and lets deadlines and stop events fire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from meta_harness.base.jsonl import JsonObject, read_from

WATCH_STEP_MS = 2  # quiet time that ends a batch of changes: the follower's latency floor
WATCH_DEBOUNCE_MS = 20  # a continuous stream of writes is still reported this often
RECHECK_MS = 100  # longest wait without an event before logs are re-read anyway


class Waker:
    """Wakes on changes inside `directories` (not recursive unless asked), bounded by a deadline."""

    def __init__(
        self,
        *directories: Path,
        deadline: float | None = None,
        stop: threading.Event | None = None,
        recursive: bool = False,
    ) -> None:
        self.directories = directories
        self.deadline = deadline  # time.monotonic() value
        self.stop = stop
        self.recursive = recursive
        self._watch: Generator[Any, None, None] | None = None

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def wait(self) -> bool:
        """Block until a change or a re-check is due; False once the deadline or stop is reached."""
        if self.expired() or (self.stop is not None and self.stop.is_set()):
            return False
        if self._watch is None:
            from watchfiles import watch  # ~40 ms: only paid by commands that wait

            existing = [d for d in self.directories if d.is_dir()]
            if not existing:
                raise FileNotFoundError(f"nothing to watch: {self.directories[0]}")
            self._watch = watch(
                *existing,
                watch_filter=None,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                rust_timeout=RECHECK_MS,
                yield_on_timeout=True,
                stop_event=self.stop,
                recursive=self.recursive,
            )
        try:
            next(self._watch)
        except StopIteration:
            return False
        return not self.expired() and not (self.stop is not None and self.stop.is_set())

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def __enter__(self) -> Waker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def follow_records(path: Path, offset: int, waker: Waker) -> Iterator[tuple[int, JsonObject]]:
    """Records of an append-only log from `offset` on, live, until the waker gives up."""
    while True:
        records, offset = read_from(path, offset)
        yield from records
        if not records and not waker.wait():
            return


def read_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Complete raw lines (with their newline) from `offset`, and the next offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(keepends=True), offset + end


def follow_lines(path: Path, offset: int, waker: Waker) -> Iterator[bytes]:
    """Raw lines of a log from `offset` on, live (byte-exact: `logs --raw`)."""
    while True:
        lines, offset = read_lines(path, offset)
        yield from lines
        if not lines and not waker.wait():
            return
