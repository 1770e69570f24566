"""The reply to one message, read from the task's transcript and WAL as they grow.

`send --wait` and the demo publish a message, then feed every new transcript and WAL
record to a `TurnTracker`: it finds the outgoing `session/prompt` frame whose
`params._meta.messageId` is the message's id (and remembers that frame's connection
epoch and JSON-RPC id: ids restart with every connection), yields the text of each
`agent_message_chunk` that follows in that epoch, and ends at the response with that
id. A crash re-sends the message in a new epoch (the tracker follows the new frame);
the WAL settles what the transcript cannot show: `ack … recovered` (a load replay proved
the agent had it) and `drop` (the task ended first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meta_harness.base.errors import Conflict, MetaHarnessError, TimedOut
from meta_harness.base.jsonl import end_offset, read_from
from meta_harness.base.layout import TaskPaths
from meta_harness.cli.follow import Waker
from meta_harness.domain.inbox import Op
from meta_harness.domain.transcript import Direction, session_update, update_text

RECOVERED = "recovered"  # WAL ack stop: a session/load replay showed the agent had the message


@dataclass(frozen=True)
class Reply:
    message_id: str
    stop: str | None  # stopReason, or "recovered"
    error: str | None  # the JSON-RPC error of the prompt, or why it was never delivered
    text: str
    dropped: bool = False

    def raise_for_outcome(self) -> None:
        """Nothing for a finished turn; otherwise the error a command exits with."""
        if self.dropped:
            raise Conflict(f"message {self.message_id} was not delivered: {self.error}")
        if self.error is not None:
            raise MetaHarnessError(f"the agent answered with an error: {self.error}")
        if self.stop not in ("end_turn", RECOVERED):
            raise MetaHarnessError(f"the turn ended without finishing: stopReason {self.stop}")


class TurnTracker:
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.epoch: int | None = None
        self.rpc_id: Any = None
        self.accepted = False  # the supervisor put it in the WAL
        self.attempts = 0  # prompt frames seen (more than one: re-sent after a crash)
        self.reply: Reply | None = None
        self.ack: dict[str, Any] | None = None  # the WAL's ack record, once seen
        self._text: list[str] = []

    def on_transcript(self, record: dict[str, Any]) -> str | None:
        """Feed one transcript record; returns agent text to show now, if any."""
        if self.reply is not None:
            return None
        frame = record.get("frame")
        if not isinstance(frame, dict):
            return None
        direction = record.get("dir")
        if direction == Direction.OUT and frame.get("method") == "session/prompt":
            params = frame.get("params") or {}
            meta = params.get("_meta") if isinstance(params, dict) else None
            if isinstance(meta, dict) and meta.get("messageId") == self.message_id:
                self.epoch = record.get("epoch")
                self.rpc_id = frame.get("id")
                self.attempts += 1
                self._text = []
            return None
        if self.epoch is None or record.get("epoch") != self.epoch or direction != Direction.IN:
            return None
        if "method" in frame:
            update = session_update(record)
            if update is None or record.get("load"):
                return None
            if update.get("sessionUpdate") == "agent_message_chunk":
                text = update_text(update)
                self._text.append(text)
                return text or None
            return None
        if frame.get("id") == self.rpc_id and ("result" in frame or "error" in frame):
            self._finish_response(frame)
        return None

    def _finish_response(self, frame: dict[str, Any]) -> None:
        text = "".join(self._text)
        error = frame.get("error")
        if error is not None:
            detail = error.get("message") if isinstance(error, dict) else error
            code = error.get("code") if isinstance(error, dict) else None
            self.reply = Reply(self.message_id, None, f"{detail} (code {code})", text)
            return
        result = frame.get("result")
        stop = result.get("stopReason") if isinstance(result, dict) else None
        self.reply = Reply(self.message_id, str(stop), None, text)

    def on_wal(self, record: dict[str, Any]) -> None:
        if self.reply is not None or record.get("id") != self.message_id:
            return
        op = record.get("op")
        if op == Op.MSG:
            self.accepted = True
        elif op == Op.DROP:
            reason = str(record.get("reason", "dropped"))
            self.reply = Reply(self.message_id, None, reason, "", dropped=True)
        elif op == Op.ACK:
            self.ack = record

    def settle_from_ack(self) -> None:
        """The WAL acked the message but the transcript showed no response (e.g. `recovered`)."""
        if self.reply is not None or self.ack is None:
            return
        stop = str(self.ack.get("stop", ""))
        error = self.ack.get("error") if stop == "error" else None
        text = "".join(self._text)
        self.reply = Reply(self.message_id, None if error else stop, error, text)


@dataclass
class Offsets:
    """Where a follower of one task starts: the ends of its transcript and WAL right now."""

    transcript: int
    wal: int

    @classmethod
    def now(cls, paths: TaskPaths) -> Offsets:
        return cls(end_offset(paths.transcript), end_offset(paths.wal))


class TurnFollower:
    """Feeds a tracker the task's new transcript and WAL records, from `offsets` on."""

    def __init__(
        self,
        paths: TaskPaths,
        tracker: TurnTracker,
        offsets: Offsets,
        on_text: Callable[[str], None],
    ) -> None:
        self.paths = paths
        self.tracker = tracker
        self.offsets = offsets
        self.on_text = on_text

    def poll(self) -> Reply | None:
        """Read what was appended since the last call; the reply once it is known."""
        self._read_transcript()
        if self.tracker.reply is None:
            records, self.offsets.wal = read_from(self.paths.wal, self.offsets.wal)
            for _, record in records:
                self.tracker.on_wal(record)
            if self.tracker.ack is not None:
                # the response precedes the ack: read what the transcript got meanwhile
                self._read_transcript()
                self.tracker.settle_from_ack()
        return self.tracker.reply

    def _read_transcript(self) -> None:
        tracker = self.tracker
        records, self.offsets.transcript = read_from(self.paths.transcript, self.offsets.transcript)
        for _, record in records:
            text = tracker.on_transcript(record)
            if text:
                self.on_text(text)
            if tracker.reply is not None:
                return


def wait_reply(
    paths: TaskPaths,
    tracker: TurnTracker,
    offsets: Offsets,
    *,
    deadline: float | None,
    on_text: Callable[[str], None],
) -> Reply:
    """Follow the task's transcript and WAL from `offsets` until the tracker has the reply."""
    follower = TurnFollower(paths, tracker, offsets, on_text)
    with Waker(paths.dir, deadline=deadline) as waker:
        while (reply := follower.poll()) is None:
            if not waker.wait():
                state = (
                    "answered"
                    if tracker.attempts
                    else "delivered"
                    if tracker.accepted
                    else "accepted"
                )
                raise TimedOut(f"timed out: message {tracker.message_id} was not {state} in time")
        return reply
