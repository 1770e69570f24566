"""A byte-exact ACP transport over an agent's stdio that records every frame.

Implements the ACP SDK's message-level `Transport` (send/receive/close of dicts) so the
SDK's `Connection` does JSON-RPC while we own the pipes: each line is logged to the
transcript exactly as sent or received (MCP header/env values in session setup frames
redacted), lines of any length are read in chunks (no 64 KiB limit), and a non-JSON
line from the agent is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from meta_harness.agent.transcript import TranscriptWriter
from meta_harness.domain.transcript import Direction, redacted_frame

logger = logging.getLogger(__name__)


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """The next line (with its newline), however long; b"" at EOF."""
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(await reader.readuntil(b"\n"))
            break
        except asyncio.IncompleteReadError as e:
            chunks.append(e.partial)
            break
        except asyncio.LimitOverrunError as e:
            chunks.append(await reader.readexactly(e.consumed))
    return b"".join(chunks)


class StdioTransport:
    """The SDK-facing transport of one agent connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transcript: TranscriptWriter,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._transcript = transcript
        self._send_lock = asyncio.Lock()
        self.replay: list[dict[str, Any]] | None = None  # set while a session/load replays

    async def send(self, message: dict[str, Any]) -> None:
        data = orjson.dumps(message)
        async with self._send_lock:
            self._writer.write(data + b"\n")
            await self._writer.drain()
        redacted = redacted_frame(message)  # MCP headers/env never reach the transcript
        self._transcript.frame(Direction.OUT, data if redacted is None else orjson.dumps(redacted))

    async def receive(self) -> dict[str, Any] | None:
        while True:
            line = await read_line(self._reader)
            if not line:
                return None
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            self._transcript.frame(Direction.IN, raw)
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                logger.warning("agent printed a non-JSON line on stdout (kept in the transcript)")
                continue
            if isinstance(message, dict):
                if self.replay is not None and message.get("method") == "session/update":
                    self.replay.append(message)
                return message
            logger.warning("agent sent a JSON value that is not an object; skipped")

    async def close(self) -> None:
        if not self._writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.close()
