"""The supervisor as a real process: one per workspace, clean stop, leftovers swept at boot."""

from __future__ import annotations

from pathlib import Path

from tests.support.procs import (
    MARKER,
    WAIT,
    Procs,
    acks,
    agent_pids,
    all_acked,
    drop_task,
    events,
    pid_gone,
    received_ids,
    wait_for,
    wal,
)

EX_TEMPFAIL = 75  # WorkspaceLocked.exit_code


def test_a_second_supervisor_on_the_same_workspace_refuses_and_names_the_holder(
    procs: Procs, workspace: Path
) -> None:
    first = procs.start_supervisor()

    second = procs.start_supervisor(wait=False)
    code = second.wait()

    assert code == EX_TEMPFAIL, second.output()
    assert f"pid {first.pid}" in second.output()
    assert first.popen.poll() is None  # the holder is untouched


def test_sigterm_stops_cleanly_ending_agents_and_swapping_sessions_out(
    procs: Procs, workspace: Path
) -> None:
    supervisor = procs.start_supervisor()
    drop_task(workspace, "t1", "hello")
    drop_task(workspace, "t2", "hello too")
    wait_for(
        lambda: (
            all_acked(workspace, "t1", ["prompt-t1"]) and all_acked(workspace, "t2", ["prompt-t2"])
        ),
        watch_dir=workspace,
        what="both first prompts acked",
    )
    agents = agent_pids(workspace, "t1") + agent_pids(workspace, "t2")
    assert len(agents) == 2

    supervisor.terminate()

    assert supervisor.wait() == 0, supervisor.output()
    assert all(pid_gone(pid) for pid in agents)
    assert not (workspace / ".meta-harness" / "supervisor.json").exists()
    log = events(workspace)
    assert [e["status"] for e in log if e["type"] == "supervisor"][-2:] == ["stopping", "stopped"]
    for task_id in ("t1", "t2"):
        phases = [e["to"] for e in log if e["type"] == "session.phase" and e.get("task") == task_id]
        assert phases[-1] == "swapped", phases


def test_sigterm_during_a_turn_stops_at_once_and_the_next_boot_recovers_the_message(
    procs: Procs, workspace: Path
) -> None:
    supervisor = procs.start_supervisor()
    drop_task(workspace, "t1", "/hang")  # a turn that never ends by itself
    wait_for(
        lambda: "prompt-t1" in received_ids(workspace, "t1"),
        watch_dir=workspace,
        what="the agent to start the turn",
    )
    [agent] = agent_pids(workspace, "t1")

    supervisor.terminate()

    assert supervisor.wait() == 0, supervisor.output()
    assert pid_gone(agent)
    assert [r["op"] for r in wal(workspace, "t1")] == ["msg", "sent"]  # in doubt, not acked
    procs.start_supervisor()
    wait_for(
        lambda: all_acked(workspace, "t1", ["prompt-t1"]),
        watch_dir=workspace,
        what="the in-doubt message settled",
    )
    assert [a["stop"] for a in acks(workspace, "t1")["prompt-t1"]] == ["recovered"]
    assert received_ids(workspace, "t1") == ["prompt-t1"]


def test_leftover_processes_of_the_workspace_are_swept_at_boot(
    procs: Procs, workspace: Path
) -> None:
    leftover = procs.spawn(["sleep", "600"], env={MARKER: str(workspace)})
    stranger = procs.spawn(["sleep", "600"], env={MARKER: str(workspace) + "-other"})

    supervisor = procs.start_supervisor(wait=False)

    assert leftover.wait(WAIT) is not None  # reaped here, so the sweep sees it go at once
    supervisor.wait_started()
    assert stranger.poll() is None  # another workspace's processes are not ours to end
    swept = [e for e in events(workspace) if e["type"] == "warning" and "swept" in e["message"]]
    assert len(swept) == 1, swept
    stranger.kill()
    stranger.wait(WAIT)
