"""Naming tasks on the command line: a full id or a unique prefix, and tasks still queued.

A task exists once the supervisor has written its `task.json`. Before that it is a drop
file waiting in `inbox/` (queued): listed by `ls`, but nothing can be sent to it yet,
since messages for a task that does not exist are rejected.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

from meta_harness.base.errors import Conflict, DropRejected, NotFound, UsageError
from meta_harness.base.layout import Workspace, validate_request_id, validate_task_id
from meta_harness.domain.drops import MAX_DROP_BYTES, is_drop_name, parse_task_drop

QUEUED_TASK_WAIT = 10.0  # a running supervisor accepts a new task in ms; allow for a busy one
AMBIGUOUS_SHOWN = 5  # candidates named in an "ambiguous prefix" error


@dataclass(frozen=True)
class QueuedTask:
    """A task drop file in `inbox/` that no supervisor has ingested yet."""

    name: str
    id: str | None
    title: str
    profile: str | None
    parent: str | None
    created: float
    error: str | None = None  # why the supervisor will reject it


def _read_regular(path: str) -> tuple[bytes, float]:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise DropRejected("not a regular file")
    if st.st_size > MAX_DROP_BYTES:
        raise DropRejected(f"too large: {st.st_size} bytes")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_DROP_BYTES + 1), st.st_mtime


def queued_tasks(workspace: Workspace) -> list[QueuedTask]:
    """Task drops waiting in `inbox/`, oldest first, each parsed as the supervisor will."""
    try:
        names = os.listdir(workspace.inbox)
    except FileNotFoundError:
        return []
    found: list[QueuedTask] = []
    for name in names:
        if not is_drop_name(name):
            continue
        path = os.path.join(workspace.inbox, name)
        try:
            data, mtime = _read_regular(path)
        except FileNotFoundError:
            continue  # ingested while we looked
        except (OSError, DropRejected) as e:
            found.append(QueuedTask(name, None, name, None, None, 0.0, str(e)))
            continue
        try:
            drop = parse_task_drop(name, data)
        except DropRejected as e:
            found.append(QueuedTask(name, None, name, None, None, mtime, e.message))
            continue
        found.append(QueuedTask(name, drop.task_id, drop.title, drop.profile, drop.parent, mtime))
    return sorted(found, key=lambda q: (q.created, q.name))


def resolve_task(workspace: Workspace, ref: str) -> str:
    """The id of the one task whose id is `ref` or starts with it."""
    if not ref:
        raise UsageError("empty task id")
    validate_task_id(ref)
    ids = workspace.task_ids()
    if ref in ids:
        return ref
    matches = [task_id for task_id in ids if task_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:AMBIGUOUS_SHOWN]) + (
            ", …" if len(matches) > AMBIGUOUS_SHOWN else ""
        )
        raise UsageError(f"task prefix {ref!r} is ambiguous: {len(matches)} tasks match ({shown})")
    for queued in queued_tasks(workspace):
        if queued.id is not None and queued.id.startswith(ref):
            if _accepted_soon(workspace, queued.id):
                return queued.id
            raise Conflict(
                f"task {queued.id} is still queued in inbox/{queued.name}: no supervisor has "
                "accepted it yet (run `meta-harness up`)"
            )
    raise NotFound(f"no task {ref!r} in {workspace.root}")


def _accepted_soon(workspace: Workspace, task_id: str) -> bool:
    """With a supervisor running, wait (bounded) for it to accept a task just submitted."""
    from meta_harness.cli.follow import Waker
    from meta_harness.cli.state import supervisor_status

    if not supervisor_status(workspace).running:
        return False
    record = workspace.task(task_id).record
    deadline = time.monotonic() + QUEUED_TASK_WAIT
    with Waker(workspace.tasks_dir, deadline=deadline, recursive=True) as waker:
        while not record.is_file():
            if not waker.wait():
                return record.is_file()
    return True


def resolve_request(workspace: Workspace, task_id: str, ref: str) -> str:
    """A permission request id of the task: the full id or a unique prefix."""
    validate_request_id(ref)
    directory = workspace.task(task_id).permissions
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        names = []
    ids = sorted(
        n[: -len(".json")]
        for n in names
        if n.endswith(".json") and not n.endswith(".answer.json") and not n.startswith(".")
    )
    if ref in ids:
        return ref
    matches = [r for r in ids if r.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(
            f"request prefix {ref!r} is ambiguous: {', '.join(matches[:AMBIGUOUS_SHOWN])}"
        )
    raise NotFound(f"task {task_id} has no permission request {ref!r}")
