"""Publishing drop and answer files: the one way the surfaces (CLI, web, MCP tools) change state.

Builds the JSON of a new task, a message, a control or a permission answer, gives new ids,
checks it with the supervisor's own parsers (a `UsageError` says what to fix, so nothing
published is rejected for its shape) and publishes it (`base.fs.write_new`) into the right
inbox. Who may publish what (live task, access, limits) and error rendering are the surfaces'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson

from meta_harness.base.errors import DropRejected, InvalidId, UsageError
from meta_harness.base.fs import write_new
from meta_harness.base.layout import (
    Workspace,
    new_id,
    validate_message_id,
    validate_request_id,
    validate_task_id,
)
from meta_harness.domain.drops import (
    Control,
    MessageDrop,
    TaskDrop,
    parse_message_drop,
    parse_task_drop,
)

logger = logging.getLogger(__name__)

DROP_SUFFIX = ".json"
ANSWER_SUFFIX = ".answer.json"  # `tasks/<id>/permissions/<req>.answer.json`, beside the request
RESERVED = frozenset({"id", "from"})  # set by the publisher, never taken from `fields`

_Drop = TypeVar("_Drop", TaskDrop, MessageDrop)


# -- ids and names -----------------------------------------------------------------------------


def new_task_id() -> str:
    return new_id("t")


def new_message_id() -> str:
    return new_id("m")


def new_control_id(control: Control) -> str:
    """`cancel-…` or `complete-…`: a control's id says what it is in the WAL."""
    return new_id(control.value)


def task_drop_name(task_id: str, prefix: str = "") -> str:
    """`<prefix><task-id>.json` in the workspace `inbox/`; the prefix tells surfaces apart."""
    name = f"{prefix}{task_id}{DROP_SUFFIX}"
    if name.startswith(".") or "/" in name or "\0" in name:
        raise InvalidId(f"invalid drop file name {name!r}: a name, not a path or a dot-file")
    return name


def message_drop_name(message_id: str) -> str:
    return f"{message_id}{DROP_SUFFIX}"


def answer_name(request_id: str) -> str:
    return f"{request_id}{ANSWER_SUFFIX}"


# -- payloads ----------------------------------------------------------------------------------


def task_fields(
    prompt: str,
    *,
    title: str | None = None,
    profile: str | None = None,
    parent: str | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """The fields of a new task whose prompt is text; a field not given (or empty) is left out."""
    fields: dict[str, Any] = {"prompt": prompt}
    for key, value in (("title", title), ("profile", profile), ("parent", parent), ("mode", mode)):
        if value:
            fields[key] = value
    return fields


def control_fields(control: Control, result: str | None = None) -> dict[str, Any]:
    """`cancel`, or `complete` with its result: applied by the supervisor, never prompted."""
    fields: dict[str, Any] = {"control": control.value}
    if result is not None:
        fields["result"] = result
    return fields


def _payload(drop_id: str, sender: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    reserved = sorted(RESERVED & fields.keys())
    if reserved:
        raise ValueError(f"{reserved} are set by the publisher, not passed in fields")
    return {"id": drop_id, "from": sender, **fields}


def _encode(payload: Mapping[str, Any]) -> bytes:
    """The file's bytes. Text that is not UTF-8 (lone surrogates, as undecodable command-line
    bytes arrive in Python) is the user's error, named by its field."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError as e:
        culprit = next((k for k, v in payload.items() if isinstance(v, str) and not _utf8(v)), "")
        where = f"field {culprit!r}" if culprit else "the drop"
        raise UsageError(f"{where} is not valid UTF-8 text ({e}); send UTF-8") from None


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _parsed(parse: Callable[[str, bytes], _Drop], name: str, data: bytes) -> _Drop:
    """The supervisor's own verdict on the file, before it exists."""
    try:
        return parse(name, data)
    except DropRejected as e:
        raise UsageError(e.message) from None


# -- publishing --------------------------------------------------------------------------------


def publish_task(
    workspace: Workspace,
    fields: Mapping[str, Any],
    *,
    sender: str,
    task_id: str | None = None,
    name_prefix: str = "",
) -> TaskDrop:
    """A new task (a child if `fields` names a `parent`): `inbox/<prefix><task-id>.json`.

    `fields` are the drop's fields except `id` and `from` (`task_fields` builds them for
    a text prompt; values are passed through as given and checked by the parser).
    """
    task_id = new_task_id() if task_id is None else validate_task_id(task_id)
    name = task_drop_name(task_id, name_prefix)
    data = _encode(_payload(task_id, sender, fields))
    drop = _parsed(parse_task_drop, name, data)
    workspace.inbox.mkdir(parents=True, exist_ok=True)
    write_new(workspace.inbox / name, data)
    logger.debug("published task drop inbox/%s from %s", name, sender)
    return drop


def publish_message(
    workspace: Workspace,
    task_id: str,
    fields: Mapping[str, Any],
    *,
    sender: str,
    message_id: str | None = None,
) -> MessageDrop:
    """A message or control for task `task_id`: `tasks/<task-id>/inbox/<message-id>.json`.

    `fields` are `text` or `content`, or `control_fields(...)`. A message published again
    with the same id replaces its own file (and the supervisor deduplicates by id).
    """
    validate_task_id(task_id)
    message_id = new_message_id() if message_id is None else validate_message_id(message_id)
    name = message_drop_name(message_id)
    data = _encode(_payload(message_id, sender, fields))
    drop = _parsed(parse_message_drop, name, data)
    inbox = workspace.task(task_id).inbox
    inbox.mkdir(parents=True, exist_ok=True)
    write_new(inbox / name, data)
    logger.debug("published message tasks/%s/inbox/%s from %s", task_id, name, sender)
    return drop


def publish_text(
    workspace: Workspace, task_id: str, text: str, *, sender: str, message_id: str | None = None
) -> MessageDrop:
    """A text message for task `task_id`."""
    return publish_message(workspace, task_id, {"text": text}, sender=sender, message_id=message_id)


def publish_control(
    workspace: Workspace,
    task_id: str,
    control: Control,
    *,
    sender: str,
    result: str | None = None,
) -> MessageDrop:
    """A `cancel` or `complete` control for task `task_id` (its id: `new_control_id`)."""
    fields = control_fields(control, result)
    return publish_message(
        workspace, task_id, fields, sender=sender, message_id=new_control_id(control)
    )


def publish_answer(
    workspace: Workspace,
    task_id: str,
    request_id: str,
    *,
    decision: object,
    always: object = False,
    reason: object = "",
    by: str,
) -> Path:
    """`tasks/<id>/permissions/<req>.answer.json`, read by the supervisor's permission gate.

    `decision` is `allow` or `reject`; the values are checked as the gate checks them.
    """
    from meta_harness.domain.permissions import parse_answer  # loads the config models

    validate_task_id(task_id)
    validate_request_id(request_id)
    data = _encode({"decision": decision, "always": always, "by": by, "reason": reason})
    try:
        parse_answer(orjson.loads(data))
    except ValueError as e:
        raise UsageError(str(e)) from None
    path = workspace.task(task_id).permissions / answer_name(request_id)
    write_new(path, data)
    logger.debug("published answer tasks/%s/permissions/%s by %s", task_id, path.name, by)
    return path
