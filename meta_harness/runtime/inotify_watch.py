"""Drop and answer files seen through Linux inotify: no polling, no wake-ups for anything else.

Only the directories that matter are watched: `inbox/`, `tasks/` (for new task
directories), each task directory (until its `inbox/` and `permissions/` exist) and each
task's `inbox/` and `permissions/`. A regular file is reported when its writer closes it
(`CLOSE_WRITE`) or when it is renamed into place (`MOVED_TO`), never half-written; other
kinds of entry (symlinks, FIFOs, directories) on creation, so that ingest can set them
aside. Transcript and state writes raise no event at all. The kernel queue is read with
the event loop's reader (asyncinotify), so an idle workspace costs no CPU; events that
arrive together are yielded as one batch, which ingest group-commits. A queue overflow
yields a full listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from asyncinotify import Event, Inotify, Mask

from meta_harness.base.layout import Workspace

logger = logging.getLogger(__name__)

INOTIFY_CACHE_EVENTS = 4096  # events read per system call: a burst becomes one batch
DROP_MASK = Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.CREATE
DIR_MASK = Mask.CREATE | Mask.MOVED_TO | Mask.ONLYDIR
TASK_SUBDIRS = ("inbox", "permissions")


class DropWatcher:
    """The watches of one workspace and the classification of their events."""

    def __init__(self, workspace: Workspace, inotify: Inotify) -> None:
        self.workspace = workspace
        self.inotify = inotify
        self._kinds: dict[
            Path, str
        ] = {}  # watched directory -> "inbox" | "tasks" | "task" | "drops"

    def start(self) -> set[Path]:
        """Watch everything that exists now; return files already there in new watches."""
        self._watch(self.workspace.inbox, "drops")
        self._watch(self.workspace.tasks_dir, "tasks")
        found: set[Path] = set()
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.workspace.tasks_dir):
                found |= self._task_dir(self.workspace.tasks_dir / name, list_files=False)
        return found

    def _watch(self, path: Path, kind: str) -> bool:
        mask = DROP_MASK if kind == "drops" else DIR_MASK
        try:
            self.inotify.add_watch(path, mask | Mask.DONT_FOLLOW | Mask.EXCL_UNLINK)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:  # ENOSPC: fs.inotify.max_user_watches reached
            logger.error("cannot watch %s (%s); raise fs.inotify.max_user_watches", path, e)
            return False
        self._kinds[path] = kind
        return True

    def _task_dir(self, path: Path, *, list_files: bool) -> set[Path]:
        found: set[Path] = set()
        if not path.is_dir() or path.is_symlink():
            return found
        missing = False
        for sub in TASK_SUBDIRS:
            subdir = path / sub
            if subdir in self._kinds:
                continue
            if self._watch(subdir, "drops"):
                if list_files:
                    found |= _listing(subdir)
            else:
                missing = True
        if missing and path not in self._kinds:
            self._watch(path, "task")  # until its inbox/ and permissions/ appear
        return found

    def classify(self, event: Event) -> set[Path]:
        """Paths of drop or answer files this event may have made ready."""
        if Mask.Q_OVERFLOW in event.mask:
            logger.warning("inotify queue overflowed; listing every inbox")
            return self.full_listing()
        watch = event.watch
        if watch is None or event.name is None:
            return set()
        directory = Path(watch.path)
        kind = self._kinds.get(directory)
        path = directory / event.name
        if kind == "drops":
            if event.name.name.startswith("."):
                return set()
            if Mask.CREATE in event.mask and Mask.ISDIR not in event.mask:
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(path).st_mode):
                        return set()  # a regular file is reported when closed or moved in
            return {path}
        if kind == "tasks":
            return self._task_dir(path, list_files=True)
        if kind == "task" and event.name.name in TASK_SUBDIRS:
            return self._task_dir(directory, list_files=True)
        return set()

    def full_listing(self) -> set[Path]:
        found = _listing(self.workspace.inbox)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.workspace.tasks_dir):
                for sub in TASK_SUBDIRS:
                    found |= _listing(self.workspace.tasks_dir / name / sub)
        return found


def _listing(directory: Path) -> set[Path]:
    try:
        return {directory / n for n in os.listdir(directory) if not n.startswith(".")}
    except (FileNotFoundError, NotADirectoryError):
        return set()


async def _next_batch(inotify: Inotify, stop: asyncio.Event) -> list[Event] | None:
    """Every event available now (waiting for the first), or None once `stop` is set."""
    getter = asyncio.ensure_future(inotify.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([getter, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
    if not getter.done() or getter.cancelled():
        return None  # stopped
    events = [getter.result()]
    while (more := inotify.sync_get()) is not None:  # sync_timeout=0: only what is queued
        events.append(more)
    return events


async def inotify_drops(workspace: Workspace, stop: asyncio.Event) -> AsyncIterator[set[Path]]:
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    workspace.tasks_dir.mkdir(parents=True, exist_ok=True)
    with Inotify(cache_size=INOTIFY_CACHE_EVENTS, sync_timeout=0) as inotify:
        watcher = DropWatcher(workspace, inotify)
        early = watcher.start()
        if early:
            yield early
        while (events := await _next_batch(inotify, stop)) is not None:
            batch: set[Path] = set()
            for event in events:
                batch |= watcher.classify(event)
            if batch:
                yield batch


async def inotify_config(workspace: Workspace, stop: asyncio.Event) -> AsyncIterator[None]:
    with Inotify(sync_timeout=0) as inotify:
        inotify.add_watch(workspace.root, Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.ONLYDIR)
        while (events := await _next_batch(inotify, stop)) is not None:
            if any(
                e.name is not None and e.name.name == workspace.config_file.name for e in events
            ):
                yield None
