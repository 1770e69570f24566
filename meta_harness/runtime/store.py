"""The supervisor's in-memory view of durable state, written through to files.

`TaskStore` caches every task record and writes each change atomically (one writer per
file: this process): synchronously with fsync when durability is promised, synchronously
without fsync for a phase change (before its event), else queued to the `RecordWriter`
thread and written at the latest before the task's next ack; `TaskInbox` holds one
task's WAL writer and folded delivery state, and wakes that task's runner when something
arrives; `EventLog` appends lifecycle events.
Called only from the supervisor's event loop; all synchronous but `mark_sent`, whose
fdatasync runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from meta_harness.base.faults import crash_point
from meta_harness.base.fs import atomic_write, fsync_dir
from meta_harness.base.jsonl import JsonlWriter, read_records
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.domain.drops import MessageDrop
from meta_harness.domain.events import EventType, event
from meta_harness.domain.inbox import InboxState, ack_record, drop_record, msg_record, sent_record
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import LoadOutcome, TaskRecord, encode_task, read_task
from meta_harness.runtime.record_writer import RecordWriter

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
        self.before_ack: Callable[[], None] = lambda: None  # TaskStore: settle the record
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

    async def mark_sent(self, message_id: str, epoch: int, *, offload: bool) -> None:
        """Stamp a message in flight, durably, before its prompt goes out. With `offload`
        (other sessions are working) the fdatasync runs on a worker thread, so their turns
        go on meanwhile; alone, it runs inline: the thread hop would cost more (~0.5 ms)
        than the fdatasync itself."""
        self._append(sent_record(message_id, epoch), durable=not offload)
        if offload:
            await asyncio.to_thread(self.writer.detached_sync())

    def ack(self, message_id: str, stop: str, *, error: str | None = None) -> None:
        # Written through (a killed supervisor cannot lose it) but not fdatasync'd: after a
        # power cut a lost ack only makes the message in doubt, which the load replay
        # settles. The `sent` stamp before the prompt is the sync that matters.
        self.before_ack()
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
# Fields whose change alone is written without fsync (atomic rename only: a killed
# supervisor never loses them; a power cut may), because boot rebuilds them:
# `epoch` from the WAL's `sent` stamps (`TaskStore.rederive`), `updated_at` is cosmetic.
_REBUILT_FIELDS = frozenset({"phase", "updated_at", "epoch"})
# A routine restore outcome is informational (the transcript notes it too); a fresh start
# after a failed load is what the task must record, so that one is synced.
_ROUTINE_LOADS = frozenset({LoadOutcome.LOADED, LoadOutcome.RESUMED})


def needs_fsync(old: TaskRecord | None, new: TaskRecord) -> bool:
    """Whether a record change needs fsync. Not needed for the changes made on every turn
    or every swap-in: active/waiting flips (boot re-derives them from the WAL), the
    connection epoch (rebuilt from `sent` stamps) and a routine load outcome."""
    if old is None:
        return True
    if old.phase != new.phase and (new.phase not in _WORKING or old.phase not in _WORKING):
        return True
    for name in type(new).model_fields:
        if name in _REBUILT_FIELDS or getattr(old, name) == getattr(new, name):
            continue
        if name == "last_load" and new.last_load in _ROUTINE_LOADS:
            continue
        return True
    return False


class TaskStore:
    """Every task record of the workspace, cached, written through atomically."""

    def __init__(self, workspace: Workspace, events: EventLog) -> None:
        self.workspace = workspace
        self.events = events
        self.records: dict[str, TaskRecord] = {}
        self.inboxes: dict[str, TaskInbox] = {}
        self.writer = RecordWriter()  # task.json changes that need no fsync, off the loop

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
            box.before_ack = lambda: self.settle(task_id)
        return box

    def create(self, record: TaskRecord, profile_snapshot: bytes) -> None:
        paths = self.workspace.task(record.id)
        paths.dir.mkdir(parents=True, exist_ok=True)
        paths.inbox.mkdir(exist_ok=True)
        paths.permissions.mkdir(exist_ok=True)
        atomic_write(paths.profile_snapshot, profile_snapshot)
        self.writer.write_now(paths.record, encode_task(record), durable=True)
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
        path = self.workspace.task(record.id).record
        phase_changed = old is not None and old.phase != record.phase
        if needs_fsync(old, record):
            self.writer.write_now(path, encode_task(record), durable=True)
        elif phase_changed:
            # written before its `task.phase` event: whoever sees the event reads the phase
            self.writer.write_now(path, encode_task(record), durable=False)
        else:
            self.writer.write_later(path, encode_task(record))
        self.records[record.id] = record
        if phase_changed:
            assert old is not None
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

    def settle(self, task_id: str) -> None:
        """Write a queued change of the task's record now: called before an ack, so that
        whoever sees the ack in the WAL reads a record as of that turn."""
        self.writer.write_pending(self.workspace.task(task_id).record)

    def rederive(self, task_id: str) -> None:
        """After a crash, bring what was written without fsync in line with the WAL: a
        working task's phase, and the connection epoch (never reused by a new connection)."""
        record = self.records[task_id]
        state = self.inbox(task_id).state
        if state.last_epoch > record.epoch:
            record = self.update(task_id, epoch=state.last_epoch)
        if record.phase not in _WORKING:
            return
        if record.phase is TaskPhase.PENDING and state.acked:
            record = self.set_phase(task_id, TaskPhase.ACTIVE)
        if record.phase is TaskPhase.ACTIVE and state.next_pending() is None:
            self.set_phase(task_id, TaskPhase.WAITING)

    def children(self, task_id: str) -> list[TaskRecord]:
        return [r for r in self.records.values() if r.parent == task_id]

    def close(self) -> None:
        self.writer.close()
        for box in self.inboxes.values():
            box.close()
