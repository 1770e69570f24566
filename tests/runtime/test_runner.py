"""A task's runner against the real demo agent: restarts, oneshot, cancel, children, budget."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support.procs import (
    Procs,
    acks,
    agent_pids,
    agent_text,
    all_acked,
    drop_control,
    drop_message,
    drop_task,
    notes,
    pid_gone,
    received_ids,
    task_phase,
    task_record,
    wait_for,
    wal,
)

BROKEN_AGENT_TOML = """
[agents.broken]
command = ["false"]

[profiles.broken]
extends = "default"
agent = "broken"

[profiles.broken.limits]
restart_burst = 2
restart_window = 60.0
"""


def _wait_acked(ws: Path, task_id: str, *ids: str) -> None:
    wait_for(lambda: all_acked(ws, task_id, ids), watch_dir=ws, what=f"{task_id}: acks of {ids}")


def _wait_phase(ws: Path, task_id: str, phase: str) -> None:
    wait_for(
        lambda: task_phase(ws, task_id) == phase, watch_dir=ws, what=f"{task_id} to be {phase}"
    )


@pytest.mark.parametrize("how", ["crash-command", "sigkill-from-outside"])
def test_an_agent_killed_mid_turn_is_restarted_with_session_load_and_the_task_goes_on(
    procs: Procs, workspace: Path, how: str
) -> None:
    procs.start_supervisor()
    drop_task(workspace, "t1", "hello")
    _wait_acked(workspace, "t1", "prompt-t1")
    [first_agent] = agent_pids(workspace, "t1")

    if how == "crash-command":
        drop_message(workspace, "t1", "m1", "/crash")
    else:
        drop_message(workspace, "t1", "m1", "/sleep 5000")
        wait_for(
            lambda: "m1" in received_ids(workspace, "t1"),
            watch_dir=workspace,
            what="the agent to receive m1",
        )
        os.killpg(first_agent, signal.SIGKILL)
    drop_message(workspace, "t1", "m2", "after the crash")
    _wait_acked(workspace, "t1", "m1", "m2")

    assert pid_gone(first_agent)
    assert len(agent_pids(workspace, "t1")) == 2
    assert [
        n["note"] for n in notes(workspace, "t1") if n["note"] in ("crash", "session-loaded")
    ] == [
        "crash",
        "session-loaded",
    ]
    done = acks(workspace, "t1")
    received = received_ids(workspace, "t1")
    if received == ["prompt-t1", "m1", "m2"]:
        # the agent had recorded m1 in its session before dying: the replay showed it
        assert [a["stop"] for a in done["m1"]] == ["recovered"]
    else:
        # killed between its receipt record and its session record: resent, same id
        assert received == ["prompt-t1", "m1", "m1", "m2"]
        assert [a["stop"] for a in done["m1"]] == ["end_turn"]
    assert [a["stop"] for a in done["m2"]] == ["end_turn"]
    assert "echo: after the crash" in agent_text(workspace, "t1")
    _wait_phase(workspace, "t1", "waiting")  # the task goes on, waiting for more


def test_a_oneshot_task_ends_done_with_the_agents_text_as_result(
    procs: Procs, workspace: Path
) -> None:
    procs.start_supervisor()

    drop_task(workspace, "o1", "/say the answer is 42", mode="oneshot")
    _wait_phase(workspace, "o1", "done")

    record = task_record(workspace, "o1")
    assert record is not None
    assert record["result"] == "the answer is 42\n"
    assert record["finished_by"] == "oneshot"
    wait_for(
        lambda: pid_gone(agent_pids(workspace, "o1")[0], timeout=0),
        watch_dir=workspace,
        what="the oneshot agent to end",
    )


def test_a_cancel_drop_cancels_the_running_turn_and_the_task(procs: Procs, workspace: Path) -> None:
    procs.start_supervisor()
    drop_task(workspace, "c1", "/hang")
    wait_for(
        lambda: "prompt-c1" in received_ids(workspace, "c1"),
        watch_dir=workspace,
        what="the agent to start the hanging turn",
    )

    drop_control(workspace, "c1", "x1", "cancel")
    _wait_phase(workspace, "c1", "cancelled")
    _wait_acked(workspace, "c1", "prompt-c1", "x1")

    done = acks(workspace, "c1")
    assert [a["stop"] for a in done["prompt-c1"]] == ["cancelled"]
    assert [a["stop"] for a in done["x1"]] == ["applied"]
    record = task_record(workspace, "c1")
    assert record is not None and record["finished_by"] == "file"


def test_a_finished_child_delivers_its_result_into_the_parents_inbox(
    procs: Procs, workspace: Path
) -> None:
    procs.start_supervisor()
    drop_task(workspace, "p1", "hello")
    _wait_acked(workspace, "p1", "prompt-p1")

    drop_task(workspace, "k1", "/say child result", parent="p1", mode="oneshot")
    _wait_phase(workspace, "k1", "done")
    _wait_acked(workspace, "p1", "result:k1")

    [message] = [r for r in wal(workspace, "p1") if r["op"] == "msg" and r["id"] == "result:k1"]
    assert message["from"] == "task:k1"
    assert "child result" in message["content"][0]["text"]
    assert received_ids(workspace, "p1") == ["prompt-p1", "result:k1"]
    record = task_record(workspace, "k1")
    assert record is not None and record["parent"] == "p1" and record["depth"] == 1


def test_a_task_whose_agent_always_fails_ends_failed_when_the_restart_budget_is_spent(
    procs: Procs, workspace: Path
) -> None:
    (workspace / "meta-harness.toml").write_text(BROKEN_AGENT_TOML)
    procs.start_supervisor()

    drop_task(workspace, "b1", "hello", profile="broken")
    _wait_phase(workspace, "b1", "failed")

    record = task_record(workspace, "b1")
    assert record is not None
    assert "restart budget exhausted" in record["error"]
    assert "3 failures in 60 s" in record["error"]
    assert record["finished_by"] == "supervisor"
    assert len(agent_pids(workspace, "b1")) == 3  # burst 2 → the third failure ends it
