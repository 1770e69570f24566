"""How the HTTP surface changes state: by publishing drop and answer files, nothing else.

Each function checks a request body strictly (unknown fields are an error) and what the
task's state allows (404, 409), then hands the fields to `domain.publish`, which builds the
file a CLI user could have dropped by hand, checks it with the supervisor's own parsers and
publishes it. A file the supervisor rejects later shows up as a `rejected` event.
"""

from __future__ import annotations

from typing import Any

from meta_harness.base.errors import Conflict, NotFound, UsageError
from meta_harness.base.layout import Workspace, validate_request_id, validate_task_id
from meta_harness.domain import publish
from meta_harness.domain.drops import Control
from meta_harness.domain.permissions import RequestStatus
from meta_harness.domain.tasks import TaskRecord
from meta_harness.web.state import TaskIndex, read_request

SENDER = "web"  # the `from` of everything this surface publishes
NAME_PREFIX = "web-"  # task drops are `inbox/web-<id>.json`

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
        task_id = publish.new_task_id()
    elif not isinstance(task_id, str):
        raise UsageError("field 'id' must be a string")
    validate_task_id(task_id)
    if index.get(task_id) is not None:
        raise Conflict(f"task {task_id} already exists")
    name = publish.task_drop_name(task_id, NAME_PREFIX)
    if (workspace.inbox / name).exists():
        raise Conflict(f"task {task_id} was already submitted and waits to be picked up")
    parent = fields.get("parent")
    if isinstance(parent, str):
        _live_task(index, validate_task_id(parent))
    rest = {k: v for k, v in fields.items() if k != "id"}
    drop = publish.publish_task(  # UsageError -> 400
        workspace, rest, sender=SENDER, task_id=task_id, name_prefix=NAME_PREFIX
    )
    return {"task": task_id, "message": drop.message.id, "file": f"inbox/{name}"}


def send_message(workspace: Workspace, index: TaskIndex, task_id: str, body: Any) -> dict[str, Any]:
    """Publish `tasks/<id>/inbox/<msg-id>.json`: a message for a task that has not ended."""
    fields = _object(body, MESSAGE_FIELDS)
    _live_task(index, task_id)
    message_id = fields.get("id")
    if message_id is not None and not isinstance(message_id, str):
        raise UsageError("field 'id' must be a string")
    rest = {k: v for k, v in fields.items() if k != "id"}
    drop = publish.publish_message(  # InvalidId, UsageError -> 400
        workspace, task_id, rest, sender=SENDER, message_id=message_id
    )
    return _published(task_id, drop.id)


def cancel_task(workspace: Workspace, index: TaskIndex, task_id: str) -> dict[str, Any]:
    """Publish a cancel control for a task that has not ended (its children follow)."""
    _live_task(index, task_id)
    drop = publish.publish_control(workspace, task_id, Control.CANCEL, sender=SENDER)
    return _published(task_id, drop.id)


def _published(task_id: str, message_id: str) -> dict[str, Any]:
    name = publish.message_drop_name(message_id)
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
    decision = fields.get("decision")
    path = publish.publish_answer(  # the gate's own validation: UsageError -> 400
        workspace,
        task_id,
        request_id,
        decision=decision,
        always=fields.get("always", False),
        reason=fields.get("reason", ""),
        by=SENDER,
    )
    return {
        "task": task_id,
        "request": request_id,
        "decision": decision,
        "file": f"tasks/{task_id}/permissions/{path.name}",
    }
