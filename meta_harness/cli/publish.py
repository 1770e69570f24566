"""The files the CLI publishes: task drops, messages, controls and permission answers.

Every payload is parsed with the supervisor's own parser (`domain.drops`,
`domain.permissions.parse_answer`) before it is published, so what the CLI writes is
never rejected for its shape. Publishing is `base.fs.write_new`: written under a
dot-name, then renamed into place, so a watcher never sees half a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from meta_harness.base.errors import DropRejected, UsageError
from meta_harness.base.fs import write_new
from meta_harness.base.layout import Workspace, new_id
from meta_harness.domain.drops import (
    Control,
    MessageDrop,
    TaskDrop,
    parse_message_drop,
    parse_task_drop,
)

SENDER = "cli"  # the `from` of everything the CLI publishes


def _task_drop(name: str, data: bytes) -> TaskDrop:
    try:
        return parse_task_drop(name, data)
    except DropRejected as e:
        raise UsageError(e.message) from None


def _message_drop(name: str, data: bytes) -> MessageDrop:
    try:
        return parse_message_drop(name, data)
    except DropRejected as e:
        raise UsageError(e.message) from None


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
    task_id = task_id or new_id("t")
    payload: dict[str, Any] = {"id": task_id, "prompt": prompt, "from": SENDER}
    for key, value in (("title", title), ("profile", profile), ("parent", parent)):
        if value:
            payload[key] = value
    if oneshot:
        payload["mode"] = "oneshot"
    name = f"{task_id}.json"
    data = orjson.dumps(payload)
    drop = _task_drop(name, data)
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    write_new(workspace.inbox / name, data)
    return drop


def _publish_message(workspace: Workspace, task_id: str, payload: dict[str, Any]) -> MessageDrop:
    message_id = new_id("m")
    name = f"{message_id}.json"
    data = orjson.dumps({"id": message_id, "from": SENDER, **payload})
    drop = _message_drop(name, data)
    inbox = workspace.task(task_id).inbox
    inbox.mkdir(parents=True, exist_ok=True)
    write_new(inbox / name, data)
    return drop


def publish_message(workspace: Workspace, task_id: str, text: str) -> MessageDrop:
    """A text message to an existing task: `tasks/<id>/inbox/<msg-id>.json`."""
    return _publish_message(workspace, task_id, {"text": text})


def publish_control(
    workspace: Workspace, task_id: str, control: Control, result: str | None = None
) -> MessageDrop:
    """`cancel` or `complete` (with its result), applied by the supervisor, never prompted."""
    payload: dict[str, Any] = {"control": control.value}
    if result is not None:
        payload["result"] = result
    return _publish_message(workspace, task_id, payload)


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
    from meta_harness.domain.permissions import parse_answer  # loads the config models

    payload = {
        "decision": "allow" if allow else "reject",
        "always": always,
        "by": SENDER,
        "reason": reason,
    }
    data = orjson.dumps(payload)
    try:
        parse_answer(orjson.loads(data))
    except ValueError as e:
        raise UsageError(str(e)) from None
    path = workspace.task(task_id).permissions / f"{request_id}.answer.json"
    write_new(path, data)
    return path
