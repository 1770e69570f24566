"""One supervisor per workspace: the file lock, and `supervisor.json` naming its holder.

`claim_workspace` takes the lock (or raises `WorkspaceLocked` naming the running holder),
writes pid, version, start time and endpoints to `supervisor.json` for readers (`stats`,
the CLI's liveness check), removes that file after a clean run and releases the lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import orjson
import psutil
from filelock import FileLock, Timeout

from meta_harness import __version__
from meta_harness.base.errors import WorkspaceLocked
from meta_harness.base.fs import atomic_write
from meta_harness.base.layout import Workspace


def _lock(workspace: Workspace) -> FileLock:
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(workspace.lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = "pid unknown"
        with contextlib.suppress(OSError, ValueError):
            info = orjson.loads(workspace.supervisor_file.read_bytes())
            holder = f"pid {info.get('pid')}, started {time.ctime(info.get('started_at', 0))}"
        raise WorkspaceLocked(str(workspace.root), holder) from None
    return lock


@contextlib.contextmanager
def claim_workspace(workspace: Workspace, endpoints: dict[str, str] | None) -> Iterator[None]:
    """Hold the workspace for the body; `supervisor.json` is left behind only if it raised."""
    lock = _lock(workspace)
    try:
        info = {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": time.time(),
            "create_time": psutil.Process().create_time(),
            "workspace": str(workspace.root),
            "endpoints": endpoints or {},
        }
        atomic_write(workspace.supervisor_file, orjson.dumps(info, option=orjson.OPT_INDENT_2))
        yield
        with contextlib.suppress(FileNotFoundError):
            workspace.supervisor_file.unlink()
    finally:
        lock.release()
