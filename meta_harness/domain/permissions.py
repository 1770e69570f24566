"""Permission decisions (pure): which rule applies to a tool call, and which option to pick.

A profile's rules match a tool call on its ACP kind, its title (glob) and its tool name
(glob); the first match wins, else the policy's default. An answer picks an option by
its *kind* (`allow_once`, `allow_always`, `reject_once`, `reject_always`), never by the
agent's option ids, which differ per agent. Request and answer files: docs/design.md
§Permission gate.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from meta_harness.base.config import Action, PermissionPolicy

TOOL_KINDS = ("read", "edit", "delete", "move", "search", "execute", "think", "fetch", "other")


class Decision(StrEnum):
    ALLOW = "allow"
    REJECT = "reject"
    CANCELLED = "cancelled"


class RequestStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"


@dataclass(frozen=True)
class Ruling:
    action: Action
    rule: str  # which rule decided, for the transcript


def tool_call_facts(tool_call: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, title, tool name) of an ACP ToolCallUpdate as the rules see them."""
    kind = tool_call.get("kind") or "other"
    title = tool_call.get("title") or ""
    meta = tool_call.get("_meta") or {}
    tool = ""
    if isinstance(meta, dict):
        for key in ("toolName", "tool_name", "claudeCode"):
            value = meta.get(key)
            if isinstance(value, str):
                tool = value
                break
            if isinstance(value, dict) and isinstance(value.get("toolName"), str):
                tool = value["toolName"]
                break
    if not tool:
        tool = title.split(" ", 1)[0] if title else ""
    return str(kind), str(title), tool


def rule_for(policy: PermissionPolicy, tool_call: dict[str, Any]) -> Ruling:
    kind, title, tool = tool_call_facts(tool_call)
    for index, rule in enumerate(policy.rules):
        if rule.kind is not None and rule.kind != kind:
            continue
        if rule.title is not None and not fnmatch.fnmatchcase(title, rule.title):
            continue
        if rule.tool is not None and not fnmatch.fnmatchcase(tool, rule.tool):
            continue
        conditions = (("kind", rule.kind), ("title", rule.title), ("tool", rule.tool))
        what = ", ".join(f"{k}={v}" for k, v in conditions if v)
        return Ruling(rule.action, f"rule {index + 1} ({what or 'any'})")
    return Ruling(policy.default, "default")


def choose_option(options: list[dict[str, Any]], decision: Decision, *, always: bool) -> str | None:
    """The optionId to answer with, chosen by kind; None if the agent offered none that fits."""
    if decision is Decision.CANCELLED:
        return None
    base = "allow" if decision is Decision.ALLOW else "reject"
    order = [f"{base}_always", f"{base}_once"] if always else [f"{base}_once", f"{base}_always"]
    for wanted in order:
        for option in options:
            if option.get("kind") == wanted and isinstance(option.get("optionId"), str):
                return str(option["optionId"])
    return None


def request_record(
    request_id: str,
    task_id: str,
    session_id: str,
    tool_call: dict[str, Any],
    options: list[dict[str, Any]],
    timeout: float,
) -> dict[str, Any]:
    now = time.time()
    kind, title, tool = tool_call_facts(tool_call)
    return {
        "id": request_id,
        "task": task_id,
        "session_id": session_id,
        "status": RequestStatus.PENDING.value,
        "kind": kind,
        "title": title,
        "tool": tool,
        "tool_call": tool_call,
        "options": options,
        "created_at": now,
        "expires_at": now + timeout if timeout else None,
    }


def parse_answer(obj: Any) -> tuple[Decision, bool, str, str]:
    """(decision, always, by, reason) from an answer file's JSON; ValueError if malformed."""
    if not isinstance(obj, dict):
        raise ValueError("an answer must be a JSON object")
    raw = obj.get("decision")
    if raw not in ("allow", "reject"):
        raise ValueError("field 'decision' must be 'allow' or 'reject'")
    always = obj.get("always", False)
    if not isinstance(always, bool):
        raise ValueError("field 'always' must be true or false")
    by = obj.get("by", "file")
    reason = obj.get("reason", "")
    if not isinstance(by, str) or not isinstance(reason, str):
        raise ValueError("fields 'by' and 'reason' must be strings")
    return Decision(raw), always, by[:200], reason[:1000]
