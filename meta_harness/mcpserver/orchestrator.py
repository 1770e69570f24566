"""The MCP tools' logic: each tool as a plain sync method over files (tools run in threads).

`Orchestrator` takes the verified caller id, checks access (`access`) and the caller's
profile limits, reads state from files (`view`), publishes drops (`domain.publish`,
spawns via `publish`) and returns a result model (`results`). It knows nothing of MCP:
errors are `MetaHarnessError`s, which `tools` turns into tool errors.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from meta_harness.base.config import Config, Limits, Profile
from meta_harness.base.errors import Conflict, NotFound
from meta_harness.base.layout import Workspace
from meta_harness.domain import publish
from meta_harness.domain.drops import Control
from meta_harness.domain.tasks import TaskRecord
from meta_harness.mcpserver.access import NotYours, caller_record, check_access, live_target
from meta_harness.mcpserver.publish import publish_spawn, sender
from meta_harness.mcpserver.results import (
    QUEUED,
    REJECTED,
    Cancelled,
    Completed,
    Messages,
    Sent,
    Spawned,
    TaskList,
    TaskNode,
    TaskResult,
    TaskStatus,
)
from meta_harness.mcpserver.settings import ConfigSource
from meta_harness.mcpserver.view import Snapshot, TaskFiles

logger = logging.getLogger(__name__)

FINISHED_BY_AGENT = "agent"  # the `from` of task_complete: `finished_by` says the agent did it
MAX_TREE_DEPTH = 64  # task_list stops descending here (a corrupt parent cycle stays finite)


class Orchestrator:
    """The tools' rules over files; each method takes the verified caller id."""

    def __init__(self, workspace: Workspace, config: ConfigSource) -> None:
        self.workspace = workspace
        self.config = config
        self.files = TaskFiles(workspace)
        self._spawn_lock = threading.Lock()  # validate + publish of one spawn at a time

    def _limits(self, config: Config, record: TaskRecord) -> Limits:
        """The limits the supervisor's ingest will apply to the children of `record`."""
        profile = config.profiles.get(record.profile)
        if profile is None:
            snapshot = self.workspace.task(record.id).profile_snapshot
            with contextlib.suppress(OSError, ValueError):
                profile = Profile.model_validate_json(snapshot.read_bytes())
        return profile.limits if profile is not None else Limits()

    def spawn(
        self, caller: str, prompt: str, profile: str | None, title: str | None, mode: str
    ) -> Spawned:
        config = self.config()
        with self._spawn_lock:
            snap = self.files.snapshot()
            parent = caller_record(snap, caller)
            if parent.phase.terminal:
                raise Conflict(
                    f"your task {caller} has already ended ({parent.phase}); "
                    "an ended task cannot spawn children"
                )
            name = profile or parent.profile
            if name not in config.profiles:
                known = ", ".join(sorted(config.profiles)) or "none"
                raise NotFound(f"unknown profile {name!r}; known profiles: {known}")
            limits = self._limits(config, parent)
            depth = parent.depth + 1
            if depth > limits.max_depth:
                raise Conflict(
                    f"too deep: a child of {caller} would be at depth {depth}, beyond "
                    f"max_depth {limits.max_depth} of profile {parent.profile}; do the work "
                    "yourself or ask your parent"
                )
            children = snap.children(caller)
            if len(children) >= limits.max_children:
                raise Conflict(
                    f"too many children: {caller} already has {len(children)} "
                    f"(max_children {limits.max_children} of profile {parent.profile}); "
                    "wait for some to finish or reuse one with task_send"
                )
            size = len(prompt.encode()) + len((title or "").encode())
            if size > config.settings.supervisor.max_drop_bytes:
                raise Conflict(
                    f"prompt too large ({size} bytes; limit "
                    f"{config.settings.supervisor.max_drop_bytes}); put the material in a "
                    "file and pass its path"
                )
            child = publish.new_task_id()
            publish_spawn(
                self.workspace,
                parent=caller,
                child=child,
                prompt=prompt,
                profile=name,
                mode=mode,
                title=title,
            )
        logger.info("task %s spawned %s (profile %s, %s)", caller, child, name, mode)
        return Spawned(
            task_id=child,
            profile=name,
            mode=mode,
            note=f"Started. Its result will arrive as a message from task:{child}.",
        )

    def status(self, caller: str, task_id: str | None) -> TaskStatus:
        snap = self.files.snapshot()
        target = task_id or caller
        check_access(self.files, snap, caller, target, self_ok=True)
        record = snap.records.get(target)
        if record is None:
            return self._not_created(snap, target)
        return TaskStatus(
            task_id=record.id,
            phase=record.phase.value,
            title=record.title,
            profile=record.profile,
            mode=record.mode.value,
            parent=record.parent,
            depth=record.depth,
            result=record.result,
            error=record.error,
            finished_by=record.finished_by,
            children=len(snap.children(target)),
            messages=Messages(**self.files.message_counts(target)),
        )

    def _not_created(self, snap: Snapshot, task_id: str) -> TaskStatus:
        if task_id in snap.queued:
            return TaskStatus(task_id=task_id, phase=QUEUED, parent=snap.queued[task_id])
        rejected = self.files.rejected_spawn(task_id)
        if rejected is not None:
            return TaskStatus(
                task_id=task_id, phase=REJECTED, parent=rejected[0], error=rejected[1]
            )
        raise NotFound(f"no task {task_id!r}")

    def tree(self, caller: str) -> TaskList:
        snap = self.files.snapshot()
        caller_record(snap, caller)

        def node(task_id: str, depth: int) -> TaskNode:
            record = snap.records.get(task_id)
            kids = snap.children(task_id) if depth < MAX_TREE_DEPTH else []
            return TaskNode(
                task_id=task_id,
                title=record.title if record else "",
                phase=record.phase.value if record else QUEUED,
                profile=record.profile if record else None,
                children=[node(k, depth + 1) for k in kids],
            )

        return TaskList(tasks=[node(c, 1) for c in snap.children(caller)])

    def send(self, caller: str, task_id: str, text: str) -> Sent:
        snap = self.files.snapshot()
        me = caller_record(snap, caller)
        if task_id == caller:
            raise NotYours("you cannot message your own task; just continue your work")
        if task_id != me.parent:
            check_access(self.files, snap, caller, task_id, self_ok=False)
        record = live_target(self.files, snap, task_id, "message")
        if record.phase.terminal:
            raise Conflict(f"task {task_id} has ended ({record.phase}); it cannot receive messages")
        drop = publish.publish_text(self.workspace, task_id, text, sender=sender(caller))
        return Sent(task_id=task_id, message_id=drop.id)

    def result(self, caller: str, task_id: str) -> TaskResult:
        snap = self.files.snapshot()
        check_access(self.files, snap, caller, task_id, self_ok=False)
        record = snap.records.get(task_id)
        if record is None:
            status = self._not_created(snap, task_id)
            finished = status.phase == REJECTED
            return TaskResult(
                task_id=task_id,
                phase=status.phase,
                finished=finished,
                error=status.error,
                status=f"never created: {status.error}"
                if finished
                else "not finished yet (queued)",
            )
        if not record.phase.terminal:
            return TaskResult(
                task_id=task_id,
                phase=record.phase.value,
                finished=False,
                status=f"not finished yet ({record.phase.value})",
            )
        return TaskResult(
            task_id=task_id,
            phase=record.phase.value,
            finished=True,
            result=record.result,
            error=record.error,
            status=record.phase.value,
        )

    def cancel(self, caller: str, task_id: str) -> Cancelled:
        snap = self.files.snapshot()
        check_access(self.files, snap, caller, task_id, self_ok=False)
        record = live_target(self.files, snap, task_id, "cancel")
        if record.phase.terminal:
            return Cancelled(
                task_id=task_id, phase=record.phase.value, status=f"already {record.phase.value}"
            )
        publish.publish_control(self.workspace, task_id, Control.CANCEL, sender=sender(caller))
        return Cancelled(
            task_id=task_id,
            phase=record.phase.value,
            status="cancel requested; the task and its descendants will stop",
        )

    def complete(self, caller: str, result: str) -> Completed:
        record = self.files.record(caller)
        if record is None:
            raise NotFound(f"your task {caller} has no record in this workspace")
        if record.phase.terminal:
            raise Conflict(f"your task {caller} has already ended ({record.phase})")
        publish.publish_control(
            self.workspace, caller, Control.COMPLETE, sender=FINISHED_BY_AGENT, result=result
        )
        return Completed(
            task_id=caller,
            status="completion requested; your task will be marked done with this result",
        )
