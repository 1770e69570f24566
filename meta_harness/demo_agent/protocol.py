"""The protocol's vocabulary, shared by every module: names, versions, error codes, errors.

Owns the enums that appear on the wire (stop reasons, permission kinds, tool statuses), the
permission options offered to the client, `RpcError` and the one compact JSON encoding used for
frames and files. No I/O and no state.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

VERSION = "0.1.0"
AGENT_NAME = "meta-harness-demo"
PROTOCOL_VERSION = 1

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RESOURCE_NOT_FOUND = -32002

TOOL_KINDS = frozenset(
    {
        "read",
        "edit",
        "delete",
        "move",
        "search",
        "execute",
        "think",
        "fetch",
        "switch_mode",
        "other",
    }
)

Json = dict[str, Any]


class StopReason(StrEnum):
    END_TURN = "end_turn"
    CANCELLED = "cancelled"
    REFUSAL = "refusal"


class PermissionKind(StrEnum):
    ALLOW_ONCE = "allow_once"
    ALLOW_ALWAYS = "allow_always"
    REJECT_ONCE = "reject_once"
    REJECT_ALWAYS = "reject_always"

    @property
    def allows(self) -> bool:
        return self in (PermissionKind.ALLOW_ONCE, PermissionKind.ALLOW_ALWAYS)


class ToolStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


PERMISSION_OPTIONS: list[Json] = [
    {"optionId": "allow-once", "name": "Allow", "kind": "allow_once"},
    {"optionId": "allow-always", "name": "Always allow", "kind": "allow_always"},
    {"optionId": "reject-once", "name": "Reject", "kind": "reject_once"},
    {"optionId": "reject-always", "name": "Always reject", "kind": "reject_always"},
]
OPTION_KINDS = {o["optionId"]: PermissionKind(o["kind"]) for o in PERMISSION_OPTIONS}


class RpcError(Exception):
    """A JSON-RPC error: raised by handlers (sent to the client) or received from the client."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> Json:
        error: Json = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}")


def session_not_found(session_id: str) -> RpcError:
    return RpcError(RESOURCE_NOT_FOUND, "session not found", {"sessionId": session_id})


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")
