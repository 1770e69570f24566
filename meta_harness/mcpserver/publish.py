"""What the MCP tools add to `domain.publish`: how a spawn is named, and who a task is as sender.

A spawn is a task drop `inbox/spawn+<parent>+<child>.json`: the name carries both ids
(task ids cannot contain `+`), so counting a parent's queued spawns and finding a
rejected one need no reads (`view`). Building, checking and publishing every drop the
tools write (spawns, messages, controls) is `domain.publish`.
"""

from __future__ import annotations

from meta_harness.base.layout import Workspace
from meta_harness.domain import publish
from meta_harness.domain.drops import TaskDrop

SPAWN_PREFIX = "spawn+"
SPAWN_SUFFIX = publish.DROP_SUFFIX


def sender(task_id: str) -> str:
    """The `from` of everything a task sends through the tools."""
    return f"task:{task_id}"


def _prefix(parent: str) -> str:
    return f"{SPAWN_PREFIX}{parent}+"


def spawn_name(parent: str, child: str) -> str:
    return publish.task_drop_name(child, _prefix(parent))


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
    """Task `child` of `parent`, sent by `parent`: `inbox/spawn+<parent>+<child>.json`."""
    fields = publish.task_fields(prompt, title=title, profile=profile, parent=parent, mode=mode)
    return publish.publish_task(
        workspace, fields, sender=sender(parent), task_id=child, name_prefix=_prefix(parent)
    )
