"""The files the CLI publishes: task drops, messages, controls and permission answers.

The CLI's arguments (`--oneshot`, approve/reject) mapped onto `domain.publish`, which
builds, checks and publishes each file, with `cli` as its sender. A malformed request is
a `UsageError` (exit 2) with the supervisor's own reason.
"""

from __future__ import annotations

from pathlib import Path

from meta_harness.base.layout import Workspace
from meta_harness.domain import publish
from meta_harness.domain.drops import Control, MessageDrop, TaskDrop

SENDER = "cli"  # the `from` of everything the CLI publishes


def publish_task(
    workspace: Workspace,
    prompt: str,
    *,
    task_id: str | None = None,
    title: str | None = None,
    profile: str | None = None,
    parent: str | None = None,
    oneshot: bool = False,
) -> TaskDrop:
    """A new top-level (or child, with `parent`) task: `inbox/<task-id>.json`."""
    mode = "oneshot" if oneshot else None
    fields = publish.task_fields(prompt, title=title, profile=profile, parent=parent, mode=mode)
    return publish.publish_task(workspace, fields, sender=SENDER, task_id=task_id)


def publish_message(workspace: Workspace, task_id: str, text: str) -> MessageDrop:
    """A text message to an existing task: `tasks/<id>/inbox/<msg-id>.json`."""
    return publish.publish_text(workspace, task_id, text, sender=SENDER)


def publish_control(
    workspace: Workspace, task_id: str, control: Control, result: str | None = None
) -> MessageDrop:
    """`cancel` or `complete` (with its result), applied by the supervisor, never prompted."""
    return publish.publish_control(workspace, task_id, control, sender=SENDER, result=result)


def publish_answer(
    workspace: Workspace,
    task_id: str,
    request_id: str,
    *,
    allow: bool,
    always: bool,
    reason: str = "",
) -> Path:
    """`tasks/<id>/permissions/<req>.answer.json`, read by the supervisor's permission gate."""
    decision = "allow" if allow else "reject"
    return publish.publish_answer(
        workspace, task_id, request_id, decision=decision, always=always, reason=reason, by=SENDER
    )
