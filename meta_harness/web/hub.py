"""One file watcher shared by every open stream, waking the streams whose files changed.

`Hub` runs a single watchfiles watcher (recursive, over the workspace's `tasks/` and
state dir) while at least one stream subscribes, and stops it with the last one. It also
keeps a small memo of encoded reads, so tabs following the same log at the same offset
share one read. Streams never poll: they wait on their subscription's wake event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from watchfiles import awatch

logger = logging.getLogger(__name__)

WATCH_STEP_MS = 2  # quiet time that closes a batch: the latency floor of a live stream
WATCH_DEBOUNCE_MS = 10  # a continuous stream is still delivered at least this often
WATCH_RUST_TIMEOUT_MS = 1000  # idle wake-ups of the watcher thread (stop is checked every step)
MEMO_BYTES = 8 << 20  # recent encoded stream reads kept for other tabs at the same position


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
