"""How the HTTP surface changes state: by publishing drop and answer files, nothing else.

Each function checks a request body strictly (unknown fields are an error), builds the
file a CLI user could have dropped by hand, validates it with the same parse functions
the supervisor's ingest uses (`domain.drops`, `domain.permissions.parse_answer`), and
publishes it with `base.fs.write_new` (dot-name, then rename). The supervisor picks it
up from there; a file it rejects later shows up as a `rejected` event.
"""

from __future__ import annotations

from typing import Any

import orjson

from meta_harness.base.errors import Conflict, NotFound, UsageError
from meta_harness.base.fs import write_new
from meta_harness.base.layout import (
    Workspace,
    new_id,
    validate_message_id,
    validate_request_id,
    validate_task_id,
)
from meta_harness.domain.drops import Control, parse_message_drop, parse_task_drop
from meta_harness.domain.permissions import RequestStatus, parse_answer
from meta_harness.domain.tasks import TaskRecord
from meta_harness.web.state import ANSWER_SUFFIX, TaskIndex, read_request

SENDER = "web"  # the `from` of everything this surface publishes

TASK_FIELDS = frozenset({"prompt", "content", "title", "profile", "mode", "parent", "id"})
MESSAGE_FIELDS = frozenset({"text", "content", "id"})
ANSWER_FIELDS = frozenset({"decision", "always", "reason"})


def _object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UsageError(f"the request body must be a JSON object, not {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise UsageError(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return body


def _live_task(index: TaskIndex, task_id: str) -> TaskRecord:
    record = index.get(task_id)
    if record is None:
        raise NotFound(f"no task {task_id!r} in this workspace")
    if record.phase.terminal:
        raise Conflict(f"task {task_id} has ended ({record.phase.value}); it takes no more input")
    return record


def submit_task(workspace: Workspace, index: TaskIndex, body: Any) -> dict[str, Any]:
    """Publish `inbox/web-<id>.json`: a new task (optionally a child of `parent`)."""
    fields = _object(body, TASK_FIELDS)
    task_id = fields.get("id")
    if task_id is None:
        task_id = new_id("t")
    elif not isinstance(task_id, str):
        raise UsageError("field 'id' must be a string")
    validate_task_id(task_id)
    if index.get(task_id) is not None:
        raise Conflict(f"task {task_id} already exists")
    name = f"web-{task_id}.json"
    if (workspace.inbox / name).exists():
        raise Conflict(f"task {task_id} was already submitted and waits to be picked up")
    parent = fields.get("parent")
    if isinstance(parent, str):
        _live_task(index, validate_task_id(parent))
    drop = {"id": task_id, "from": SENDER} | {k: v for k, v in fields.items() if k != "id"}
    data = orjson.dumps(drop)
    parsed = parse_task_drop(name, data)  # the supervisor's own validation: DropRejected -> 400
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    write_new(workspace.inbox / name, data)
    return {"task": task_id, "message": parsed.message.id, "file": f"inbox/{name}"}


def send_message(workspace: Workspace, index: TaskIndex, task_id: str, body: Any) -> dict[str, Any]:
    """Publish `tasks/<id>/inbox/<msg-id>.json`: a message for a task that has not ended."""
    fields = _object(body, MESSAGE_FIELDS)
    _live_task(index, task_id)
    message_id = fields.get("id")
    if message_id is None:
        message_id = new_id(SENDER)
    elif not isinstance(message_id, str):
        raise UsageError("field 'id' must be a string")
    validate_message_id(message_id)
    drop = {"id": message_id, "from": SENDER} | {k: v for k, v in fields.items() if k != "id"}
    return _publish_message(workspace, task_id, message_id, drop)


def cancel_task(workspace: Workspace, index: TaskIndex, task_id: str) -> dict[str, Any]:
    """Publish a cancel control for a task that has not ended (its children follow)."""
    _live_task(index, task_id)
    message_id = new_id("cancel")
    drop = {"id": message_id, "from": SENDER, "control": Control.CANCEL.value}
    return _publish_message(workspace, task_id, message_id, drop)


def _publish_message(
    workspace: Workspace, task_id: str, message_id: str, drop: dict[str, Any]
) -> dict[str, Any]:
    name = f"{message_id}.json"
    data = orjson.dumps(drop)
    parse_message_drop(name, data)  # DropRejected -> 400
    inbox = workspace.task(task_id).inbox
    inbox.mkdir(parents=True, exist_ok=True)
    write_new(inbox / name, data)
    return {"task": task_id, "message": message_id, "file": f"tasks/{task_id}/inbox/{name}"}


def answer_permission(
    workspace: Workspace, index: TaskIndex, task_id: str, request_id: str, body: Any
) -> dict[str, Any]:
    """Publish `tasks/<id>/permissions/<req>.answer.json` for a pending request."""
    fields = _object(body, ANSWER_FIELDS)
    validate_request_id(request_id)
    if index.get(task_id) is None:
        raise NotFound(f"no task {task_id!r} in this workspace")
    request = read_request(workspace, task_id, request_id)
    if request is None:
        raise NotFound(f"task {task_id} has no permission request {request_id!r}")
    if request.get("status") != RequestStatus.PENDING:
        raise Conflict(
            f"permission request {request_id} is already answered "
            f"({request.get('decision')} by {request.get('answered_by')})"
        )
    if request.get("answer_published"):
        raise Conflict(f"an answer to {request_id} is already waiting to be applied")
    answer = {
        "decision": fields.get("decision"),
        "always": fields.get("always", False),
        "by": SENDER,
        "reason": fields.get("reason", ""),
    }
    try:
        parse_answer(answer)  # the gate's own validation
    except ValueError as e:
        raise UsageError(str(e)) from None
    name = f"{request_id}{ANSWER_SUFFIX}"
    write_new(workspace.task(task_id).permissions / name, orjson.dumps(answer))
    return {
        "task": task_id,
        "request": request_id,
        "decision": answer["decision"],
        "file": f"tasks/{task_id}/permissions/{name}",
    }
