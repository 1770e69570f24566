"""The prompt interpreter: one turn of one session, from prompt blocks to a stop reason.

Strips the meta-harness header, answers plain lines with `echo:`, runs `/` lines through
`commands.COMMANDS`, records (fsync) every update before sending it, and asks or recalls
permissions. The commands themselves live in `commands`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from .commands import COMMANDS, BadArguments
from .protocol import (
    INVALID_PARAMS,
    OPTION_KINDS,
    PERMISSION_OPTIONS,
    Json,
    PermissionKind,
    RpcError,
    StopReason,
    ToolStatus,
)
from .session import Session
from .turn import Turn, TurnCancelled, TurnEnded

if TYPE_CHECKING:
    from .agent import Agent

HEADER_RE = re.compile(r"^\[meta-harness message [^\]]*\]\n?")
CHUNK_SPLIT_RE = re.compile(r"(?<=\s)(?=\S)")


def word_chunks(text: str) -> list[str]:
    """Split after each whitespace run; the chunks concatenate back to `text` exactly."""
    return [part for part in CHUNK_SPLIT_RE.split(text) if part]


class PromptRun:
    """Interprets one prompt: records and emits updates, runs the steering commands."""

    def __init__(self, agent: Agent, session: Session, turn: Turn) -> None:
        self.agent = agent
        self.wire = agent.wire
        self.session = session
        self.turn = turn
        self.open_tool_calls: set[str] = set()

    # -- emission -------------------------------------------------------------------------

    def emit(self, update: Json) -> None:
        """Record (fsync) first, then send."""
        self.session.log.append(update)
        self.wire.notify("session/update", {"sessionId": self.session.id, "update": update})

    def say(self, text: str, kind: str = "agent_message_chunk") -> None:
        if not text.endswith("\n"):
            text += "\n"
        for chunk in word_chunks(text):
            self.turn.check()
            self.emit({"sessionUpdate": kind, "content": {"type": "text", "text": chunk}})

    def start_tool_call(self, title: str, kind: str, status: ToolStatus, **extra: Any) -> str:
        call_id = self.session.next_tool_call_id()
        self.open_tool_calls.add(call_id)
        self.emit(
            {
                "sessionUpdate": "tool_call",
                "toolCallId": call_id,
                "title": title,
                "kind": kind,
                "status": status.value,
                **extra,
            }
        )
        return call_id

    def update_tool_call(self, call_id: str, status: ToolStatus, **extra: Any) -> None:
        if status in (ToolStatus.COMPLETED, ToolStatus.FAILED):
            self.open_tool_calls.discard(call_id)
        self.emit(
            {
                "sessionUpdate": "tool_call_update",
                "toolCallId": call_id,
                "status": status.value,
                **extra,
            }
        )

    def fail_open_tool_calls(self) -> None:
        for call_id in sorted(self.open_tool_calls):
            self.update_tool_call(call_id, ToolStatus.FAILED)

    def request(self, method: str, params: Json) -> Any:
        return self.wire.request(method, {"sessionId": self.session.id, **params}, self.turn)

    # -- the turn -------------------------------------------------------------------------

    def run(self, blocks: list[Json]) -> StopReason:
        replied = False
        text = "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        body = HEADER_RE.sub("", text, count=1)
        try:
            run: list[str] = []
            for line in [*body.split("\n"), None]:
                if line is not None and not line.startswith("/"):
                    run.append(line)
                    continue
                echo = "\n".join(run).strip("\n")
                run = []
                if echo:
                    self.say(f"echo: {echo}")
                    replied = True
                if line is not None:
                    self.turn.check()
                    self.command(line.rstrip("\r"))
                    replied = True
            if not replied:
                self.say("echo: ")
        except TurnCancelled:
            self.fail_open_tool_calls()
            return StopReason.CANCELLED
        except TurnEnded as end:
            return end.reason
        return StopReason.END_TURN

    def command(self, line: str) -> None:
        name, _, rest = line[1:].partition(" ")
        handler = COMMANDS.get(name)
        if handler is None:
            self.say(f"unknown command: /{name}")
            return
        try:
            handler(self, rest)
        except BadArguments as exc:
            self.say(f"bad arguments for /{name}: {exc}")

    def resolve(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.session.cwd, path)

    # -- permissions ----------------------------------------------------------------------

    def permission(self, tool_call: Json) -> tuple[PermissionKind, bool]:
        """Ask (or recall) a decision. Returns (kind, remembered). Cancelled → TurnCancelled."""
        kind = str(tool_call.get("kind", "other"))
        remembered = self.session.remembered.get(kind)
        if remembered is not None:
            return remembered, True
        result = self.request(
            "session/request_permission", {"toolCall": tool_call, "options": PERMISSION_OPTIONS}
        )
        outcome = result.get("outcome") if isinstance(result, dict) else None
        if not isinstance(outcome, dict):
            raise RpcError(INVALID_PARAMS, "malformed permission response")
        if outcome.get("outcome") == "cancelled":
            raise TurnCancelled
        decision = OPTION_KINDS.get(str(outcome.get("optionId")))
        if outcome.get("outcome") != "selected" or decision is None:
            raise RpcError(INVALID_PARAMS, f"unknown permission outcome {outcome!r}")
        if decision in (PermissionKind.ALLOW_ALWAYS, PermissionKind.REJECT_ALWAYS):
            self.session.remembered[kind] = decision
        return decision, False

    def guarded_tool_call(self, title: str, kind: str, **extra: Any) -> tuple[str, bool]:
        """tool_call (pending) + permission. Returns (call id, allowed); failed if rejected."""
        call_id = self.start_tool_call(title, kind, ToolStatus.PENDING, **extra)
        tool_call = {
            "toolCallId": call_id,
            "title": title,
            "kind": kind,
            "status": ToolStatus.PENDING.value,
            **{k: v for k, v in extra.items() if k != "rawInput"},
        }
        try:
            decision, _ = self.permission(tool_call)
        except RpcError as exc:
            self.update_tool_call(call_id, ToolStatus.FAILED)
            self.say(f"permission error: {exc.message}")
            return call_id, False
        if not decision.allows:
            self.update_tool_call(call_id, ToolStatus.FAILED)
            self.say("permission denied")
            return call_id, False
        return call_id, True

    def client_supports(self, capability: str) -> bool:
        caps = self.agent.client_capabilities
        if capability == "terminal":
            return caps.get("terminal") is True
        fs = caps.get("fs")
        return isinstance(fs, dict) and fs.get(capability) is True
