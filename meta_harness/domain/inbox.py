"""The inbox write-ahead log of one task: its records and the delivery state they fold into.

`inbox.wal.jsonl` holds, in order: `msg` (accepted, durable before the drop file is
removed), `sent` (stamped in flight before the prompt is sent), `ack` (the prompt
returned, or a load replay proved it arrived) and `drop` (never delivered, e.g. the task
had ended). `InboxState` folds those records; it decides what is next to send, what is
in doubt after a crash, and which ids are duplicates, keeping a message's body only until
it settles (memory follows the unsettled messages, not the history). Pure: the runtime
does the I/O.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from meta_harness.domain.drops import Control, MessageDrop

STOP_ERROR = "error"  # the stop reason of an ack whose prompt failed: not delivered


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
    """Delivery state of one task, folded from its WAL records.

    Memory is bounded by what is still to do: a full `Message` is kept only while it is
    unsettled (neither acked nor dropped). A settled id keeps one dict entry (its last
    stop reason, an interned string) because dedup lasts forever; what only counts read
    is kept as counters.
    """

    unsettled: dict[str, Message] = field(default_factory=dict)  # WAL order
    duplicates: int = 0
    last_epoch: int = 0  # highest connection epoch any `sent` stamp carries
    accepted: int = 0  # distinct ids ever accepted (`msg` records that were not duplicates)
    delivered: int = 0  # ids whose last ack is not an error
    resent: int = 0  # ids stamped in flight more than once before they settled
    # unsettled id -> times stamped in flight (a stamp may come before its `msg`)
    _stamps: dict[str, int] = field(default_factory=dict, repr=False)
    # settled id -> its last ack's stop reason, None if it was only dropped
    _settled: dict[str, str | None] = field(default_factory=dict, repr=False)
    _unaccepted: set[str] = field(default_factory=set, repr=False)  # settled, no `msg` (yet)
    _acks: int = 0  # settled ids with an ack

    @classmethod
    def fold(cls, records: Iterable[dict[str, Any]]) -> InboxState:
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
            self._accept(mid, record)
        elif op == Op.SENT:
            epoch = record.get("epoch")
            if isinstance(epoch, int) and epoch > self.last_epoch:
                self.last_epoch = epoch
            if mid not in self._settled:
                stamps = self._stamps[mid] = self._stamps.get(mid, 0) + 1
                if stamps == 2:
                    self.resent += 1
        elif op == Op.ACK:
            stop = sys.intern(str(record.get("stop", "")))
            if mid in self._settled:
                previous = self._settled[mid]
                key = mid  # assigning to an existing key keeps the stored key object
            else:
                previous, key = None, self._settle(mid)
            if previous is None:
                self._acks += 1
            elif previous != STOP_ERROR:
                self.delivered -= 1
            if stop != STOP_ERROR:
                self.delivered += 1
            self._settled[key] = stop
        elif op == Op.DROP and mid not in self._settled:
            self._settled[self._settle(mid)] = None

    def _accept(self, mid: str, record: dict[str, Any]) -> None:
        if self.knows(mid):
            self.duplicates += 1
            return
        self.accepted += 1
        if mid in self._settled:  # its ack or drop came first: nothing left to deliver
            self._unaccepted.discard(mid)
            return
        control = record.get("control")
        self.unsettled[mid] = Message(
            id=mid,
            sender=str(record.get("from", "")),
            content=list(record.get("content") or []),
            ts=float(record.get("ts", 0.0)),
            control=Control(control) if control else None,
            result=record.get("result"),
            meta=dict(record.get("meta") or {}),
        )

    def _settle(self, mid: str) -> str:
        """Forget the body and stamps of a newly settled id; the key to remember it by."""
        self._stamps.pop(mid, None)
        message = self.unsettled.pop(mid, None)
        if message is None:
            self._unaccepted.add(mid)
            return mid
        return message.id  # the accepted record's string; the ack's own copy is freed

    def knows(self, message_id: str) -> bool:
        """Whether `message_id` was accepted before (a new copy is a duplicate)."""
        if message_id in self.unsettled:
            return True
        return message_id in self._settled and message_id not in self._unaccepted

    def settled(self, message_id: str) -> bool:
        return message_id in self._settled

    def message(self, message_id: str) -> Message | None:
        """The accepted, unsettled message with this id (a settled one's body is gone)."""
        return self.unsettled.get(message_id)

    def pending(self) -> list[Message]:
        """Accepted messages not yet acked or dropped, oldest first."""
        return list(self.unsettled.values())

    def next_pending(self) -> Message | None:
        return next(iter(self.unsettled.values()), None)

    def in_doubt(self) -> list[Message]:
        """Stamped in flight but never acked: the agent may or may not have received them."""
        return [m for m in self.unsettled.values() if m.id in self._stamps]

    def counts(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "delivered": self.delivered,
            "pending": len(self.unsettled),
            "duplicates": self.duplicates,
        }

    # -- read-only views under the names callers used before the state was compacted --------

    @property
    def messages(self) -> Mapping[str, Message]:
        """The unsettled messages by id (settled ones are no longer kept)."""
        return MappingProxyType(self.unsettled)

    @property
    def acked(self) -> Mapping[str, str]:
        """Acked id -> its last stop reason, for every id ever acked."""
        return _AckedView(self)

    @property
    def sent(self) -> Mapping[str, int]:
        """Unsettled id -> times stamped in flight (settled ids: see `resent`)."""
        return MappingProxyType(self._stamps)


class _AckedView(Mapping[str, str]):
    """The acked ids of a state's settled-id table (dropped-only ids map to None there)."""

    def __init__(self, state: InboxState) -> None:
        self._state = state

    def __getitem__(self, key: str) -> str:
        stop = self._state._settled[key]
        if stop is None:
            raise KeyError(key)
        return stop

    def __iter__(self) -> Iterator[str]:
        return (mid for mid, stop in self._state._settled.items() if stop is not None)

    def __len__(self) -> int:
        return self._state._acks
