"""Read-side views of a workspace for the CLI: tasks, delivery counts, supervisor, requests.

Everything is read from the files the supervisor writes, with orjson rather than the
pydantic models (`ls` on thousands of tasks stays fast, and the read commands never pay
for pydantic). Nothing here writes. Session phases come from `events.jsonl`, read
backwards to the running supervisor's start: without a running supervisor every
session is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from meta_harness.base.jsonl import read_records, read_reversed
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.domain.drops import is_drop_name
from meta_harness.domain.events import EventType
from meta_harness.domain.inbox import InboxState
from meta_harness.domain.phases import TaskPhase

CREATE_TIME_SLACK = 0.05  # psutil's create_time is boot time + clock ticks: equal within a tick
PENDING = "pending"  # domain.permissions.RequestStatus.PENDING (that module loads pydantic)
ANSWER_SUFFIX = ".answer.json"


def read_json(path: os.PathLike[str] | str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            value = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


# -- supervisor ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupervisorStatus:
    running: bool
    pid: int | None = None
    started_at: float | None = None
    endpoints: dict[str, Any] = field(default_factory=dict)
    stale: bool = False  # supervisor.json left by a supervisor that is gone

    def as_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "started_at": self.started_at,
            "endpoints": self.endpoints,
        }


def supervisor_status(workspace: Workspace) -> SupervisorStatus:
    """Whether the supervisor named in `supervisor.json` is alive (same pid, same start time)."""
    info = read_json(workspace.supervisor_file)
    if info is None:
        return SupervisorStatus(False)
    import psutil  # ~30 ms; only commands that report liveness pay for it

    pid = info.get("pid")
    created = info.get("create_time")
    try:
        proc = psutil.Process(int(pid))  # type: ignore[arg-type]
        alive = proc.status() != psutil.STATUS_ZOMBIE and (
            not isinstance(created, int | float)
            or abs(proc.create_time() - created) < CREATE_TIME_SLACK
        )
    except (psutil.Error, TypeError, ValueError):
        alive = False
    started = info.get("started_at")
    endpoints = info.get("endpoints")
    return SupervisorStatus(
        running=alive,
        pid=pid if isinstance(pid, int) else None,
        started_at=float(started) if isinstance(started, int | float) else None,
        endpoints=endpoints if isinstance(endpoints, dict) else {},
        stale=not alive,
    )


def session_phases(workspace: Workspace) -> dict[str, str]:
    """Each task's session phase from its last `session.phase` event since the last start."""
    phases: dict[str, str] = {}
    for record in read_reversed(workspace.events_file):
        etype = record.get("type")
        if etype == EventType.SUPERVISOR and record.get("status") == "started":
            break
        task = record.get("task")
        if etype == EventType.SESSION_PHASE and isinstance(task, str) and task not in phases:
            phases[task] = str(record.get("to", "?"))
    return phases


# -- tasks -----------------------------------------------------------------------------------


def waiting_files(paths: TaskPaths) -> list[str]:
    """Drop files in the task's inbox that no supervisor has ingested yet."""
    try:
        return sorted(n for n in os.listdir(paths.inbox) if is_drop_name(n))
    except FileNotFoundError:
        return []


def message_counts(paths: TaskPaths) -> dict[str, int]:
    """WAL counts (accepted, delivered, pending, duplicates) plus files still waiting."""
    counts = InboxState.fold(read_records(paths.wal)).counts()
    counts["waiting_files"] = len(waiting_files(paths))
    return counts


@dataclass(frozen=True)
class TaskRow:
    id: str
    record: dict[str, Any]
    counts: dict[str, int]

    @property
    def parent(self) -> str | None:
        parent = self.record.get("parent")
        return parent if isinstance(parent, str) else None

    @property
    def phase(self) -> str:
        return str(self.record.get("phase", "?"))

    @property
    def ended(self) -> bool:
        """Done, failed or cancelled (an unknown phase counts as live)."""
        try:
            return TaskPhase(self.phase).terminal
        except ValueError:
            return False

    @property
    def unsent(self) -> int:
        """Messages not answered yet: pending in the WAL plus files waiting in the inbox."""
        return self.counts["pending"] + self.counts["waiting_files"]


def task_row(workspace: Workspace, task_id: str) -> TaskRow | None:
    paths = workspace.task(task_id)
    record = read_json(paths.record)
    if record is None:
        return None
    return TaskRow(task_id, record, message_counts(paths))


def task_rows(workspace: Workspace) -> list[TaskRow]:
    return [row for t in workspace.task_ids() if (row := task_row(workspace, t)) is not None]


# -- permission requests ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    task: str
    id: str
    record: dict[str, Any]
    answer_waiting: bool  # an answer file is there, not yet taken by the supervisor

    @property
    def pending(self) -> bool:
        return self.record.get("status") == PENDING

    def as_json(self) -> dict[str, Any]:
        return {**self.record, "task": self.task, "answer_waiting": self.answer_waiting}


def requests(workspace: Workspace, task_id: str) -> list[Request]:
    """Every permission request file of a task (pending or answered), oldest first."""
    directory = workspace.task(task_id).permissions
    try:
        names = set(os.listdir(directory))
    except FileNotFoundError:
        return []
    found: list[Request] = []
    for name in sorted(names):
        if name.startswith(".") or not name.endswith(".json") or name.endswith(ANSWER_SUFFIX):
            continue
        record = read_json(directory / name)
        if record is None:
            continue
        request_id = name[: -len(".json")]
        found.append(Request(task_id, request_id, record, f"{request_id}{ANSWER_SUFFIX}" in names))
    return found


def pending_requests(workspace: Workspace, task_ids: Iterable[str] | None = None) -> list[Request]:
    ids = workspace.task_ids() if task_ids is None else task_ids
    return [r for task_id in ids for r in requests(workspace, task_id) if r.pending]
