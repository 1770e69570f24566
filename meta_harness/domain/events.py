"""Records of `.meta-harness/events.jsonl`: the lifecycle of every task in one log.

Task phase changes, session phase changes, swaps with their duration, rejections,
supervisor start and stop. Written by the supervisor only; read by `ls`, `stats`, the
web page and `send --wait`.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    SUPERVISOR = "supervisor"  # started / stopping / stopped
    TASK_CREATED = "task.created"
    TASK_PHASE = "task.phase"
    SESSION_PHASE = "session.phase"
    MESSAGE = "message"  # accepted / acked / dropped
    PERMISSION = "permission"  # requested / answered
    REJECTED = "rejected"  # a drop file set aside
    SWAP = "swap"  # out / in, with duration
    WARNING = "warning"


def event(etype: EventType, task: str | None = None, /, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"ts": time.time(), "type": etype.value}
    if task is not None:
        record["task"] = task
    record.update(fields)
    return record
