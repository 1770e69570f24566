"""Who may act on which task: the MCP tools' access rules, over a snapshot of the files.

A task acts on itself (where a tool allows it) and on its descendants, including spawns
still queued or already rejected (their parent decides). A breach is `NotYours` (403);
the tools turn it into a tool error. `task_send` adds the parent rule itself.
"""

from __future__ import annotations

from meta_harness.base.errors import Conflict, MetaHarnessError, NotFound
from meta_harness.base.layout import validate_task_id
from meta_harness.domain.tasks import TaskRecord
from meta_harness.mcpserver.view import Snapshot, TaskFiles


class NotYours(MetaHarnessError):
    """The task exists but is not the caller's own or one of its descendants."""

    http_status = 403


def caller_record(snap: Snapshot, caller: str) -> TaskRecord:
    record = snap.records.get(caller)
    if record is None:
        raise NotFound(f"your task {caller} has no record in this workspace (was it removed?)")
    return record


def check_access(
    files: TaskFiles, snap: Snapshot, caller: str, task_id: str, *, self_ok: bool
) -> None:
    """Raise unless `task_id` is a descendant of `caller` (or the caller, if `self_ok`)."""
    validate_task_id(task_id)
    if task_id == caller:
        if self_ok:
            return
        raise NotYours(f"{task_id} is your own task; this tool acts on your descendants")
    anchor = task_id  # the task whose lineage decides: itself, or a rejected one's parent
    if not snap.exists(task_id):
        rejected = files.rejected_spawn(task_id)
        if rejected is None:
            raise NotFound(f"no task {task_id!r}; task_list shows the tasks you can act on")
        anchor = rejected[0]
        if anchor == caller:
            return
    if snap.is_descendant(anchor, caller):
        return
    raise NotYours(
        f"task {task_id} is not yours: a task may act only on itself and its descendants"
    )


def live_target(files: TaskFiles, snap: Snapshot, task_id: str, verb: str) -> TaskRecord:
    """The record of a task the caller may `verb`; a spawn not (yet) created is a Conflict."""
    record = snap.records.get(task_id)
    if record is None:
        if task_id in snap.queued:
            raise Conflict(
                f"task {task_id} is still queued (the supervisor has not created it "
                f"yet); try to {verb} it again in a moment"
            )
        rejected = files.rejected_spawn(task_id)
        reason = rejected[1] if rejected else "it does not exist"
        raise Conflict(f"task {task_id} was never created: {reason}")
    return record
