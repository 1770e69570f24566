"""Folding an inbox WAL into delivery state: pending order, duplicates, in-doubt messages."""

from __future__ import annotations

from typing import Any

import pytest

from meta_harness.domain.drops import Control, MessageDrop
from meta_harness.domain.inbox import (
    InboxState,
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
    assert state.order == ["a", "b"]
    assert state.messages["a"].content == [{"type": "text", "text": "first"}]
    assert state.knows("a") and not state.knows("zzz")
    assert state.counts() == {"accepted": 2, "delivered": 0, "pending": 2, "duplicates": 1}


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
    folded = InboxState.fold(records)
    stepped = InboxState()
    for r in records:
        stepped.apply(r)
    assert (folded.order, folded.sent, folded.acked, folded.dropped, folded.duplicates) == (
        stepped.order,
        stepped.sent,
        stepped.acked,
        stepped.dropped,
        stepped.duplicates,
    )
    assert ids(folded.in_doubt()) == ["b"]
