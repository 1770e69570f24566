"""Boot reconciliation: the state a previous supervisor left, made whole again from files.

Ends agent processes a killed supervisor of this workspace left behind, then per task:
removes stale temp files, folds the WAL (`rederive`), expires permission requests of the
previous run, re-delivers a child's result and repairs a cancel cascade a crash cut short.
Runs before the supervisor's task group exists, so no runner starts from here.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import orjson
import psutil

from meta_harness.base.fs import atomic_write, remove_stale_temps
from meta_harness.base.layout import Workspace
from meta_harness.domain.events import EventType
from meta_harness.domain.permissions import RequestStatus
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord
from meta_harness.runtime.launch import WORKSPACE_MARKER
from meta_harness.runtime.store import EventLog, TaskStore
from meta_harness.runtime.task_end import Wake, cancel_descendants, deliver_result

SWEEP_TERM_GRACE = 2.0  # leftover agents of a killed supervisor get this long after SIGTERM


def sweep_leftovers(workspace: Workspace, events: EventLog) -> int:
    """End processes a killed supervisor of this workspace left behind."""
    mine = str(workspace.root)
    found: list[psutil.Process] = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(WORKSPACE_MARKER) == mine:
                found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error, OSError):
            proc.terminate()
    _, alive = psutil.wait_procs(found, timeout=SWEEP_TERM_GRACE)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    if found:
        events.emit(
            EventType.WARNING, None, message=f"swept {len(found)} leftover agent process(es)"
        )
    return len(found)


def reconcile(workspace: Workspace, store: TaskStore, wake: Wake) -> None:
    """Load every task record and repair what the previous run left half done."""
    store.load_all()
    by_parent: dict[str, list[TaskRecord]] = {}
    for record in store.records.values():
        if record.parent:
            by_parent.setdefault(record.parent, []).append(record)
    for task_id, record in store.records.items():
        paths = workspace.task(task_id)
        remove_stale_temps(paths.dir)
        store.rederive(task_id)
        expire_requests(paths.permissions)
        if record.parent and record.phase.terminal:
            deliver_result(store, task_id, wake)
        if record.phase is TaskPhase.CANCELLED and task_id in by_parent:
            # a crash may have cut the cascade short
            cancel_descendants(store, task_id, lambda t: list(by_parent.get(t, ())), wake)


def expire_requests(directory: Path) -> None:
    """Answer `cancelled` for every permission request still pending from the last run."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if not entry.name.endswith(".json") or entry.name.endswith(".answer.json"):
                continue
            with contextlib.suppress(OSError, ValueError):
                record = orjson.loads(Path(entry.path).read_bytes())
                if record.get("status") == RequestStatus.PENDING:
                    record.update(
                        status=RequestStatus.ANSWERED.value,
                        decision="cancelled",
                        answered_by="supervisor",
                        reason="the supervisor restarted; the agent's call ended with it",
                        answered_at=time.time(),
                    )
                    atomic_write(Path(entry.path), orjson.dumps(record, option=orjson.OPT_INDENT_2))
