"""TaskStore: which record changes are fsync'd, and what boot repairs after a power cut."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meta_harness.base.jsonl import JsonlWriter
from meta_harness.base.layout import Workspace
from meta_harness.domain.inbox import sent_record
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import LoadOutcome, TaskRecord, read_task
from meta_harness.runtime.record_writer import RecordWriter
from meta_harness.runtime.store import EventLog, TaskStore, needs_fsync

BASE = TaskRecord(id="t1", phase=TaskPhase.WAITING, session_id="s1", epoch=3)


@pytest.mark.parametrize(
    ("changes", "durable"),
    [
        ({"phase": TaskPhase.ACTIVE}, False),
        ({"epoch": 4}, False),
        ({"epoch": 4, "phase": TaskPhase.ACTIVE}, False),
        ({"last_load": LoadOutcome.LOADED}, False),
        ({"last_load": LoadOutcome.RESUMED, "epoch": 4}, False),
        ({"last_load": LoadOutcome.FRESH_WITH_CONTEXT}, True),
        ({"session_id": "s2"}, True),
        ({"session_answered": False}, True),
        ({"phase": TaskPhase.DONE, "result": "ok"}, True),
        ({"phase": TaskPhase.FAILED}, True),
        ({"epoch": 4, "session_id": "s2"}, True),
    ],
)
def test_only_changes_that_boot_can_rebuild_skip_the_fsync(
    changes: dict[str, object], durable: bool
) -> None:
    assert needs_fsync(BASE, BASE.model_copy(update=changes)) is durable


def test_a_new_record_is_always_synced() -> None:
    assert needs_fsync(None, BASE)


def _store(root: Path) -> TaskStore:
    ws = Workspace.at(root)
    ws.ensure_dirs()
    return TaskStore(ws, EventLog(ws))


def test_boot_raises_an_epoch_lost_in_a_power_cut_to_the_last_sent_stamp(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    store.create(TaskRecord(id="t1", phase=TaskPhase.WAITING, epoch=2), b"")
    # The epoch-5 connection stamped a prompt in the WAL, but task.json still says 2
    # (its non-synced write was lost).
    paths = store.workspace.task("t1")
    writer = JsonlWriter.open(paths.wal)
    writer.append([sent_record("m1", 5)], durable=True)
    writer.close()
    store.close()

    rebooted = _store(tmp_path)
    rebooted.load_all()
    rebooted.rederive("t1")
    rebooted.writer.flush()
    assert rebooted.records["t1"].epoch == 5
    assert read_task(paths).epoch == 5
    rebooted.close()


def test_boot_keeps_a_record_epoch_ahead_of_the_wal(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create(TaskRecord(id="t1", phase=TaskPhase.WAITING, epoch=7), b"")
    mtime = os.stat(store.workspace.task("t1").record).st_mtime_ns
    store.rederive("t1")
    assert store.records["t1"].epoch == 7
    assert os.stat(store.workspace.task("t1").record).st_mtime_ns == mtime
    store.close()


def test_a_queued_record_change_is_on_disk_before_the_tasks_next_ack(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create(TaskRecord(id="t1", phase=TaskPhase.WAITING, epoch=1), b"")
    paths = store.workspace.task("t1")
    store.writer.close()
    store.writer = _HeldWriter()  # a queued write stays queued until someone writes it
    store.update("t1", epoch=2, last_load=LoadOutcome.LOADED)
    assert read_task(paths).epoch == 1  # queued
    store.inbox("t1").ack("m1", "end_turn")
    assert (read_task(paths).epoch, read_task(paths).last_load) == (2, LoadOutcome.LOADED)
    store.set_phase("t1", TaskPhase.ACTIVE)  # a phase change is on disk before its event
    assert read_task(paths).phase is TaskPhase.ACTIVE
    store.inbox("t1").close()


class _HeldWriter(RecordWriter):
    """Queues, but its background thread never runs."""

    def __init__(self) -> None:
        super().__init__()
        self._thread = _NeverRuns()  # type: ignore[assignment]


class _NeverRuns:
    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool:
        return False
