"""Folding an inbox WAL into delivery state: pending order, duplicates, in-doubt messages.

The compact fold (bodies only while unsettled) is checked against a reference fold that
keeps everything, after every record of random and runner-like histories.
"""

from __future__ import annotations

import gc
import random
import weakref
from dataclasses import dataclass, field
from typing import Any

import pytest

from meta_harness.domain.drops import Control, MessageDrop
from meta_harness.domain.inbox import (
    InboxState,
    Message,
    Op,
    ack_record,
    drop_record,
    msg_record,
    sent_record,
)


def msg(mid: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    drop = MessageDrop(id=mid, sender="user", content=[{"type": "text", "text": text}], **extra)
    return msg_record(drop, ts=1.0)


def sent(mid: str, epoch: int = 1) -> dict[str, Any]:
    return sent_record(mid, epoch)


def ack(mid: str, stop: str = "end_turn") -> dict[str, Any]:
    return ack_record(mid, stop)


def drop(mid: str) -> dict[str, Any]:
    return drop_record(mid, "task ended")


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_records_carry_their_op_and_fields() -> None:
    control = MessageDrop(
        id="c1", sender="u", content=[], control=Control.COMPLETE, result="ok", meta={"k": 1}
    )
    record = msg_record(control, ts=2.0)
    assert record == {
        "op": "msg",
        "id": "c1",
        "from": "u",
        "ts": 2.0,
        "content": [],
        "control": "complete",
        "result": "ok",
        "meta": {"k": 1},
    }
    assert sent("m", 3)["op"] == Op.SENT and sent("m", 3)["epoch"] == 3
    assert ack_record("m", "error", error="boom")["error"] == "boom"
    assert drop("m")["reason"] == "task ended"


FOLDS = [
    ("nothing", [], [], []),
    ("accepted only", [msg("a"), msg("b")], ["a", "b"], []),
    ("acked is settled", [msg("a"), msg("b"), sent("a"), ack("a")], ["b"], []),
    ("dropped is settled", [msg("a"), msg("b"), drop("a")], ["b"], []),
    ("sent without ack is in doubt", [msg("a"), sent("a"), msg("b")], ["a", "b"], ["a"]),
    ("sent twice still one in doubt", [msg("a"), sent("a"), sent("a", 2)], ["a"], ["a"]),
    ("sent then acked is not in doubt", [msg("a"), sent("a"), ack("a", "recovered")], [], []),
    ("settled out of order", [msg("a"), msg("b"), msg("c"), ack("b")], ["a", "c"], []),
    ("ack before msg settles it", [ack("a"), msg("a"), msg("b")], ["b"], []),
    (
        "record without an id is ignored",
        [{"op": "msg"}, msg("a"), {"op": "ack", "id": 5}],
        ["a"],
        [],
    ),
    ("unknown op is ignored", [msg("a"), {"op": "bogus", "id": "a"}], ["a"], []),
]


@pytest.mark.parametrize(
    ("records", "pending", "in_doubt"), [f[1:] for f in FOLDS], ids=[f[0] for f in FOLDS]
)
def test_fold_gives_pending_in_order_and_in_doubt_as_sent_without_ack(
    records: list[dict[str, Any]], pending: list[str], in_doubt: list[str]
) -> None:
    state = InboxState.fold(records)
    assert ids(state.pending()) == pending
    assert ids(state.in_doubt()) == in_doubt
    first = state.next_pending()
    assert (first.id if first else None) == (pending[0] if pending else None)


def test_a_duplicate_msg_record_is_counted_and_keeps_the_first_copy() -> None:
    state = InboxState.fold([msg("a", "first"), msg("b"), msg("a", "second")])
    assert state.duplicates == 1
    assert ids(state.pending()) == ["a", "b"]
    assert state.messages["a"].content == [{"type": "text", "text": "first"}]
    assert state.knows("a") and not state.knows("zzz")
    assert state.counts() == {"accepted": 2, "delivered": 0, "pending": 2, "duplicates": 1}


def test_a_settled_id_is_still_a_duplicate_but_its_body_is_released() -> None:
    state = InboxState.fold([msg("a", "x" * 1000), msg("b")])
    body = weakref.ref(state.unsettled["a"])
    state.apply(sent("a"))
    state.apply(ack("a"))
    gc.collect()
    assert body() is None
    assert state.message("a") is None and "a" not in state.messages
    assert state.knows("a") and state.settled("a")
    state.apply(msg("a", "again"))
    assert state.duplicates == 1
    assert ids(state.pending()) == ["b"]


def test_an_ack_or_drop_before_its_msg_settles_it_without_marking_it_known() -> None:
    state = InboxState.fold([ack("a"), drop("b"), sent("c")])
    assert state.settled("a") and state.settled("b") and not state.knows("a")
    assert state.counts()["accepted"] == 0
    state.apply(msg("a"))
    state.apply(msg("c"))
    assert state.knows("a") and not state.knows("b")
    assert ids(state.pending()) == ["c"] and ids(state.in_doubt()) == ["c"]
    assert state.counts() == {"accepted": 2, "delivered": 1, "pending": 1, "duplicates": 0}


def test_next_pending_skips_settled_messages_as_they_settle() -> None:
    state = InboxState.fold([msg("a"), msg("b"), msg("c")])
    seen = []
    while (message := state.next_pending()) is not None:
        seen.append(message.id)
        state.apply(sent(message.id))
        state.apply(ack(message.id))
    assert seen == ["a", "b", "c"]
    assert state.pending() == []
    assert state.counts()["delivered"] == 3


def test_next_pending_returns_an_unsettled_message_behind_a_settled_one() -> None:
    state = InboxState.fold([msg("a"), msg("b"), msg("c"), ack("a"), drop("b")])
    assert state.next_pending().id == "c"  # type: ignore[union-attr]
    state.apply(msg("d"))
    state.apply(ack("c"))
    assert state.next_pending().id == "d"  # type: ignore[union-attr]


def test_a_message_accepted_after_everything_settled_is_pending() -> None:
    state = InboxState.fold([msg("a"), ack("a")])
    assert state.next_pending() is None
    state.apply(msg("b"))
    assert ids(state.pending()) == ["b"]


def test_errors_are_not_counted_as_delivered() -> None:
    state = InboxState.fold([msg("a"), msg("b"), ack("a", "error"), ack("b", "end_turn")])
    assert state.counts()["delivered"] == 1
    assert state.acked == {"a": "error", "b": "end_turn"}
    assert state.acked.get("a") == "error" and state.acked.get("zzz") is None


def test_the_last_ack_of_an_id_decides_whether_it_counts_as_delivered() -> None:
    state = InboxState.fold([msg("a"), drop("a"), ack("a", "error")])
    assert state.counts()["delivered"] == 0 and len(state.acked) == 1
    state.apply(ack("a", "recovered"))
    assert state.counts()["delivered"] == 1 and state.acked == {"a": "recovered"}
    state.apply(ack("a", "error"))
    assert state.counts()["delivered"] == 0


def test_the_acked_view_follows_later_records_and_leaves_out_dropped_ids() -> None:
    state = InboxState.fold([msg("a"), msg("b"), drop("b")])
    acked = state.acked
    assert not acked and "b" not in acked
    state.apply(ack("a"))
    assert acked and len(acked) == 1 and list(acked) == ["a"] and acked["a"] == "end_turn"


def test_resent_counts_messages_stamped_in_flight_more_than_once() -> None:
    state = InboxState.fold([msg("a"), msg("b"), sent("a", 1), sent("a", 2), sent("a", 3)])
    state.apply(sent("b", 3))
    assert state.resent == 1 and state.sent == {"a": 3, "b": 1}
    state.apply(ack("a"))
    assert state.resent == 1 and state.sent == {"b": 1}
    assert state.last_epoch == 3


def test_controls_and_metadata_survive_the_fold() -> None:
    record = msg_record(
        MessageDrop(id="c", sender="u", content=[], control=Control.CANCEL, meta={"x": 1})
    )
    message = InboxState.fold([record]).messages["c"]
    assert message.control is Control.CANCEL
    assert message.meta == {"x": 1}
    assert message.sender == "u"


def test_a_fold_is_the_same_as_applying_records_one_by_one() -> None:
    records = [msg("a"), msg("b"), sent("a"), ack("a"), msg("a"), msg("c"), drop("c"), sent("b")]
    folded = InboxState.fold(iter(records))
    stepped = InboxState()
    for r in records:
        stepped.apply(r)
    assert folded == stepped
    assert ids(folded.in_doubt()) == ["b"]


# -- the compact fold against a reference that keeps everything -------------------------------


@dataclass
class ReferenceFold:
    """The fold as it was before compaction: every message and every stamp kept forever."""

    messages: dict[str, Message] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    acked: dict[str, str] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    stamped_unsettled: dict[str, int] = field(default_factory=dict)  # stamps before settling
    duplicates: int = 0
    last_epoch: int = 0

    def apply(self, record: dict[str, Any]) -> None:
        op, mid = record.get("op"), record.get("id")
        if not isinstance(mid, str):
            return
        if op == "msg":
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
        elif op == "sent":
            self.sent[mid] = self.sent.get(mid, 0) + 1
            if not self.settled(mid):
                self.stamped_unsettled[mid] = self.stamped_unsettled.get(mid, 0) + 1
            epoch = record.get("epoch")
            if isinstance(epoch, int) and epoch > self.last_epoch:
                self.last_epoch = epoch
        elif op == "ack":
            self.acked[mid] = str(record.get("stop", ""))
        elif op == "drop":
            self.dropped.add(mid)

    def settled(self, mid: str) -> bool:
        return mid in self.acked or mid in self.dropped

    def pending(self) -> list[Message]:
        return [self.messages[mid] for mid in self.order if not self.settled(mid)]

    def counts(self) -> dict[str, int]:
        return {
            "accepted": len(self.order),
            "delivered": sum(1 for s in self.acked.values() if s != "error"),
            "pending": len(self.pending()),
            "duplicates": self.duplicates,
        }


STOPS = ["end_turn", "error", "recovered", "cancelled"]


def random_record(rng: random.Random, universe: list[str]) -> dict[str, Any]:
    mid = rng.choice(universe)
    roll = rng.random()
    if roll < 0.35:
        extra: dict[str, Any] = {}
        if rng.random() < 0.1:
            extra = {"control": Control.CANCEL, "meta": {"n": rng.randint(0, 9)}}
        return msg(mid, f"text {rng.randint(0, 999)}", **extra)
    if roll < 0.55:
        record = sent(mid, rng.randint(0, 6))
        if rng.random() < 0.1:
            record["epoch"] = rng.choice([None, "3", 2.5])
        return record
    if roll < 0.78:
        return ack(mid, rng.choice(STOPS))
    if roll < 0.92:
        return drop(mid)
    return rng.choice([{"op": "msg"}, {"op": "ack", "id": 5}, {"op": "bogus", "id": mid}])


def assert_same_answers(state: InboxState, ref: ReferenceFold, universe: list[str]) -> None:
    for mid in [*universe, "never-seen"]:
        assert state.knows(mid) == (mid in ref.messages), mid
        assert state.settled(mid) == ref.settled(mid), mid
        expected = ref.messages[mid] if mid in ref.messages and not ref.settled(mid) else None
        assert state.message(mid) == expected, mid
    pending = ref.pending()
    assert state.pending() == pending
    assert state.next_pending() == (pending[0] if pending else None)
    assert state.in_doubt() == [m for m in pending if m.id in ref.sent]
    assert state.counts() == ref.counts()
    assert state.last_epoch == ref.last_epoch
    assert state.duplicates == ref.duplicates
    assert dict(state.acked) == ref.acked and len(state.acked) == len(ref.acked)
    assert dict(state.sent) == {k: n for k, n in ref.sent.items() if not ref.settled(k)}
    assert state.resent == sum(1 for n in ref.stamped_unsettled.values() if n > 1)
    assert dict(state.messages) == {m.id: m for m in pending}


@pytest.mark.parametrize("seed", range(300))
def test_the_compact_fold_answers_like_the_reference_after_every_record(seed: int) -> None:
    rng = random.Random(seed)
    universe = [f"m{i}" for i in range(rng.randint(1, 10))]
    state, ref = InboxState(), ReferenceFold()
    records = [random_record(rng, universe) for _ in range(rng.randint(0, 80))]
    for record in records:
        state.apply(record)
        ref.apply(record)
        assert_same_answers(state, ref, universe)
    assert InboxState.fold(records) == state


@pytest.mark.parametrize("seed", range(20))
def test_a_long_runner_like_history_keeps_only_the_unsettled_bodies(seed: int) -> None:
    """Ingest bursts, the runner stamps and settles the oldest, sometimes a crash resends."""
    rng = random.Random(seed)
    state, ref = InboxState(), ReferenceFold()
    universe: list[str] = []
    for step in range(2000):
        if rng.random() < 0.5:
            mid = f"m{step}" if rng.random() < 0.9 or not universe else rng.choice(universe)
            universe.append(mid)
            records = [msg(mid)]
        elif (first := state.next_pending()) is not None:
            records = [sent(first.id, step)] * rng.choice([1, 1, 1, 2])
            records.append(rng.choice([ack(first.id, rng.choice(STOPS)), drop(first.id)]))
        else:
            continue
        for record in records:
            state.apply(record)
            ref.apply(record)
    assert_same_answers(state, ref, universe[-50:])
    assert len(state.unsettled) == len(ref.pending())
    assert set(state.sent) <= set(state.unsettled)
