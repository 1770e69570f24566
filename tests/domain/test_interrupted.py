"""The "continue" follow-up of a cut turn, and reading a turn's answer from a transcript."""

from __future__ import annotations

from typing import Any

import pytest

from meta_harness.base.layout import validate_message_id
from meta_harness.domain.interrupted import SENDER, continuation, continuation_id
from meta_harness.domain.transcript import turn_stop


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        ("m1", "m1.continue"),
        ("m1.continue", "m1.continue2"),
        ("m1.continue2", "m1.continue3"),
        ("prompt-t1", "prompt-t1.continue"),
        ("a.continued", "a.continued.continue"),
    ],
)
def test_a_follow_up_id_is_derived_from_the_cut_message(message_id: str, expected: str) -> None:
    assert continuation_id(message_id) == expected


def test_a_follow_up_of_a_longest_id_is_still_a_valid_id_and_stable() -> None:
    longest = "m" * 200
    follow_up = continuation_id(longest)
    assert validate_message_id(follow_up) == follow_up
    assert continuation_id(longest) == follow_up
    assert continuation_id(follow_up) != follow_up
    assert validate_message_id(continuation_id(follow_up))


def test_the_follow_up_names_the_cut_message_and_comes_from_the_supervisor() -> None:
    drop = continuation("m7")
    assert (drop.id, drop.sender, drop.meta) == ("m7.continue", SENDER, {"continues": "m7"})
    assert "m7" in drop.content[0]["text"] and "continue" in drop.content[0]["text"]


def _out(epoch: int, rpc: int, message_id: str) -> dict[str, Any]:
    params = {"sessionId": "s", "prompt": [], "_meta": {"messageId": message_id}}
    frame = {"jsonrpc": "2.0", "id": rpc, "method": "session/prompt", "params": params}
    return {"epoch": epoch, "dir": "out", "frame": frame}


def _in(epoch: int, rpc: int, stop: str) -> dict[str, Any]:
    frame = {"jsonrpc": "2.0", "id": rpc, "result": {"stopReason": stop}}
    return {"epoch": epoch, "dir": "in", "frame": frame}


def _update(epoch: int) -> dict[str, Any]:
    frame = {"jsonrpc": "2.0", "method": "session/update", "params": {"update": {}}}
    return {"epoch": epoch, "dir": "in", "frame": frame}


TRANSCRIPT = [
    _out(1, 2, "m1"),
    _in(1, 2, "end_turn"),
    _out(2, 2, "m2"),  # epoch 2: same JSON-RPC id again (ids restart per connection)
    _update(2),
    _in(2, 2, "cancelled"),
    _out(2, 3, "m3"),  # the crash came mid-turn: no answer
    _update(2),
    {"epoch": 3, "dir": "note", "note": "spawn-failed"},
]


@pytest.mark.parametrize(
    ("message_id", "epoch", "stop"),
    [
        ("m2", 2, "cancelled"),
        ("m3", 2, None),  # cut: the turn needs continuing
        ("m1", 1, "end_turn"),
        ("m1", 2, None),  # only the connection that carried it is read
        ("zz", 2, None),
    ],
)
def test_a_turns_answer_is_found_only_in_the_connection_that_carried_it(
    message_id: str, epoch: int, stop: str | None
) -> None:
    assert turn_stop(reversed(TRANSCRIPT), message_id, epoch) == stop


def test_an_answer_to_the_same_rpc_id_of_another_connection_does_not_count() -> None:
    records = [_out(1, 2, "m1"), _in(2, 2, "end_turn")]
    assert turn_stop(reversed(records), "m1", 1) is None
