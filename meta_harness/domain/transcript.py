"""The transcript format: every ACP frame of a task, both directions, byte-exact.

One JSON line per frame: `{"ts", "epoch", "dir": "out"|"in", "frame": <the exact bytes
sent or received>}`. The frame is embedded verbatim (it is already JSON), so the record
is byte-exact without escaping; the one exception: MCP header and env values in
`session/new|load|resume|fork` frames are redacted (`***`). A line from the agent that
is not JSON is kept as `"raw"`. Frames received while a `session/load` replays are
marked `"load": true`. Supervisor notes (spawn, crash, restart, swap, permission
decisions) are `"dir": "note"`. The epoch counts connections: JSON-RPC ids restart with
each one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import orjson


class Direction(StrEnum):
    OUT = "out"  # supervisor -> agent
    IN = "in"  # agent -> supervisor
    NOTE = "note"  # written by the supervisor about the session


def frame_line(direction: Direction, epoch: int, raw: bytes, *, load: bool = False) -> bytes:
    """The transcript line for one raw frame (`raw` without its newline)."""
    head = b'{"ts":%.6f,"epoch":%d,"dir":"%s"' % (time.time(), epoch, direction.value.encode())
    if load:
        head += b',"load":true'
    stripped = raw.strip()
    if stripped.startswith(b"{") and b"\n" not in stripped and _is_json(stripped):
        return head + b',"frame":' + stripped + b"}\n"
    text = raw.decode("utf-8", errors="replace")
    return head + b',"raw":' + orjson.dumps(text) + b"}\n"


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


REDACTED = "***"
# Frames whose params carry `mcpServers` (headers and env may hold tokens and API keys).
SECRET_METHODS = frozenset({"session/new", "session/load", "session/resume", "session/fork"})


def redact_mcp_servers(servers: Any) -> Any:
    """A copy of an ACP `mcpServers` list with every `headers[].value` and `env[].value` hidden."""
    if not isinstance(servers, list):
        return servers
    out: list[Any] = []
    for server in servers:
        if isinstance(server, dict):
            server = dict(server)
            for key in ("headers", "env"):
                pairs = server.get(key)
                if isinstance(pairs, list):
                    server[key] = [
                        {**p, "value": REDACTED} if isinstance(p, dict) and "value" in p else p
                        for p in pairs
                    ]
        out.append(server)
    return out


def redacted_frame(message: dict[str, Any]) -> dict[str, Any] | None:
    """The frame as the transcript may keep it, or None when it holds nothing secret.

    `session/new`, `load`, `resume` and `fork` hand the agent its MCP servers with
    their headers and env; these frames are the one exception to byte-exactness.
    """
    if message.get("method") not in SECRET_METHODS:
        return None
    params = message.get("params")
    if not isinstance(params, dict) or not params.get("mcpServers"):
        return None
    return {**message, "params": {**params, "mcpServers": redact_mcp_servers(params["mcpServers"])}}


def note_line(epoch: int, note: str, **fields: Any) -> bytes:
    record = {"ts": time.time(), "epoch": epoch, "dir": Direction.NOTE.value, "note": note}
    record.update(fields)
    return orjson.dumps(record) + b"\n"


def session_update(record: dict[str, Any]) -> dict[str, Any] | None:
    """The `update` of a `session/update` notification frame, if this record is one."""
    frame = record.get("frame")
    if not isinstance(frame, dict) or frame.get("method") != "session/update":
        return None
    params = frame.get("params")
    if not isinstance(params, dict):
        return None
    update = params.get("update")
    return update if isinstance(update, dict) else None


def turn_stop(last_first: Iterable[dict[str, Any]], message_id: str, epoch: int) -> str | None:
    """The stop reason the agent answered the `session/prompt` carrying `message_id` with,
    if connection `epoch` shows one. `last_first`: transcript records from the end; the
    scan ends at the first older connection's record (only `epoch` is read)."""
    stops: dict[Any, str] = {}  # JSON-RPC id -> stopReason, of answers after the prompt
    for record in last_first:
        at = record.get("epoch")
        if isinstance(at, int) and at < epoch:
            break
        frame = record.get("frame")
        if at != epoch or not isinstance(frame, dict):
            continue
        if record.get("dir") == Direction.IN:
            result = frame.get("result")
            if isinstance(result, dict) and isinstance(result.get("stopReason"), str):
                stops.setdefault(frame.get("id"), result["stopReason"])
        elif record.get("dir") == Direction.OUT and frame.get("method") == "session/prompt":
            params = frame.get("params")
            meta = params.get("_meta") if isinstance(params, dict) else None
            if isinstance(meta, dict) and meta.get("messageId") == message_id:
                return stops.get(frame.get("id"))
    return None


def update_text(update: dict[str, Any]) -> str:
    content = update.get("content")
    if isinstance(content, dict) and content.get("type") == "text":
        text = content.get("text")
        return text if isinstance(text, str) else ""
    return ""


def render(record: dict[str, Any]) -> str | None:
    """A one-line human view of a transcript record for `logs`, or None to hide it."""
    direction = record.get("dir")
    if direction == Direction.NOTE:
        extra = {k: v for k, v in record.items() if k not in ("ts", "epoch", "dir", "note")}
        detail = " ".join(f"{k}={v}" for k, v in extra.items())
        return f"-- {record.get('note')} {detail}".rstrip()
    if "raw" in record:
        return f"?? agent printed a non-JSON line: {str(record['raw'])[:200]}"
    frame = record.get("frame")
    if not isinstance(frame, dict):
        return None
    update = session_update(record)
    if update is not None:
        kind = update.get("sessionUpdate")
        replay = "(replay) " if record.get("load") else ""
        if kind == "agent_message_chunk":
            return f"{replay}agent: {update_text(update)}"
        if kind == "agent_thought_chunk":
            return f"{replay}thought: {update_text(update)}"
        if kind == "user_message_chunk":
            return f"{replay}user: {update_text(update)}"
        if kind in ("tool_call", "tool_call_update"):
            title = update.get("title") or ""
            status = update.get("status") or ""
            return f"{replay}tool {update.get('toolCallId')}: {title} {status}".rstrip()
        if kind == "plan":
            entries = update.get("entries") or []
            items = "; ".join(str(e.get("content")) for e in entries if isinstance(e, dict))
            return f"{replay}plan: {items}"
        return f"{replay}{kind}"
    method = frame.get("method")
    if direction == Direction.OUT and method == "session/prompt":
        params = frame.get("params") or {}
        texts = [
            b.get("text", "")
            for b in params.get("prompt", [])
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "prompt: " + " ".join(texts)
    if method:
        return f"{'>>' if direction == Direction.OUT else '<<'} {method}"
    if "error" in frame:
        return f"{'>>' if direction == Direction.OUT else '<<'} error {frame['error']}"
    result = frame.get("result")
    if isinstance(result, dict) and "stopReason" in result:
        return f"<< turn ended: {result['stopReason']}"
    return None
