"""What the MCP tools read: task records, lineage, delivery counts, queued and rejected spawns.

Everything comes from files: `task.json` (re-read only when its size or mtime changed),
`inbox.wal.jsonl` (folded with `domain.inbox`), spawn drops this surface published
that the supervisor has not ingested yet (`inbox/spawn+<parent>+<child>.json`), and
their `.error` files in `.meta-harness/rejected/`. Nothing here writes and nothing
here knows MCP. Safe to call from several threads at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass

import orjson

from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace
from meta_harness.domain.inbox import InboxState
from meta_harness.domain.tasks import TaskRecord
from meta_harness.mcpserver.publish import parse_spawn_name

logger = logging.getLogger(__name__)

MAX_LINEAGE = 1000  # parent links followed before a (corrupt) cycle is assumed


@dataclass(frozen=True)
class Snapshot:
    """Every task record, plus spawns still waiting in `inbox/` (child -> parent)."""

    records: dict[str, TaskRecord]
    queued: dict[str, str]

    def parent_of(self, task_id: str) -> str | None:
        record = self.records.get(task_id)
        if record is not None:
            return record.parent
        return self.queued.get(task_id)

    def exists(self, task_id: str) -> bool:
        return task_id in self.records or task_id in self.queued

    def is_descendant(self, task_id: str, ancestor: str) -> bool:
        """Whether `ancestor` is a parent, grandparent, ... of `task_id` (not itself)."""
        current = self.parent_of(task_id)
        for _ in range(MAX_LINEAGE):
            if current is None:
                return False
            if current == ancestor:
                return True
            current = self.parent_of(current)
        logger.warning(
            "task %s: parent chain longer than %d; treated as foreign", task_id, MAX_LINEAGE
        )
        return False

    def children(self, task_id: str) -> list[str]:
        """Ids of the direct children, created or queued, oldest first (ids sort by time)."""
        found = {r.id for r in self.records.values() if r.parent == task_id}
        found.update(c for c, p in self.queued.items() if p == task_id)
        return sorted(found)


class TaskFiles:
    """A cache of `task.json` files keyed by (mtime, size): each call re-reads only changes."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], TaskRecord]] = {}

    def snapshot(self) -> Snapshot:
        with self._lock:
            records = self._refresh()
        queued = {child: parent for parent, child in self.queued_spawns() if child not in records}
        return Snapshot(records, queued)

    def record(self, task_id: str) -> TaskRecord | None:
        """One task's record, fresh from its file (None if it has none)."""
        path = self.workspace.task(task_id).record
        try:
            return TaskRecord.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            return None

    def _refresh(self) -> dict[str, TaskRecord]:
        seen: dict[str, tuple[tuple[int, int], TaskRecord]] = {}
        for task_id in self.workspace.task_ids():
            path = self.workspace.task(task_id).record
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(task_id)
            if cached is not None and cached[0] == key:
                seen[task_id] = cached
                continue
            try:
                record = TaskRecord.model_validate_json(path.read_bytes())
            except (OSError, ValueError):
                logger.warning("task %s: unreadable task.json; skipped", task_id)
                continue
            seen[task_id] = (key, record)
        self._cache = seen
        return {task_id: record for task_id, (_, record) in seen.items()}

    def queued_spawns(self) -> list[tuple[str, str]]:
        """`(parent, child)` of every spawn drop still waiting in `inbox/`."""
        try:
            names = os.listdir(self.workspace.inbox)
        except FileNotFoundError:
            return []
        return [pair for name in names if (pair := parse_spawn_name(name)) is not None]

    def rejected_spawn(self, child: str) -> tuple[str, str] | None:
        """`(parent, reason)` if the supervisor rejected the spawn of `child`."""
        suffix = f"+{child}.json.error"
        try:
            names = os.listdir(self.workspace.rejected_dir)
        except FileNotFoundError:
            return None
        for name in names:
            if not name.endswith(suffix):
                continue
            _, _, spawn = name.partition("spawn+")
            pair = parse_spawn_name("spawn+" + spawn.removesuffix(".error"))
            if pair is None or pair[1] != child:
                continue
            reason = "rejected by the supervisor"
            with contextlib.suppress(OSError, ValueError):
                info = orjson.loads((self.workspace.rejected_dir / name).read_bytes())
                reason = str(info.get("reason") or reason)
            return pair[0], reason
        return None

    def message_counts(self, task_id: str) -> dict[str, int]:
        """accepted / delivered / pending / duplicates, folded from the task's WAL."""
        return InboxState.fold(read_records(self.workspace.task(task_id).wal)).counts()
