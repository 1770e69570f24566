"""Following append-only logs live: bounded reads by byte offset, and one shared file watcher.

`read_window` reads the complete records after a byte offset, at most about `max_bytes` at
a time (a days-long transcript must not be read into memory whole; `base.jsonl.read_from`
reads to the end), with `read_from`'s rules: a torn last line waits, a corrupt line is
skipped. `Hub` runs one watchfiles watcher for every open stream (started with the first
subscriber, stopped with the last) and wakes the subscribers whose files changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import orjson
from anyio.abc import TaskGroup
from watchfiles import awatch

from meta_harness.base.errors import UsageError

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]

WATCH_STEP_MS = 2  # quiet time that closes a batch: the latency floor of a live stream
WATCH_DEBOUNCE_MS = 10  # a continuous stream is still delivered at least this often
WATCH_RUST_TIMEOUT_MS = 1000  # idle wake-ups of the watcher thread (stop is checked every step)
READ_WINDOW = 1 << 20  # bytes read per step while catching up on a long log
MEMO_BYTES = 8 << 20  # recent encoded stream reads kept for other tabs at the same position


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


class _WatchRun:
    """One watcher run. Doubles as watchfiles' stop event: its first `is_set()` comes from
    the watcher thread once the OS watches are in place, which is when it reports `armed`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_armed: Any) -> None:
        self._loop = loop
        self._on_armed = on_armed
        self._stop = threading.Event()
        self._armed = False

    def is_set(self) -> bool:
        if not self._armed:
            self._armed = True
            self._loop.call_soon_threadsafe(self._on_armed)
        return self._stop.is_set()

    def set(self) -> None:
        self._stop.set()


class Subscription:
    """What one stream waits on: its wake event, set when one of its files may have changed."""

    def __init__(self, hub: Hub, paths: tuple[Path, ...]) -> None:
        self.hub = hub
        self.paths = paths
        self.wake = asyncio.Event()
        self.broken = False

    def clear(self) -> None:
        """Call before reading: a change during the read sets the event again."""
        self.wake.clear()

    async def wait(self) -> bool:
        """Wait for a change; False once the hub is closing or its watcher failed."""
        await self.wake.wait()
        return not (self.hub.closing.is_set() or self.broken)


class Hub:
    """One recursive watcher over the workspace's `tasks/` and state dir, shared by all streams.

    Subscribers name the files they follow; a change to a file, or to a directory above it
    (a task directory created after the stream opened), wakes them. The watcher runs only
    while someone subscribes; when it has armed its OS watches every subscriber is woken
    once, so a write that landed while it was starting is not missed.
    """

    def __init__(self, roots: Iterable[Path], max_subscribers: int) -> None:
        self.roots = tuple(roots)
        self.max_subscribers = max_subscribers
        self.closing = asyncio.Event()
        self._tg: TaskGroup | None = None
        self._subs: set[Subscription] = set()
        self._by_path: dict[Path, set[Subscription]] = {}
        self._run: _WatchRun | None = None
        self.memo: OrderedDict[Any, tuple[Any, int]] = OrderedDict()  # see `remember`
        self._memo_bytes = 0

    # -- lifetime --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Hub]:
        """Owns the watcher task while the app runs (entered in the app's lifespan)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield self
            finally:
                self.close()
                self._tg = None

    def close(self) -> None:
        """End every stream and the watcher."""
        self.closing.set()
        self._stop_run()
        for sub in list(self._subs):
            sub.wake.set()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def recall(self, key: Any) -> Any:
        entry = self.memo.get(key)
        return None if entry is None else entry[0]

    def remember(self, key: Any, value: Any, size: int) -> None:
        """Keep a stream's encoded read (`size` bytes) for other streams at the same position."""
        old = self.memo.pop(key, None)
        if old is not None:
            self._memo_bytes -= old[1]
        self.memo[key] = (value, size)
        self._memo_bytes += size
        while self._memo_bytes > MEMO_BYTES and len(self.memo) > 1:
            _, (_, dropped) = self.memo.popitem(last=False)
            self._memo_bytes -= dropped

    # -- subscriptions ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self, paths: Iterable[Path]) -> AsyncIterator[Subscription]:
        if self._tg is None or self.closing.is_set():
            raise RuntimeError("the web app is not running (its lifespan has not started)")
        sub = Subscription(self, tuple(paths))
        keys = self._keys(sub.paths)
        self._subs.add(sub)
        for key in keys:
            self._by_path.setdefault(key, set()).add(sub)
        try:
            if self._run is None:
                self._start_run()
            yield sub
        finally:
            self._subs.discard(sub)
            for key in keys:
                group = self._by_path.get(key)
                if group is not None:
                    group.discard(sub)
                    if not group:
                        del self._by_path[key]
            if not self._subs:
                self._stop_run()

    def _keys(self, paths: tuple[Path, ...]) -> set[Path]:
        """Each file plus its directories below a watched root."""
        keys: set[Path] = set()
        for path in paths:
            keys.add(path)
            for parent in path.parents:
                if parent in self.roots or not any(parent.is_relative_to(r) for r in self.roots):
                    break
                keys.add(parent)
        return keys

    # -- the watcher -----------------------------------------------------------------------

    def _start_run(self) -> None:
        assert self._tg is not None
        run = _WatchRun(asyncio.get_running_loop(), self._wake_all)
        self._run = run
        self._tg.start_soon(self._watch, run, name="web-file-watcher")

    def _stop_run(self) -> None:
        if self._run is not None:
            self._run.set()
            self._run = None

    def _wake_all(self) -> None:
        for sub in self._subs:
            sub.wake.set()

    async def _watch(self, run: _WatchRun) -> None:
        for root in self.roots:
            root.mkdir(parents=True, exist_ok=True)
        try:
            async for changes in awatch(
                *self.roots,
                stop_event=run,
                step=WATCH_STEP_MS,
                debounce=WATCH_DEBOUNCE_MS,
                rust_timeout=WATCH_RUST_TIMEOUT_MS,
                recursive=True,
                watch_filter=None,
            ):
                for _, raw in changes:
                    for sub in self._by_path.get(Path(raw), ()):
                        sub.wake.set()
        except Exception:
            logger.exception("the web file watcher failed; open streams end and may reconnect")
            if self._run is run:
                self._run = None
            for sub in list(self._subs):
                sub.broken = True
                sub.wake.set()
