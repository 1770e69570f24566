"""A task's history read back: the header every prompt opens with, and what replays show.

The header line names the message, so a `session/load` replay shows which messages the
agent received (`user_texts`) and what it answered (`replayed_answer`); the supervisor's
own transcript yields the conversation handed to a fresh session when a load failed
(`transcript_context`). Pure: records in, text out; the runtime reads the files.
"""

from __future__ import annotations

from typing import Any

from meta_harness.domain.drops import header_line, header_marker
from meta_harness.domain.inbox import Message
from meta_harness.domain.transcript import session_update, update_text

CONTEXT_TAIL_CHARS = 20_000  # transcript text handed to a fresh session when a load failed
HEADER_PREFIX = header_marker("").rstrip()  # "[meta-harness message id=": opens every prompt


def with_header(message: Message) -> list[dict[str, Any]]:
    """The prompt blocks of `message`, its header line opening the first text block."""
    header = header_line(message.id, message.sender)
    blocks = [dict(b) for b in message.content]
    if blocks and blocks[0].get("type") == "text":
        blocks[0]["text"] = f"{header}\n{blocks[0].get('text', '')}"
    else:
        blocks.insert(0, {"type": "text", "text": header})
    return blocks


def user_texts(replay: list[dict[str, Any]]) -> list[str]:
    """The text of every replayed user message chunk; a prompt's header opens its first one."""
    texts: list[str] = []
    for params in replay:
        update = params.get("update") or {}
        if update.get("sessionUpdate") == "user_message_chunk":
            texts.append(update_text(update))
    return texts


def replayed_answer(replay: list[dict[str, Any]], marker: str) -> str:
    """The agent text a replay shows after the prompt whose header starts with `marker`.

    Collected until the next prompt (a user chunk opening with a message header); user
    chunks in between (instructions sent with the prompt) are part of that prompt.
    """
    parts: list[str] = []
    inside = False
    for params in replay:
        update = params.get("update") or {}
        kind = update.get("sessionUpdate")
        if kind == "user_message_chunk":
            text = update_text(update).lstrip()
            if text.startswith(marker):
                inside, parts = True, []
            elif text.startswith(HEADER_PREFIX):
                inside = False
        elif kind == "agent_message_chunk" and inside:
            parts.append(update_text(update))
    return "".join(parts)


def conversation(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) turns from transcript records: the prompts we sent and the agent's text.

    Live frames only (a load replay repeats history); consecutive chunks of one side
    are joined, so the agent reads a conversation rather than protocol frames.
    """
    turns: list[tuple[str, str]] = []
    for record in records:
        frame = record.get("frame")
        if record.get("load") or not isinstance(frame, dict):
            continue
        update = session_update(record)
        if record.get("dir") == "out" and frame.get("method") == "session/prompt":
            blocks = (frame.get("params") or {}).get("prompt") or []
            texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            role, text = "user", "\n".join(str(b.get("text", "")) for b in texts)
        elif update is not None and update.get("sessionUpdate") == "agent_message_chunk":
            role, text = "agent", update_text(update)
        else:
            continue
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + ("\n" if role == "user" else "") + text)
        else:
            turns.append((role, text))
    return turns


def transcript_context(records: list[dict[str, Any]]) -> str:
    """The conversation so far as text, for a fresh session after a failed load."""
    turns = conversation(records)
    text = "\n\n".join(f"{role}: {body.strip()}" for role, body in turns)[-CONTEXT_TAIL_CHARS:]
    if not text:
        return ""
    return (
        "The previous session of this task could not be restored. "
        "Here is the conversation so far, from the supervisor's transcript:\n\n" + text
    )
