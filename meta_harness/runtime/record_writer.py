"""Task-record writes that need no fsync, done off the event loop, in order, coalesced.

Replacing `task.json` costs a rename, and on ext4 a rename over an existing file also
starts writeback of the new data (`auto_da_alloc`): about a millisecond on a VM disk,
paid on every turn (active/waiting flips) and every swap-in. `RecordWriter` does those
writes on one thread: the latest content per path wins, paths are written in the order
they were first queued, and a synchronous (durable) write of a path first takes that
path's queued content away and waits out a write in progress, so an older record never
lands after a newer one. What is queued when the process is killed is lost, which is
why only changes boot can rebuild go through here (see `store.needs_fsync`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from meta_harness.base.fs import atomic_write

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT = 10.0  # close(): queued writes are a few KB each; longer means a stuck disk


class RecordWriter:
    """One writer thread per supervisor; `write_later` never blocks on the disk."""

    def __init__(self) -> None:
        self._pending: dict[Path, bytes] = {}
        self._cond = threading.Condition()
        self._io = threading.Lock()  # held for each write to the disk
        self._closed = False
        self._thread: threading.Thread | None = None

    def write_later(self, path: Path, data: bytes) -> None:
        """Queue an atomic, non-fsync'd replace of `path` (a newer one supersedes it)."""
        with self._cond:
            if self._closed:
                atomic_write(path, data, durable=False)
                return
            self._pending[path] = data
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="meta-harness-record-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def write_now(self, path: Path, data: bytes, *, durable: bool) -> None:
        """Write `path` before returning, superseding anything queued for it."""
        with self._cond:
            self._pending.pop(path, None)
            with self._io:  # a write of an older content of `path` may be in progress
                atomic_write(path, data, durable=durable)

    def write_pending(self, path: Path) -> None:
        """If a write of `path` is queued, do it now, here (no fsync)."""
        with self._cond:
            data = self._pending.pop(path, None)
            if data is not None:
                with self._io:
                    self._write(path, data)

    def flush(self) -> None:
        """Write everything queued, on the caller's thread (tests, shutdown)."""
        with self._cond, self._io:
            while self._pending:
                path = next(iter(self._pending))
                self._write(path, self._pending.pop(path))

    def close(self) -> None:
        """Write what is queued and end the thread; later writes are synchronous."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(DRAIN_TIMEOUT)
            if self._thread.is_alive():
                logger.error("task record writer still busy after %.0f s", DRAIN_TIMEOUT)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                path = next(iter(self._pending))
                data = self._pending.pop(path)
                self._io.acquire()  # before letting go of the queue: see write_now
            try:
                self._write(path, data)
            finally:
                self._io.release()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            atomic_write(path, data, durable=False)
        except OSError as e:  # the next change of the task writes it again
            logger.error("cannot write %s: %s", path, e)
