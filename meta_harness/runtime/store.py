"""The supervisor's in-memory view of durable state, written through to files.

`TaskStore` caches every task record and writes each change atomically (one writer per
file: this process); `TaskInbox` holds one task's WAL writer and folded delivery state,
and wakes that task's runner when something arrives; `EventLog` appends lifecycle events.
All methods are synchronous: they are only called from the supervisor's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from meta_harness.base.faults import crash_point
from meta_harness.base.fs import atomic_write, fsync_dir
from meta_harness.base.jsonl import JsonlWriter, read_records
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.domain.drops import MessageDrop
from meta_harness.domain.events import EventType, event
from meta_harness.domain.inbox import InboxState, ack_record, drop_record, msg_record, sent_record
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord, read_task, write_task

logger = logging.getLogger(__name__)


class EventLog:
    def __init__(self, workspace: Workspace) -> None:
        self._writer = JsonlWriter.open(workspace.events_file)

    def emit(self, etype: EventType, task: str | None = None, /, **fields: Any) -> None:
        self._writer.append([event(etype, task, **fields)], durable=False)

    def emit_all(self, records: list[dict[str, Any]]) -> None:
        """Several events in one write (ingest emits one per accepted message)."""
        self._writer.append(records, durable=False)

    def close(self) -> None:
        self._writer.close()


class TaskInbox:
    """One task's WAL: append-only, fdatasync'd, folded into `state`."""

    def __init__(self, paths: TaskPaths) -> None:
        self.paths = paths
        self._writer: JsonlWriter | None = None  # opened on first append, released when idle
        self.state = InboxState.fold(read_records(paths.wal))
        self.changed = asyncio.Event()
        if self.state.next_pending() is not None:
            self.changed.set()

    def accept(self, drops: list[MessageDrop]) -> list[MessageDrop]:
        """Append the new ones durably (one write, one fdatasync); return those accepted."""
        fresh: list[MessageDrop] = []
        seen: set[str] = set()
        for drop in drops:
            if self.state.knows(drop.id) or drop.id in seen:
                self.state.duplicates += 1
                continue
            seen.add(drop.id)
            fresh.append(drop)
        if fresh:
            records = [msg_record(d) for d in fresh]
            crash_point("ingest.before_wal")
            self.writer.append(records, durable=True)
            crash_point("ingest.after_wal")
            for record in records:
                self.state.apply(record)
            self.changed.set()
        return fresh

    def mark_sent(self, message_id: str, epoch: int) -> None:
        self._append(sent_record(message_id, epoch))

    def ack(self, message_id: str, stop: str, *, error: str | None = None) -> None:
        # Written through (a killed supervisor cannot lose it) but not fdatasync'd: after a
        # power cut a lost ack only makes the message in doubt, which the load replay
        # settles. The `sent` stamp before the prompt is the sync that matters.
        self._append(ack_record(message_id, stop, error=error), durable=False)

    def drop(self, message_id: str, reason: str) -> None:
        self._append(drop_record(message_id, reason))

    def _append(self, record: dict[str, Any], *, durable: bool = True) -> None:
        self.writer.append([record], durable=durable)
        self.state.apply(record)

    @property
    def writer(self) -> JsonlWriter:
        if self._writer is None:
            self._writer = JsonlWriter.open(self.paths.wal)  # cuts a torn tail first
        return self._writer

    def release(self) -> None:
        """Close the WAL descriptor (a workspace may hold thousands of idle tasks)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        self.release()


_WORKING = frozenset({TaskPhase.PENDING, TaskPhase.ACTIVE, TaskPhase.WAITING})


def _must_sync(old: TaskRecord | None, new: TaskRecord) -> bool:
    """Whether a record change needs fsync: all but active/waiting flips, which happen on
    every turn and which boot re-derives from the WAL (`TaskStore.rederive_phase`)."""
    if old is None or new.phase not in _WORKING or old.phase not in _WORKING:
        return True
    ignored = {"phase", "updated_at"}
    return any(
        getattr(old, name) != getattr(new, name)
        for name in type(new).model_fields
        if name not in ignored
    )


class TaskStore:
    """Every task record of the workspace, cached, written through atomically."""

    def __init__(self, workspace: Workspace, events: EventLog) -> None:
        self.workspace = workspace
        self.events = events
        self.records: dict[str, TaskRecord] = {}
        self.inboxes: dict[str, TaskInbox] = {}

    def load_all(self) -> None:
        for task_id in self.workspace.task_ids():
            paths = self.workspace.task(task_id)
            try:
                self.records[task_id] = read_task(paths)
            except (OSError, ValueError):
                logger.exception("task %s: unreadable task.json; skipped", task_id)

    def get(self, task_id: str) -> TaskRecord | None:
        return self.records.get(task_id)

    def inbox(self, task_id: str) -> TaskInbox:
        box = self.inboxes.get(task_id)
        if box is None:
            box = self.inboxes[task_id] = TaskInbox(self.workspace.task(task_id))
        return box

    def create(self, record: TaskRecord, profile_snapshot: bytes) -> None:
        paths = self.workspace.task(record.id)
        paths.dir.mkdir(parents=True, exist_ok=True)
        paths.inbox.mkdir(exist_ok=True)
        paths.permissions.mkdir(exist_ok=True)
        atomic_write(paths.profile_snapshot, profile_snapshot)
        write_task(paths, record)
        fsync_dir(self.workspace.tasks_dir)
        self.records[record.id] = record
        self.events.emit(
            EventType.TASK_CREATED,
            record.id,
            parent=record.parent,
            profile=record.profile,
            title=record.title,
        )

    def save(self, record: TaskRecord) -> TaskRecord:
        old = self.records.get(record.id)
        write_task(self.workspace.task(record.id), record, durable=_must_sync(old, record))
        self.records[record.id] = record
        if old is not None and old.phase != record.phase:
            self.events.emit(
                EventType.TASK_PHASE,
                record.id,
                **{"from": old.phase.value, "to": record.phase.value},
                reason=record.error or record.finished_by or "",
            )
        return record

    def set_phase(self, task_id: str, phase: TaskPhase, **changes: Any) -> TaskRecord:
        record = self.records[task_id]
        if record.phase == phase and not changes:
            return record
        return self.save(record.with_phase(phase, **changes))

    def update(self, task_id: str, **changes: Any) -> TaskRecord:
        return self.save(self.records[task_id].with_changes(**changes))

    def rederive_phase(self, task_id: str) -> None:
        """After a crash, bring a working task's phase in line with its WAL."""
        record = self.records[task_id]
        if record.phase not in _WORKING:
            return
        state = self.inbox(task_id).state
        if record.phase is TaskPhase.PENDING and state.acked:
            record = self.set_phase(task_id, TaskPhase.ACTIVE)
        if record.phase is TaskPhase.ACTIVE and state.next_pending() is None:
            self.set_phase(task_id, TaskPhase.WAITING)

    def children(self, task_id: str) -> list[TaskRecord]:
        return [r for r in self.records.values() if r.parent == task_id]

    def close(self) -> None:
        for box in self.inboxes.values():
            box.close()
