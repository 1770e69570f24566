"""Terminals that agents run through the client (`terminal/*`).

Each terminal is a process in its own group, its output (stdout+stderr) kept up to the
agent's byte limit by dropping the oldest bytes at a character boundary. `kill` keeps
the id valid; `release` kills if needed and forgets it. Every terminal of a session is
released when the session closes, so no command outlives its agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from meta_harness.base.errors import NotFound
from meta_harness.base.layout import new_id

DEFAULT_OUTPUT_LIMIT = 1 << 20  # when the agent gives no outputByteLimit
TERMINAL_KILL_TIMEOUT = 5.0  # reaping after SIGKILL of the group


@dataclass
class Terminal:
    id: str
    process: asyncio.subprocess.Process
    limit: int
    buffer: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    reader: asyncio.Task[None] | None = None

    def append(self, data: bytes) -> None:
        self.buffer.extend(data)
        excess = len(self.buffer) - self.limit
        if excess > 0:
            del self.buffer[:excess]
            # do not start in the middle of a UTF-8 sequence
            while self.buffer and (self.buffer[0] & 0xC0) == 0x80:
                del self.buffer[0]
            self.truncated = True

    def text(self) -> str:
        return self.buffer.decode("utf-8", errors="replace")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Terminals:
    """The terminals of one agent connection."""

    def __init__(self) -> None:
        self._terminals: dict[str, Terminal] = {}

    async def create(
        self,
        command: str,
        args: list[str],
        env: Mapping[str, str],
        cwd: Path,
        output_limit: int | None,
    ) -> str:
        process = await asyncio.create_subprocess_exec(
            command,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
        )
        term = Terminal(new_id("term"), process, output_limit or DEFAULT_OUTPUT_LIMIT)
        term.reader = asyncio.get_running_loop().create_task(self._pump(term))
        self._terminals[term.id] = term
        return term.id

    async def _pump(self, term: Terminal) -> None:
        stdout = term.process.stdout
        assert stdout is not None
        while chunk := await stdout.read(65536):
            term.append(chunk)

    def get(self, terminal_id: str) -> Terminal:
        try:
            return self._terminals[terminal_id]
        except KeyError:
            raise NotFound(f"no terminal {terminal_id!r}") from None

    async def wait(self, terminal_id: str) -> Terminal:
        term = self.get(terminal_id)
        await term.process.wait()
        if term.reader is not None:
            await term.reader
        return term

    async def kill(self, terminal_id: str) -> None:
        term = self.get(terminal_id)
        term.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(term.process.wait(), TERMINAL_KILL_TIMEOUT)

    async def release(self, terminal_id: str) -> None:
        term = self._terminals.pop(terminal_id, None)
        if term is None:
            return
        if term.process.returncode is None:
            term.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(term.process.wait(), TERMINAL_KILL_TIMEOUT)
        if term.reader is not None:
            term.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await term.reader

    async def aclose(self) -> None:
        for terminal_id in list(self._terminals):
            await self.release(terminal_id)
