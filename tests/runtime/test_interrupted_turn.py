"""A turn cut by a crash is continued: `on_interrupted_turn = "continue"`, real processes.

The supervisor is SIGKILLed while the demo agent works on a message it has recorded in
its session (the load replay shows it, so it is acked `recovered`, never sent twice).
With "continue" the task then gets one `<id>.continue` follow-up, delivered before
anything else queued; a crash while that follow-up is being added does not add it
twice; a turn that had ended and only lost its ack (the transcript shows the answer)
gets none. The demo profile's own default, "leave", is what the kill tests in
test_crash_recovery.py run under.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.procs import (
    Procs,
    accepted_ids,
    acks,
    all_acked,
    drop_message,
    drop_task,
    events,
    notes,
    received_ids,
    transcript,
    wait_for,
    wal,
)

CONTINUE = '[profiles.demo]\non_interrupted_turn = "continue"\n'


def _shown_to_supervisor(ws: Path, task_id: str, message_id: str) -> bool:
    """The agent echoed the message as a user_message_chunk: it is in its session log."""
    header = f"[meta-harness message id={message_id} "
    for record in transcript(ws, task_id):
        frame = record.get("frame") or {}
        update = (frame.get("params") or {}).get("update") or {}
        text = (update.get("content") or {}).get("text", "")
        if update.get("sessionUpdate") == "user_message_chunk" and text.startswith(header):
            return True
    return False


def _kill_mid_turn(procs: Procs, ws: Path) -> None:
    """t1's first turn sleeps; the supervisor is SIGKILLed once the agent has recorded it."""
    drop_task(ws, "t1", "/sleep 60000\nwoke up")
    first = procs.start_supervisor()
    wait_for(
        lambda: _shown_to_supervisor(ws, "t1", "prompt-t1"),
        watch_dir=ws,
        what="the agent to record the first prompt",
    )
    first.kill()
    assert first.wait() == -signal.SIGKILL


def test_a_turn_cut_by_a_supervisor_kill_is_continued_before_the_queued_messages(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    (ws / "meta-harness.toml").write_text(CONTINUE)
    _kill_mid_turn(procs, ws)
    drop_message(ws, "t1", "m1", "queued while no supervisor ran")

    procs.start_supervisor()
    wait_for(
        lambda: all_acked(ws, "t1", ["prompt-t1", "prompt-t1.continue", "m1"]),
        watch_dir=ws,
        what="the cut turn, its follow-up and m1 acked",
    )

    done = acks(ws, "t1")
    assert [a["stop"] for a in done["prompt-t1"]] == ["recovered"]
    assert [a["stop"] for a in done["prompt-t1.continue"]] == ["end_turn"]
    # never sent twice; the follow-up goes first although m1 was queued before it
    assert received_ids(ws, "t1") == ["prompt-t1", "prompt-t1.continue", "m1"]
    follow_up = next(r for r in wal(ws, "t1") if r["id"] == "prompt-t1.continue")
    assert follow_up["from"] == "supervisor"
    assert follow_up["meta"] == {"continues": "prompt-t1"}
    assert [n["follow_up"] for n in notes(ws, "t1", "turn-continued")] == ["prompt-t1.continue"]
    warnings = [e for e in events(ws) if e["type"] == "warning" and e.get("task") == "t1"]
    assert any("prompt-t1" in w["message"] and "continue" in w["message"] for w in warnings)


def test_a_crash_while_the_follow_up_is_added_does_not_add_it_twice(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    (ws / "meta-harness.toml").write_text(CONTINUE)
    _kill_mid_turn(procs, ws)
    # The second run dies right after the follow-up reached the WAL (before the ack).
    second = procs.start_supervisor(crash_at="ingest.after_wal", wait=False)
    assert second.wait() == -signal.SIGKILL, second.output()
    assert accepted_ids(ws, "t1") == ["prompt-t1", "prompt-t1.continue"]
    assert "prompt-t1" not in acks(ws, "t1")

    procs.start_supervisor()
    wait_for(
        lambda: all_acked(ws, "t1", ["prompt-t1", "prompt-t1.continue"]),
        watch_dir=ws,
        what="the cut turn and its follow-up acked",
    )
    assert accepted_ids(ws, "t1") == ["prompt-t1", "prompt-t1.continue"]
    assert {k: len(v) for k, v in acks(ws, "t1").items()} == {
        "prompt-t1": 1,
        "prompt-t1.continue": 1,
    }
    assert received_ids(ws, "t1") == ["prompt-t1", "prompt-t1.continue"]


def test_a_turn_that_ended_and_only_lost_its_ack_is_not_continued(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    (ws / "meta-harness.toml").write_text(CONTINUE)
    drop_task(ws, "t1", "hello")
    first = procs.start_supervisor(crash_at="deliver.before_ack", wait=False)
    assert first.wait() == -signal.SIGKILL, first.output()

    procs.start_supervisor()
    wait_for(
        lambda: all_acked(ws, "t1", ["prompt-t1"]),
        watch_dir=ws,
        what="the in-doubt message settled",
    )
    assert [a["stop"] for a in acks(ws, "t1")["prompt-t1"]] == ["recovered"]
    assert accepted_ids(ws, "t1") == ["prompt-t1"]  # the transcript showed its answer
    assert notes(ws, "t1", "turn-continued") == []


def test_with_leave_a_cut_turn_is_only_acked_recovered(procs: Procs, workspace: Path) -> None:
    ws = workspace  # the demo profile's default
    _kill_mid_turn(procs, ws)
    drop_message(ws, "t1", "m1", "after")

    procs.start_supervisor()
    wait_for(
        lambda: all_acked(ws, "t1", ["prompt-t1", "m1"]),
        watch_dir=ws,
        what="the cut turn and m1 acked",
    )
    assert [a["stop"] for a in acks(ws, "t1")["prompt-t1"]] == ["recovered"]
    assert accepted_ids(ws, "t1") == ["prompt-t1", "m1"]
    assert received_ids(ws, "t1") == ["prompt-t1", "m1"]
