"""The inbox write-ahead log of one task: its records and the delivery state they fold into.

`inbox.wal.jsonl` holds, in order: `msg` (accepted, durable before the drop file is
removed), `sent` (stamped in flight before the prompt is sent), `ack` (the prompt
returned, or a load replay proved it arrived) and `drop` (never delivered, e.g. the task
had ended). `InboxState` folds those records; it decides what is next to send, what is
in doubt after a crash, and which ids are duplicates. Pure: the runtime does the I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from meta_harness.domain.drops import Control, MessageDrop


class Op(StrEnum):
    MSG = "msg"
    SENT = "sent"
    ACK = "ack"
    DROP = "drop"


@dataclass
class Message:
    id: str
    sender: str
    content: list[dict[str, Any]]
    ts: float
    control: Control | None = None
    result: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def msg_record(drop: MessageDrop, *, ts: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "op": Op.MSG.value,
        "id": drop.id,
        "from": drop.sender,
        "ts": ts if ts is not None else time.time(),
        "content": drop.content,
    }
    if drop.control is not None:
        record["control"] = drop.control.value
    if drop.result is not None:
        record["result"] = drop.result
    if drop.meta:
        record["meta"] = drop.meta
    return record


def sent_record(message_id: str, epoch: int) -> dict[str, Any]:
    return {"op": Op.SENT.value, "id": message_id, "ts": time.time(), "epoch": epoch}


def ack_record(message_id: str, stop: str, *, error: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"op": Op.ACK.value, "id": message_id, "ts": time.time(), "stop": stop}
    if error is not None:
        record["error"] = error
    return record


def drop_record(message_id: str, reason: str) -> dict[str, Any]:
    return {"op": Op.DROP.value, "id": message_id, "ts": time.time(), "reason": reason}


@dataclass
class InboxState:
    """Delivery state of one task, folded from its WAL records."""

    messages: dict[str, Message] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # id -> times stamped in flight
    acked: dict[str, str] = field(default_factory=dict)  # id -> stop reason
    dropped: set[str] = field(default_factory=set)
    duplicates: int = 0
    _cursor: int = 0  # index in `order` before which everything is settled

    @classmethod
    def fold(cls, records: list[dict[str, Any]]) -> InboxState:
        state = cls()
        for record in records:
            state.apply(record)
        return state

    def apply(self, record: dict[str, Any]) -> None:
        op = record.get("op")
        mid = record.get("id")
        if not isinstance(mid, str):
            return
        if op == Op.MSG:
            if mid in self.messages:
                self.duplicates += 1
                return
            control = record.get("control")
            self.messages[mid] = Message(
                id=mid,
                sender=str(record.get("from", "")),
                content=list(record.get("content") or []),
                ts=float(record.get("ts", 0.0)),
                control=Control(control) if control else None,
                result=record.get("result"),
                meta=dict(record.get("meta") or {}),
            )
            self.order.append(mid)
        elif op == Op.SENT:
            self.sent[mid] = self.sent.get(mid, 0) + 1
        elif op == Op.ACK:
            self.acked[mid] = str(record.get("stop", ""))
        elif op == Op.DROP:
            self.dropped.add(mid)

    def knows(self, message_id: str) -> bool:
        """Whether `message_id` was accepted before (a new copy is a duplicate)."""
        return message_id in self.messages

    def settled(self, message_id: str) -> bool:
        return message_id in self.acked or message_id in self.dropped

    def pending(self) -> list[Message]:
        """Accepted messages not yet acked or dropped, oldest first."""
        while self._cursor < len(self.order) and self.settled(self.order[self._cursor]):
            self._cursor += 1
        return [self.messages[mid] for mid in self.order[self._cursor :] if not self.settled(mid)]

    def next_pending(self) -> Message | None:
        while self._cursor < len(self.order) and self.settled(self.order[self._cursor]):
            self._cursor += 1
        for mid in self.order[self._cursor :]:
            if not self.settled(mid):
                return self.messages[mid]
        return None

    def in_doubt(self) -> list[Message]:
        """Stamped in flight but never acked: the agent may or may not have received them."""
        return [m for m in self.pending() if m.id in self.sent]

    def counts(self) -> dict[str, int]:
        return {
            "accepted": len(self.order),
            "delivered": sum(1 for s in self.acked.values() if s != "error"),
            "pending": len(self.pending()),
            "duplicates": self.duplicates,
        }
