"""Agent processes: spawn in their own process group, end them with a bounded ladder.

An agent gets stdin/stdout pipes, its stderr goes to a file (never a pipe nobody reads),
its environment is explicit, and it leads its own process group so that grandchildren
(npm wrappers' native binaries, tool subprocesses) end with it. Shutdown: close stdin →
EOF grace → SIGTERM the group → `AGENT_TERM_GRACE` → SIGKILL the group → reap. The EOF
grace is `AGENT_STOP_GRACE`, shortened for agents `StopHabits` saw ignore EOF before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meta_harness.base.errors import AgentStartError

logger = logging.getLogger(__name__)

AGENT_STOP_GRACE = 2.0  # agents flush their session files on stdin EOF
# An agent seen ignoring EOF (claude-agent-acp, codex-acp: SIGTERM is their stop signal)
# gets this long before SIGTERM instead of the full grace.
EOF_IGNORED_GRACE = 0.1
AGENT_TERM_GRACE = 2.0  # after SIGTERM; then the group is SIGKILLed
AGENT_REAP_TIMEOUT = 5.0  # after SIGKILL the kernel reaps promptly; longer means a zombie leak
STREAM_LIMIT = 1 << 20  # asyncio reader buffer; longer lines are read in chunks anyway


class StopHabits:
    """Which agents (by name) ignore stdin EOF, learned from their own shutdowns.

    One per supervisor, in memory. An agent is "known to ignore EOF" once it outlived a
    full `AGENT_STOP_GRACE` after EOF; it is forgotten as soon as it exits on EOF.
    """

    def __init__(self) -> None:
        self._ignore_eof: set[str] = set()

    def eof_grace(self, agent: str) -> float:
        return EOF_IGNORED_GRACE if agent in self._ignore_eof else AGENT_STOP_GRACE

    def observed(self, agent: str, grace: float, exited_on_eof: bool | None) -> None:
        """Record one shutdown: the grace given and whether EOF alone ended the agent."""
        if exited_on_eof:
            self._ignore_eof.discard(agent)
        elif exited_on_eof is False and grace >= AGENT_STOP_GRACE:
            if agent not in self._ignore_eof:
                logger.info("agent %s ignores stdin EOF: later stops send SIGTERM sooner", agent)
            self._ignore_eof.add(agent)


@dataclass
class AgentProcess:
    """A running agent process and the group it leads."""

    process: asyncio.subprocess.Process
    argv: list[str]
    started_at: float = field(default_factory=time.monotonic)
    # Set by `aclose`: True if EOF alone ended it, False if it needed a signal, None if
    # it was already gone.
    exited_on_eof: bool | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session=True: the agent leads its group

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.process.stdout is not None
        return self.process.stdout

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self) -> int:
        return await self.process.wait()

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    async def aclose(self, eof_grace: float = AGENT_STOP_GRACE) -> int | None:
        """The shutdown ladder. Always ends the whole group; returns the exit code."""
        alive = self.process.returncode is None
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                stdin.close()
        code = await self._wait_for(eof_grace)
        self.exited_on_eof = (code is not None) if alive else None
        if code is None:
            log = logger.warning if eof_grace >= AGENT_STOP_GRACE else logger.debug
            log("agent %s (pid %d) ignored stdin EOF; sending SIGTERM", self.argv[0], self.pid)
            self.kill_group(signal.SIGTERM)
            code = await self._wait_for(AGENT_TERM_GRACE)
        if code is None:
            logger.warning(
                "agent %s (pid %d) ignored SIGTERM; sending SIGKILL", self.argv[0], self.pid
            )
        # Grandchildren may outlive the leader: always sweep the group.
        self.kill_group(signal.SIGKILL)
        if code is None:
            code = await self._wait_for(AGENT_REAP_TIMEOUT)
        return code

    async def _wait_for(self, timeout: float) -> int | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
        except TimeoutError:
            return None


def use_pidfd_child_watcher() -> bool:
    """On Python 3.11, reap agents through pidfds on the event loop instead of one waiter
    thread per child (asyncio's default there); 3.12+ does this by itself. Call before
    the loop starts; returns whether the pidfd watcher is in use."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return sys.version_info >= (3, 12)
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # kernel < 5.3, or seccomp forbids it: keep the thread watcher
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.get_event_loop_policy().set_child_watcher(asyncio.PidfdChildWatcher())
    return True


async def spawn_agent(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stderr_path: Path,
) -> AgentProcess:
    """Start an agent in its own process group with an explicit env and stderr to a file."""
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    err_fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err_fd,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            limit=STREAM_LIMIT,
        )
    except (OSError, ValueError) as e:
        raise AgentStartError(f"cannot start agent {argv[0]!r}: {e}") from None
    finally:
        os.close(err_fd)
    return AgentProcess(process=process, argv=list(argv))
