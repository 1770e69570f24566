"""The shutdown ladder and the EOF habits it learns (agent/process.py), with real processes.

A child that exits on stdin EOF ends on the first rung; one that ignores EOF needs the
SIGTERM rung, and `StopHabits` then shortens its EOF grace for the next stop of the same
agent, until it is seen exiting on EOF again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meta_harness.agent.process import (
    AGENT_STOP_GRACE,
    EOF_IGNORED_GRACE,
    StopHabits,
    spawn_agent,
)

pytestmark = pytest.mark.anyio

EXITS_ON_EOF = "import sys; sys.stdin.read()"
IGNORES_EOF = "import sys, time; sys.stdin.read(); time.sleep(60)"


def test_an_agent_that_outlived_a_full_eof_grace_is_signalled_sooner_next_time() -> None:
    habits = StopHabits()
    assert habits.eof_grace("codex") == AGENT_STOP_GRACE
    habits.observed("codex", AGENT_STOP_GRACE, exited_on_eof=False)
    assert habits.eof_grace("codex") == EOF_IGNORED_GRACE
    assert habits.eof_grace("claude") == AGENT_STOP_GRACE


def test_an_agent_seen_exiting_on_eof_gets_the_full_grace_again() -> None:
    habits = StopHabits()
    habits.observed("claude", AGENT_STOP_GRACE, exited_on_eof=False)
    habits.observed("claude", EOF_IGNORED_GRACE, exited_on_eof=True)
    assert habits.eof_grace("claude") == AGENT_STOP_GRACE


def test_a_short_grace_or_a_dead_process_teaches_nothing() -> None:
    habits = StopHabits()
    habits.observed("demo", EOF_IGNORED_GRACE, exited_on_eof=False)  # not given a fair chance
    habits.observed("demo", AGENT_STOP_GRACE, exited_on_eof=None)  # was already gone
    assert habits.eof_grace("demo") == AGENT_STOP_GRACE


async def test_the_ladder_reports_whether_eof_alone_ended_the_process(tmp_path: Path) -> None:
    polite = await spawn_agent(
        [sys.executable, "-c", EXITS_ON_EOF], env={}, cwd=tmp_path, stderr_path=tmp_path / "a"
    )
    assert await polite.aclose() == 0
    assert polite.exited_on_eof is True

    stubborn = await spawn_agent(
        [sys.executable, "-c", IGNORES_EOF], env={}, cwd=tmp_path, stderr_path=tmp_path / "b"
    )
    assert await stubborn.aclose(eof_grace=EOF_IGNORED_GRACE) == -15  # SIGTERM ended it
    assert stubborn.exited_on_eof is False

    await polite.aclose()  # already gone: nothing learned from it
    assert polite.exited_on_eof is None


_PIDFD_PROBE = """
import asyncio, sys, threading
from meta_harness.agent.process import use_pidfd_child_watcher
assert use_pidfd_child_watcher()
async def main() -> int:
    procs = [
        await asyncio.create_subprocess_exec("cat", stdin=asyncio.subprocess.PIPE)
        for _ in range(5)
    ]
    threads = threading.active_count()  # while all five run
    for p in procs:
        p.stdin.close()
    codes = [await p.wait() for p in procs]
    assert codes == [0] * 5, codes
    return threads
print(asyncio.run(main()))
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux 5.3+")
def test_agents_are_reaped_through_pidfds_without_a_waiter_thread_each() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PIDFD_PROBE], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"  # only the main thread: no per-child waiter threads
