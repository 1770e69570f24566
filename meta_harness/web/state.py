"""Read models of the HTTP surface: what the workspace files say right now.

`TaskIndex` caches task records by file mtime (a tree request re-reads only changed
records); `EventFold` folds `events.jsonl` incrementally into session phases and pending
permission requests (reset at every supervisor start: sessions start absent and requests
of the previous run expire); `read_request` and `runtime_stats` read single files. Only
reads; nothing here writes.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from meta_harness.base.errors import InvalidId
from meta_harness.base.layout import Workspace, validate_request_id
from meta_harness.domain.events import EventType
from meta_harness.domain.permissions import RequestStatus
from meta_harness.domain.phases import SessionPhase
from meta_harness.domain.tasks import TaskRecord, read_task
from meta_harness.web.hub import Hub
from meta_harness.web.logs import read_window

STATS_FILE = "stats.json"  # written by the runtime's stats publisher (runtime/stats.py)
ANSWER_SUFFIX = ".answer.json"


@dataclass
class _Cached:
    stamp: tuple[int, int]  # (mtime_ns, size)
    record: TaskRecord


class TaskIndex:
    """Every task record of the workspace, re-read only when its file changed."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._cache: dict[str, _Cached] = {}

    def get(self, task_id: str) -> TaskRecord | None:
        paths = self.workspace.task(task_id)  # validates the id
        try:
            st = os.stat(paths.record)
        except FileNotFoundError:
            self._cache.pop(task_id, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(task_id)
        if cached is not None and cached.stamp == stamp:
            return cached.record
        try:
            record = read_task(paths)
        except (OSError, ValueError):
            return None  # replaced atomically, so this is a hand-made broken file
        self._cache[task_id] = _Cached(stamp, record)
        return record

    def all(self) -> list[TaskRecord]:
        ids = self.workspace.task_ids()
        for gone in set(self._cache) - set(ids):
            del self._cache[gone]
        records = [self.get(task_id) for task_id in ids]
        return [r for r in records if r is not None]


@dataclass
class EventFold:
    """Session phases and pending permission requests, folded from `events.jsonl`."""

    path: Path
    offset: int = 0
    sessions: dict[str, SessionPhase] = field(default_factory=dict)
    pending: dict[str, set[str]] = field(default_factory=dict)  # task -> request ids
    supervisor: str | None = None  # last supervisor status: started / stopping / stopped

    def refresh(self) -> EventFold:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.offset:  # the log was replaced: fold it again
            self._reset()
            self.offset = 0
        while True:
            records, nxt = read_window(self.path, self.offset)
            for _, record in records:
                self.apply(record)
            if nxt == self.offset:
                return self
            self.offset = nxt

    def _reset(self) -> None:
        self.sessions.clear()
        self.pending.clear()

    def apply(self, record: dict[str, Any]) -> None:
        etype = record.get("type")
        task = record.get("task")
        if etype == EventType.SUPERVISOR:
            status = record.get("status")
            if status == "started":
                self._reset()  # a new run: every session is absent, old requests expired
            if isinstance(status, str) and status != "config-reloaded":
                self.supervisor = status
            return
        if not isinstance(task, str):
            return
        if etype == EventType.SESSION_PHASE:
            with contextlib.suppress(ValueError):
                self.sessions[task] = SessionPhase(str(record.get("to")))
        elif etype == EventType.PERMISSION:
            request = record.get("request")
            if not isinstance(request, str):
                return
            if record.get("status") == RequestStatus.PENDING:
                self.pending.setdefault(task, set()).add(request)
            else:
                group = self.pending.get(task)
                if group is not None:
                    group.discard(request)
                    if not group:
                        del self.pending[task]

    def session(self, task_id: str) -> SessionPhase:
        return self.sessions.get(task_id, SessionPhase.ABSENT)

    def session_counts(self) -> dict[str, int]:
        return dict(Counter(phase.value for phase in self.sessions.values()))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None if it is missing or not a JSON object."""
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def request_path(workspace: Workspace, task_id: str, request_id: str) -> Path:
    return workspace.task(task_id).permissions / f"{validate_request_id(request_id)}.json"


def read_request(workspace: Workspace, task_id: str, request_id: str) -> dict[str, Any] | None:
    """One permission request file, with `answer_published` if an answer file waits beside it."""
    path = request_path(workspace, task_id, request_id)
    record = read_json(path)
    if record is not None:
        record["answer_published"] = path.with_name(request_id + ANSWER_SUFFIX).exists()
    return record


def task_requests(workspace: Workspace, task_id: str) -> list[dict[str, Any]]:
    """Every permission request of one task (pending and answered), oldest first."""
    directory = workspace.task(task_id).permissions
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for name in names:
        if name.startswith(".") or not name.endswith(".json") or name.endswith(ANSWER_SUFFIX):
            continue
        with contextlib.suppress(InvalidId):
            record = read_request(workspace, task_id, name[: -len(".json")])
            if record is not None:
                out.append(record)
    return out


def pending_requests(workspace: Workspace, fold: EventFold) -> list[dict[str, Any]]:
    """Requests the events say are pending, confirmed by their files."""
    out: list[dict[str, Any]] = []
    for task_id, requests in sorted(fold.pending.items()):
        for request_id in sorted(requests):
            with contextlib.suppress(InvalidId):
                record = read_request(workspace, task_id, request_id)
                if record is not None and record.get("status") == RequestStatus.PENDING:
                    out.append(record)
    return out


def runtime_stats(workspace: Workspace) -> dict[str, Any] | None:
    """The supervisor's published slot/swap statistics, if a supervisor wrote them."""
    return read_json(workspace.state_dir / STATS_FILE)


def supervisor_info(workspace: Workspace) -> dict[str, Any] | None:
    return read_json(workspace.supervisor_file)


@dataclass
class WebState:
    """What every route of one app shares: the workspace, the read models, the watcher."""

    workspace: Workspace
    index: TaskIndex
    events: EventFold
    hub: Hub
