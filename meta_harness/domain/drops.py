"""What a dropped file means: parsing and validating inbox drop files (pure).

Two kinds of drop: into `inbox/` (a new top-level task) and into `tasks/<id>/inbox/`
(a message, or a control such as cancel, to that task). JSON files carry fields;
`.txt`/`.md` files are plain text whose id is derived from name and content, so the
same file ingested twice after a crash deduplicates. Everything here works on bytes
already read; the runtime's ingest does the file-system checks (size, type, links).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from meta_harness.base.errors import DropRejected, InvalidId
from meta_harness.base.layout import validate_message_id, validate_task_id

MAX_DROP_BYTES = 8 * 1024 * 1024  # a drop is a message, not a file transfer
TEXT_SUFFIXES = (".txt", ".md")
JSON_SUFFIXES = (".json",)
CONTENT_TYPES = frozenset({"text", "image", "audio", "resource_link", "resource"})
MAX_TITLE = 200


class Control(StrEnum):
    """Controls a user can drop into a task inbox; applied by the supervisor, never prompted."""

    CANCEL = "cancel"
    COMPLETE = "complete"


@dataclass(frozen=True)
class MessageDrop:
    """A message for an existing task."""

    id: str
    sender: str
    content: list[dict[str, Any]]
    control: Control | None = None
    result: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskDrop:
    """A request for a new task; its first message is `message`."""

    task_id: str | None
    title: str
    profile: str | None
    parent: str | None
    mode: str | None
    message: MessageDrop


def derived_id(prefix: str, name: str, data: bytes) -> str:
    digest = hashlib.sha256(name.encode() + b"\0" + data).hexdigest()[:24]
    return f"{prefix}-{digest}"


def is_drop_name(name: str) -> bool:
    """Names the supervisor picks up; dot-files and other suffixes are left alone."""
    return not name.startswith(".") and name.endswith(TEXT_SUFFIXES + JSON_SUFFIXES)


def _decode_text(data: bytes) -> str:
    if b"\0" in data:
        raise DropRejected("binary content (NUL bytes); drop UTF-8 text or JSON")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DropRejected(f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def _load_json(data: bytes) -> dict[str, Any]:
    _decode_text(data)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DropRejected(f"malformed JSON: {e}") from None
    if not isinstance(value, dict):
        raise DropRejected(f"expected a JSON object, got {type(value).__name__}")
    return value


def _str_field(obj: dict[str, Any], key: str, *, limit: int = 0) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DropRejected(f"field {key!r} must be a string")
    if limit and len(value) > limit:
        raise DropRejected(f"field {key!r} is longer than {limit} characters")
    return value


def _sender(obj: dict[str, Any], default: str) -> str:
    """The `from` field: it goes into the prompt's one-line header, so it must be one line."""
    value = _str_field(obj, "from", limit=200)
    if value and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise DropRejected("field 'from' must be one line of text (no control characters)")
    return value or default


def validate_content(blocks: Any) -> list[dict[str, Any]]:
    """ACP content blocks as the prompt will carry them."""
    if not isinstance(blocks, list) or not blocks:
        raise DropRejected("field 'content' must be a non-empty list of ACP content blocks")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise DropRejected(f"content[{i}] must be an object")
        kind = block.get("type")
        if kind not in CONTENT_TYPES:
            raise DropRejected(f"content[{i}].type must be one of {sorted(CONTENT_TYPES)}")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise DropRejected(f"content[{i}].text must be a string")
    return blocks


def _content_of(obj: dict[str, Any], text_key: str) -> list[dict[str, Any]]:
    text = obj.get(text_key)
    if "content" in obj:
        if text is not None:
            raise DropRejected(f"give either {text_key!r} or 'content', not both")
        return validate_content(obj["content"])
    if not isinstance(text, str) or not text.strip():
        raise DropRejected(f"field {text_key!r} (non-empty text) or 'content' is required")
    return [{"type": "text", "text": text}]


def _checked(validate: Any, value: str, what: str) -> str:
    try:
        result: str = validate(value)
    except InvalidId as e:
        raise DropRejected(f"{what}: {e}") from None
    return result


def parse_message_drop(name: str, data: bytes) -> MessageDrop:
    """A drop into `tasks/<id>/inbox/`. Raises DropRejected with the reason."""
    if not data.strip():
        raise DropRejected("empty file")
    if name.endswith(TEXT_SUFFIXES):
        text = _decode_text(data)
        return MessageDrop(
            id=derived_id("file", name, data),
            sender="file",
            content=[{"type": "text", "text": text}],
        )
    obj = _load_json(data)
    msg_id = _str_field(obj, "id") or derived_id("file", name, data)
    _checked(validate_message_id, msg_id, "field 'id'")
    sender = _sender(obj, "file")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise DropRejected("field 'meta' must be an object")
    control_raw = _str_field(obj, "control")
    if control_raw is not None:
        try:
            control = Control(control_raw)
        except ValueError:
            raise DropRejected(
                f"field 'control' must be one of {[c.value for c in Control]}"
            ) from None
        result = _str_field(obj, "result")
        return MessageDrop(
            id=msg_id,
            sender=sender,
            content=[],
            control=control,
            result=result,
            meta=meta,
        )
    return MessageDrop(id=msg_id, sender=sender, content=_content_of(obj, "text"), meta=meta)


def parse_task_drop(name: str, data: bytes) -> TaskDrop:
    """A drop into the top-level `inbox/`: a new task. Raises DropRejected with the reason."""
    if not data.strip():
        raise DropRejected("empty file")
    if name.endswith(TEXT_SUFFIXES):
        text = _decode_text(data)
        task_id = derived_id("t", name, data)[:26]
        message = MessageDrop(
            id=f"prompt-{task_id}", sender="file", content=[{"type": "text", "text": text}]
        )
        title = text.strip().splitlines()[0].strip()[:80] if text.strip() else name
        return TaskDrop(task_id, title, None, None, None, message)
    obj = _load_json(data)
    task_id = _str_field(obj, "id") or derived_id("t", name, data)[:26]
    _checked(validate_task_id, task_id, "field 'id'")
    parent = _str_field(obj, "parent")
    if parent is not None:
        _checked(validate_task_id, parent, "field 'parent'")
    profile = _str_field(obj, "profile", limit=100)
    mode = _str_field(obj, "mode")
    if mode is not None and mode not in ("session", "oneshot"):
        raise DropRejected("field 'mode' must be 'session' or 'oneshot'")
    content = _content_of(obj, "prompt")
    title = _str_field(obj, "title", limit=MAX_TITLE) or ""
    if not title:
        first = next((b.get("text", "") for b in content if b.get("type") == "text"), "")
        title = first.strip().splitlines()[0].strip()[:80] if first.strip() else task_id
    message = MessageDrop(id=f"prompt-{task_id}", sender=_sender(obj, "user"), content=content)
    return TaskDrop(task_id, title, profile, parent, mode, message)


def header_line(message_id: str, sender: str) -> str:
    """The visible first line of every prompt; the in-doubt check looks for it in replays."""
    return f"[meta-harness message id={message_id} from={sender}]"


def header_marker(message_id: str) -> str:
    return f"[meta-harness message id={message_id} "
