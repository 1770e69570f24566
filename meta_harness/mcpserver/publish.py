"""The drop files the MCP tools publish, and how they are named.

A spawn is a task drop `inbox/spawn+<parent>+<child>.json`: the name carries both ids
(task ids cannot contain `+`), so counting a parent's queued spawns and finding a
rejected one need no reads. Messages and controls go to `tasks/<id>/inbox/`. Every
payload is parsed with the supervisor's own parser before it is published, so a drop
we publish is never rejected for its shape. Publishing is `base.fs.write_new`.
"""

from __future__ import annotations

from typing import Any

import orjson

from meta_harness.base.fs import write_new
from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import (
    Control,
    MessageDrop,
    TaskDrop,
    parse_message_drop,
    parse_task_drop,
)

SPAWN_PREFIX = "spawn+"
SPAWN_SUFFIX = ".json"


def sender(task_id: str) -> str:
    """The `from` of everything a task sends through the tools."""
    return f"task:{task_id}"


def spawn_name(parent: str, child: str) -> str:
    return f"{SPAWN_PREFIX}{parent}+{child}{SPAWN_SUFFIX}"


def parse_spawn_name(name: str) -> tuple[str, str] | None:
    """`(parent, child)` of a spawn drop's file name, or None for any other name."""
    if not name.startswith(SPAWN_PREFIX) or not name.endswith(SPAWN_SUFFIX):
        return None
    parent, sep, child = name[len(SPAWN_PREFIX) : -len(SPAWN_SUFFIX)].partition("+")
    if not sep or not parent or not child or "+" in child:
        return None
    return parent, child


def publish_spawn(
    workspace: Workspace,
    *,
    parent: str,
    child: str,
    prompt: str,
    profile: str,
    mode: str,
    title: str | None,
) -> TaskDrop:
    payload: dict[str, Any] = {
        "id": child,
        "parent": parent,
        "prompt": prompt,
        "profile": profile,
        "mode": mode,
        "from": sender(parent),
    }
    if title:
        payload["title"] = title
    name = spawn_name(parent, child)
    data = orjson.dumps(payload)
    drop = parse_task_drop(name, data)  # raises DropRejected: the tool reports it
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    write_new(workspace.inbox / name, data)
    return drop


def publish_message(
    workspace: Workspace, task_id: str, message_id: str, payload: dict[str, Any]
) -> MessageDrop:
    """A message or control drop into `tasks/<task_id>/inbox/` (which must exist)."""
    name = f"{message_id}.json"
    data = orjson.dumps({"id": message_id, **payload})
    drop = parse_message_drop(name, data)
    write_new(workspace.task(task_id).inbox / name, data)
    return drop


def text_payload(sender_id: str, text: str) -> dict[str, Any]:
    return {"from": sender(sender_id), "text": text}


def control_payload(control: Control, sent_by: str, *, result: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"from": sent_by, "control": control.value}
    if result is not None:
        payload["result"] = result
    return payload
