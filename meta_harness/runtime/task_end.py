"""What a task's end sets off beyond the task: the cancel cascade and the result to its parent.

A cancelled task's live descendants each get a cancel; an ended child's result reaches
its parent as a message. Both are drops with deterministic ids, so boot repeats them
safely after a crash cut them short. `wake` starts (or finds) the runner of a task. A
task that ends done or failed leaves its unfinished children running (their work may be
wanted; their records keep their results), and says so: a warning event on the parent
when it ends, and on each child whose result finds its parent ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from meta_harness.domain.drops import Control, MessageDrop
from meta_harness.domain.events import EventType
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord
from meta_harness.runtime.store import TaskStore

if TYPE_CHECKING:
    from meta_harness.runtime.runner import TaskRunner

Wake = Callable[[str], "TaskRunner | None"]


def cancel_descendants(
    store: TaskStore, task_id: str, children: Callable[[str], list[TaskRecord]], wake: Wake
) -> None:
    """Send a cancel to every live descendant of `task_id`, also under ended children.

    A live one cascades further when it applies its cancel; a child that has already
    ended (a oneshot that answered) may still have live children of its own. The
    drop id is deterministic, so doing this again at boot (a crash cut the cascade
    short) adds nothing twice.
    """
    drop = MessageDrop(
        id=f"cancel-by-{task_id}",
        sender=f"task:{task_id}",
        content=[],
        control=Control.CANCEL,
    )
    frontier = children(task_id)
    seen: set[str] = set()
    while frontier:
        child = frontier.pop()
        if child.id in seen:
            continue
        seen.add(child.id)
        if child.phase.terminal:
            frontier.extend(children(child.id))
        elif store.inbox(child.id).accept([drop]):
            child_runner = wake(child.id)
            if child_runner is not None:
                child_runner.interrupt()


def warn_unfinished_children(store: TaskStore, task_id: str) -> None:
    """A task ended done or failed while children of it still work: say so on the task."""
    record = store.get(task_id)
    if record is None or record.phase is TaskPhase.CANCELLED:
        return  # its children are being cancelled
    live = sorted(c.id for c in store.children(task_id) if not c.phase.terminal)
    if live:
        shown = ", ".join(live[:5]) + (", …" if len(live) > 5 else "")
        store.events.emit(
            EventType.WARNING,
            task_id,
            message=f"ended {record.phase} with {len(live)} unfinished child task(s) "
            f"({shown}): they keep running, but their results cannot reach it; "
            "cancel them with `meta-harness cancel` if they are not wanted",
        )


def deliver_result(store: TaskStore, task_id: str, wake: Wake, *, warn: bool = False) -> None:
    """Give an ended child's result (or failure) to its live parent, once. With `warn`
    (the child just ended, not a boot replay), a parent already ended is a warning."""
    record = store.get(task_id)
    if record is None or record.parent is None:
        return
    parent = store.get(record.parent)
    if parent is None:
        return
    if parent.phase.terminal:
        if warn and parent.phase is not TaskPhase.CANCELLED:
            store.events.emit(
                EventType.WARNING,
                task_id,
                message=f"result not delivered: parent {parent.id} had already ended "
                f"({parent.phase}); it stays in this task's record",
            )
        return
    if record.phase is TaskPhase.DONE:
        text = f"Child task {task_id} ({record.title}) finished:\n{record.result or ''}"
    else:
        text = f"Child task {task_id} ({record.title}) {record.phase}: {record.error or ''}"
    drop = MessageDrop(
        id=f"result:{task_id}",
        sender=f"task:{task_id}",
        content=[{"type": "text", "text": text}],
        meta={"child": task_id, "phase": record.phase.value},
    )
    if store.inbox(parent.id).accept([drop]):
        wake(parent.id)
