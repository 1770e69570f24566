"""Agent processes: spawn in their own process group, end them with a bounded ladder.

An agent gets stdin/stdout pipes, its stderr goes to a file (never a pipe nobody reads),
its environment is explicit, and it leads its own process group so that grandchildren
(npm wrappers' native binaries, tool subprocesses) end with it. Shutdown: close stdin →
`AGENT_STOP_GRACE` → SIGTERM the group → `AGENT_TERM_GRACE` → SIGKILL the group → reap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meta_harness.base.errors import AgentStartError

logger = logging.getLogger(__name__)

AGENT_STOP_GRACE = 2.0  # agents flush their session files on stdin EOF
AGENT_TERM_GRACE = 2.0  # after SIGTERM; then the group is SIGKILLed
AGENT_REAP_TIMEOUT = 5.0  # after SIGKILL the kernel reaps promptly; longer means a zombie leak
STREAM_LIMIT = 1 << 20  # asyncio reader buffer; longer lines are read in chunks anyway


@dataclass
class AgentProcess:
    """A running agent process and the group it leads."""

    process: asyncio.subprocess.Process
    argv: list[str]
    started_at: float = field(default_factory=time.monotonic)

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

    async def aclose(self) -> int | None:
        """The shutdown ladder. Always ends the whole group; returns the exit code."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                stdin.close()
        code = await self._wait_for(AGENT_STOP_GRACE)
        if code is None:
            logger.warning("agent %s (pid %d) ignored stdin EOF; sending SIGTERM", self.argv[0], self.pid)
            self.kill_group(signal.SIGTERM)
            code = await self._wait_for(AGENT_TERM_GRACE)
        if code is None:
            logger.warning("agent %s (pid %d) ignored SIGTERM; sending SIGKILL", self.argv[0], self.pid)
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
