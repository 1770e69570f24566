"""The reaper sidecar: agents and their grandchildren end when the supervisor is SIGKILLed."""

from __future__ import annotations

from pathlib import Path

import psutil

from tests.support.procs import (
    Procs,
    agent_pids,
    all_acked,
    drop_task,
    marked_processes,
    wait_for,
    wait_gone,
)


def test_grandchildren_die_with_a_sigkilled_supervisor(procs: Procs, workspace: Path) -> None:
    supervisor = procs.start_supervisor()
    drop_task(workspace, "t1", "/spawn-grandchild")
    wait_for(
        lambda: all_acked(workspace, "t1", ["prompt-t1"]),
        watch_dir=workspace,
        what="the grandchild spawned",
    )
    [agent_pid] = agent_pids(workspace, "t1")
    agent = psutil.Process(agent_pid)
    [grandchild] = [p for p in agent.children() if p.cmdline()[:1] == ["sleep"]]
    assert {p.pid for p in marked_processes(workspace)} == {agent_pid, grandchild.pid}

    supervisor.kill()
    supervisor.wait()

    assert wait_gone([agent, grandchild]) == []
