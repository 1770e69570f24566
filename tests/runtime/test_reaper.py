"""The reaper sidecar: a SIGKILLed supervisor's agents and grandchildren end with it.

Groups the supervisor reported ended are forgotten, so a recycled pid is never killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.procs import (
    WAIT,
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


def test_the_reaper_ends_registered_groups_at_eof_and_spares_unregistered_ones(
    procs: Procs,
) -> None:
    kept = procs.spawn(["sleep", "600"])
    ended = procs.spawn(["sleep", "600"])
    reaper = subprocess.Popen(
        [sys.executable, "-m", "meta_harness.runtime.reaper"], stdin=subprocess.PIPE
    )
    procs.popens.append(reaper)
    assert reaper.stdin is not None

    reaper.stdin.write(b"+%d\n+%d\n-%d\n" % (kept.pid, ended.pid, kept.pid))
    reaper.stdin.close()  # what a SIGKILLed supervisor's pipe looks like

    assert reaper.wait(WAIT) == 0
    assert ended.wait(WAIT) == -signal.SIGTERM
    assert kept.poll() is None
