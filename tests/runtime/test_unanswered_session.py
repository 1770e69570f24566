"""A session that never answered a prompt is replaced, not failed, when its load fails.

Real agents (claude-agent-acp, codex-acp) write a session to disk at its first prompt, so
a supervisor SIGKILLed between `session/new` and that prompt leaves a session id that no
agent can load (-32002). The demo agent keeps sessions from `session/new` on; removing
its state files reproduces the real agents' disk. A session that did answer keeps the
profile's `on_load_failure` (here `fail`): only the unanswered one is replaced.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.procs import (
    Procs,
    acks,
    drop_message,
    drop_task,
    notes,
    received_ids,
    task_phase,
    task_record,
    wait_for,
)


def _forget_sessions(ws: Path, task_id: str) -> None:
    """The agent's disk as a real agent leaves it: no trace of the session."""
    for path in (ws / "tasks" / task_id / "agent" / "sessions").glob("*"):
        path.unlink()


def test_a_session_killed_before_its_first_prompt_is_replaced_and_the_message_resent(
    procs: Procs, workspace: Path
) -> None:
    drop_task(workspace, "t1", "hello")
    crashed = procs.start_supervisor(crash_at="deliver.after_sent", wait=False)
    assert crashed.wait() == -signal.SIGKILL, crashed.output()
    record = task_record(workspace, "t1")
    assert record is not None and record["session_id"] and not record["session_answered"]
    lost = record["session_id"]
    _forget_sessions(workspace, "t1")

    procs.start_supervisor()
    wait_for(lambda: acks(workspace, "t1").get("prompt-t1"), watch_dir=workspace, what="ack")
    assert [a["stop"] for a in acks(workspace, "t1")["prompt-t1"]] == ["end_turn"]
    assert received_ids(workspace, "t1") == ["prompt-t1"]
    [failed] = notes(workspace, "t1", "load-failed")
    assert failed["policy"] == "new-session"
    record = task_record(workspace, "t1")
    assert record is not None and record["session_id"] != lost and record["session_answered"]
    assert task_phase(workspace, "t1") != "failed"


def test_a_session_that_answered_keeps_its_load_failure_policy(
    procs: Procs, workspace: Path
) -> None:
    drop_task(workspace, "t1", "hello")
    first = procs.start_supervisor()
    wait_for(lambda: acks(workspace, "t1").get("prompt-t1"), watch_dir=workspace, what="ack")
    first.kill()
    assert first.wait() == -signal.SIGKILL
    _forget_sessions(workspace, "t1")

    procs.start_supervisor()
    drop_message(workspace, "t1", "m1", "again")
    wait_for(lambda: task_phase(workspace, "t1") == "failed", watch_dir=workspace, what="failed")
    [failed] = notes(workspace, "t1", "load-failed")
    assert failed["policy"] == "fail"
