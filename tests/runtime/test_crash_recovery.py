"""Kill tests: a supervisor SIGKILLed at each step of ingest and delivery loses nothing.

Each test arms one fault point (`META_HARNESS_CRASH_AT`, base/faults.py), or kills the
supervisor itself while a turn runs, then restarts it without the fault and reads the
truth from the files: the WAL (every accepted message acked exactly once), the demo
agent's received log (every message arrived; only the one in flight at the crash may
arrive twice, under the same id) and the transcript (a `recovered` ack only where the
`session/load` replay showed the message).
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import pytest

from tests.support.procs import (
    Procs,
    accepted_ids,
    acks,
    agent_pids,
    all_acked,
    drop_message,
    drop_task,
    header_id,
    notes,
    pid_gone,
    received,
    received_ids,
    replayed_user_text,
    wait_for,
    wal,
)

AFTER_PROMPT_SENT = None  # no fault armed: the test SIGKILLs the supervisor mid-turn
POINTS = [
    "ingest.before_wal",
    "ingest.after_wal",
    "deliver.after_sent",
    "deliver.before_ack",
    pytest.param(AFTER_PROMPT_SENT, id="after-the-prompt-is-sent"),
]
EXPECTED = ["prompt-t1", "m1", "m2", "m3"]


def _marker(message_id: str) -> str:
    return f"[meta-harness message id={message_id} "


def _crash_first_run(procs: Procs, ws: Path, point: str | None) -> None:
    """Drop t1 (and m1, m2 where the first run lives long enough) and see it SIGKILLed."""
    if point is not None:
        drop_task(ws, "t1", "hello")
        first = procs.start_supervisor(crash_at=point, wait=False)
        assert first.wait() == -signal.SIGKILL, first.output()
        return
    drop_task(ws, "t1", "/sleep 5000")  # the turn is still running when the kill comes
    first = procs.start_supervisor()
    wait_for(
        lambda: "prompt-t1" in received_ids(ws, "t1"),
        watch_dir=ws,
        what="the agent to receive the first prompt",
    )
    drop_message(ws, "t1", "m1", "first")
    drop_message(ws, "t1", "m2", "second")
    wait_for(
        lambda: {"m1", "m2"} <= set(accepted_ids(ws, "t1")),
        watch_dir=ws,
        what="m1 and m2 queued in the WAL",
    )
    first.kill()
    assert first.wait() == -signal.SIGKILL


@pytest.mark.parametrize("point", POINTS)
def test_a_supervisor_killed_at_any_step_delivers_every_message_and_acks_each_once(
    procs: Procs, workspace: Path, point: str | None
) -> None:
    ws = workspace
    _crash_first_run(procs, ws, point)

    before = wal(ws, "t1")
    in_flight = {r["id"] for r in before if r["op"] == "sent"} - {
        r["id"] for r in before if r["op"] == "ack"
    }
    got_before_restart = received_ids(ws, "t1")
    first_agents = agent_pids(ws, "t1")
    # The reaper ends the agents of a SIGKILLed supervisor before anyone restarts it.
    assert all(pid_gone(pid) for pid in first_agents), first_agents
    for message_id in EXPECTED[1:]:
        if message_id not in accepted_ids(ws, "t1"):
            drop_message(ws, "t1", message_id, f"text of {message_id}")

    procs.start_supervisor()
    wait_for(lambda: all_acked(ws, "t1", EXPECTED), watch_dir=ws, what="every message acked")

    # Where the fault struck (so each case proves what it claims).
    if point == "ingest.before_wal":
        assert before == [] and first_agents == []
    elif point == "ingest.after_wal":
        assert [r["id"] for r in before] == ["prompt-t1"] and first_agents == []
    elif point == "deliver.after_sent":
        assert in_flight == {"prompt-t1"} and got_before_restart == []
    else:
        assert in_flight == {"prompt-t1"} and got_before_restart == ["prompt-t1"]

    # The WAL: each message accepted once and acked exactly once.
    assert accepted_ids(ws, "t1") == EXPECTED
    done = acks(ws, "t1")
    assert {i: len(done[i]) for i in EXPECTED} == dict.fromkeys(EXPECTED, 1)

    # The agent: everything arrived, in order; only the in-flight one may come twice.
    records = received(ws, "t1")
    for record in records:
        assert header_id(record["text"]) == record["messageId"]  # same id, twice over
    counts = collections.Counter(r["messageId"] for r in records)
    assert list(counts) == EXPECTED
    assert {i for i, n in counts.items() if n > 1} <= in_flight
    assert max(counts.values()) <= 2

    # `recovered` exactly where the load replay showed the in-flight message.
    replayed = replayed_user_text(ws, "t1")
    recovered = {i for i in EXPECTED if done[i][0]["stop"] == "recovered"}
    assert recovered <= in_flight
    for message_id in in_flight:
        shown = _marker(message_id) in replayed
        assert (message_id in recovered) == shown
        arrived_before = message_id in got_before_restart
        assert counts[message_id] == (1 if shown or not arrived_before else 2)
    if point == "deliver.before_ack":
        assert recovered == {"prompt-t1"}
        assert [n["message"] for n in notes(ws, "t1", "in-doubt-recovered")] == ["prompt-t1"]
    if point == "deliver.after_sent":
        assert recovered == set()
        assert [n["message"] for n in notes(ws, "t1", "in-doubt-resend")] == ["prompt-t1"]
