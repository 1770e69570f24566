"""Watches a workspace for drop and answer files: inotify on Linux, else watchfiles.

On Linux `inotify_watch` is used (event-driven, no polling). Elsewhere watchfiles:

watchfiles' defaults (step 50 ms, debounce 1600 ms) add ~200 ms before a batch is
yielded; we use a 1 ms step so a single drop is seen within a few milliseconds while a
burst still arrives in batches (capped by `WATCH_DEBOUNCE_MS`). Only creations and
modifications in `inbox/`, `tasks/*/inbox/` and `tasks/*/permissions/` pass the filter.
A new task directory is listed once it appears: files written into it before the watch
on it was in place raised no event of their own.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from watchfiles import Change, awatch

from meta_harness.base.layout import Workspace

WATCH_STEP_MS = 1  # quiet time that closes a batch: the latency floor of a drop
WATCH_DEBOUNCE_MS = 50  # a burst is yielded at least this often
WATCH_RUST_TIMEOUT_MS = 1000  # lets the stop event be noticed while idle
WATCH_CONFIG_STEP_MS = 50  # config edits are rare; let an editor finish its writes


def _interesting(workspace: Workspace, path: Path) -> bool:
    name = path.name
    if name.startswith("."):
        return False
    parent = path.parent
    if parent == workspace.inbox:
        return True
    return parent.parent.parent == workspace.tasks_dir and parent.name in ("inbox", "permissions")


def _already_inside(workspace: Workspace, path: Path) -> list[Path]:
    """The files in a task directory (or its inbox/permissions) that has just appeared."""
    if path.parent == workspace.tasks_dir:
        dirs = [path / "inbox", path / "permissions"]
    elif path.parent.parent == workspace.tasks_dir and path.name in ("inbox", "permissions"):
        dirs = [path]
    else:
        return []
    found: list[Path] = []
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.extend(p for n in names if _interesting(workspace, p := directory / n))
    return found


def watch_drops(workspace: Workspace, stop: asyncio.Event) -> AsyncIterator[set[Path]]:
    """Batches of paths that may be new drop or answer files, until `stop` is set.

    On Linux through inotify (`inotify_watch`: no polling, no idle CPU, sub-millisecond);
    elsewhere through watchfiles, tuned as described above.
    """
    if sys.platform == "linux":
        from meta_harness.runtime.inotify_watch import inotify_drops

        return inotify_drops(workspace, stop)
    return _watchfiles_drops(workspace, stop)


async def _watchfiles_drops(workspace: Workspace, stop: asyncio.Event) -> AsyncIterator[set[Path]]:
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    workspace.tasks_dir.mkdir(parents=True, exist_ok=True)
    async for changes in awatch(
        workspace.inbox,
        workspace.tasks_dir,
        stop_event=stop,
        step=WATCH_STEP_MS,
        debounce=WATCH_DEBOUNCE_MS,
        rust_timeout=WATCH_RUST_TIMEOUT_MS,
        recursive=True,
        watch_filter=None,
    ):
        batch: set[Path] = set()
        for change, raw in changes:
            if change is Change.deleted:
                continue
            path = Path(raw)
            if _interesting(workspace, path):
                batch.add(path)
            elif change is Change.added:
                batch.update(_already_inside(workspace, path))
        if batch:
            yield batch


def watch_config(workspace: Workspace, stop: asyncio.Event) -> AsyncIterator[None]:
    """Yields whenever `meta-harness.toml` is written or replaced (editors rename over it)."""
    if sys.platform == "linux":
        from meta_harness.runtime.inotify_watch import inotify_config

        return inotify_config(workspace, stop)
    return _watchfiles_config(workspace, stop)


async def _watchfiles_config(workspace: Workspace, stop: asyncio.Event) -> AsyncIterator[None]:
    async for changes in awatch(
        workspace.root,
        stop_event=stop,
        step=WATCH_CONFIG_STEP_MS,
        rust_timeout=WATCH_RUST_TIMEOUT_MS,
        recursive=False,
        watch_filter=None,
    ):
        config = workspace.config_file
        if any(Path(raw) == config for change, raw in changes if change is not Change.deleted):
            yield None
