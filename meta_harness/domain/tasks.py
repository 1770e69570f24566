"""The durable task record (`tasks/<id>/task.json`) and its reading and writing.

Only the supervisor writes a task record, always atomically. Surfaces read it. The
record says what the task is (prompt origin, parent, profile, mode, phase, ACP session
id, result); what its process is doing right now lives in the session phase instead.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meta_harness.base.fs import atomic_write
from meta_harness.base.layout import TaskPaths
from meta_harness.domain.phases import TaskPhase, advance_task

RECORD_VERSION = 1


class TaskMode(StrEnum):
    SESSION = "session"  # a conversation: after each turn the task waits for more
    ONESHOT = "oneshot"  # the end of the first turn finishes the task with its text as result


class LoadOutcome(StrEnum):
    """How the task's last restore went (docs/design.md §Swap)."""

    LOADED = "loaded"
    RESUMED = "resumed"
    FRESH_WITH_CONTEXT = "fresh-with-context"  # load failed; a new session got the transcript


class TaskRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int = RECORD_VERSION
    id: str
    title: str = ""
    parent: str | None = None
    depth: int = 0
    profile: str = "demo"
    mode: TaskMode = TaskMode.SESSION
    phase: TaskPhase = TaskPhase.PENDING
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    cwd: str = ""
    created_from: str = ""  # the drop file or surface that created it
    session_id: str | None = None
    # False from session/new until the agent first answers a prompt: such a session is not
    # on the agent's disk yet, so a failed load of it loses nothing (a new one replaces it).
    # Records written before this field existed count as answered.
    session_answered: bool = True
    epoch: int = 0  # connections made so far; transcript frames carry it
    result: str | None = None
    error: str | None = None
    finished_by: str | None = None  # "agent", "user", "oneshot", "parent", "supervisor"
    last_load: LoadOutcome | None = None
    pinned_reason: str | None = None

    def with_phase(self, phase: TaskPhase, **changes: Any) -> TaskRecord:
        """A copy in `phase` (checked against the table) with `changes` applied."""
        new_phase = advance_task(self.phase, phase)
        return self.model_copy(update={"phase": new_phase, "updated_at": time.time(), **changes})

    def with_changes(self, **changes: Any) -> TaskRecord:
        return self.model_copy(update={"updated_at": time.time(), **changes})


def read_task(paths: TaskPaths) -> TaskRecord:
    return TaskRecord.model_validate_json(paths.record.read_bytes())


def encode_task(record: TaskRecord) -> bytes:
    """The bytes of `task.json`."""
    return record.model_dump_json(indent=2).encode() + b"\n"


def write_task(paths: TaskPaths, record: TaskRecord, *, durable: bool = True) -> None:
    """Atomic always; `durable=False` skips the fsyncs (for state the WAL can rebuild)."""
    atomic_write(paths.record, encode_task(record), durable=durable)


def read_task_or_none(paths: TaskPaths) -> TaskRecord | None:
    try:
        return read_task(paths)
    except (FileNotFoundError, ValueError):
        return None


def task_dir_exists(path: Path) -> bool:
    return (path / "task.json").is_file()
