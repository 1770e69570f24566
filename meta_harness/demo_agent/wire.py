"""JSON-RPC framing over stdio: lines read from stdin, frames written to stdout under one lock.

Also matches the agent's own requests to the client's responses (`Wire.request` and
`Wire.deliver`) and wakes their waiters when stdin closes. It does not interpret incoming
messages: `agent.Agent` routes them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from .protocol import INTERNAL_ERROR, Json, RpcError, dumps
from .turn import DoneEvent, Turn

logger = logging.getLogger(__name__)

READ_SIZE = 1 << 20  # stdin read size; lines of any length are reassembled from these reads


class ConnectionGone(Exception):
    """stdin closed while the agent waited for a client response."""


class Pending:
    """An outgoing request waiting for the client's response."""

    def __init__(self) -> None:
        self.event = DoneEvent()
        self.response: Json | None = None


class Wire:
    """Owns stdout (one line per message, under a lock) and the agent's outgoing requests."""

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd
        self._out_lock = threading.Lock()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, Pending] = {}
        self.closed = False

    def send(self, message: Json) -> None:
        data = memoryview(dumps(message) + b"\n")
        with self._out_lock:
            try:
                while data:
                    data = data[os.write(self._out_fd, data) :]
            except BrokenPipeError:
                logger.info("stdout closed by the client; exiting")
                os._exit(0)

    def notify(self, method: str, params: Json) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def respond(self, request_id: Any, result: Json) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def respond_error(self, request_id: Any, error: RpcError) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "error": error.to_json()})

    def request(
        self, method: str, params: Json, turn: Turn | None, timeout: float | None = None
    ) -> Any:
        """Send a request to the client and wait for its result.

        Raises RpcError for an error response, TurnCancelled if `turn` is cancelled first,
        TimeoutError after `timeout`, ConnectionGone if stdin closed.
        """
        if turn is not None:
            turn.check()  # never ask the client something nobody will wait for
        pending = Pending()
        with self._lock:
            if self.closed:
                raise ConnectionGone
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = pending
        try:
            self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            fired = turn.wait(pending.event, timeout) if turn else pending.event.wait(timeout)
            if not fired:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        response = pending.response
        if response is None:
            raise ConnectionGone
        if "error" in response:
            error = response["error"] if isinstance(response["error"], dict) else {}
            code = error.get("code")
            raise RpcError(
                code if isinstance(code, int) else INTERNAL_ERROR,
                str(error.get("message", "error")),
                error.get("data"),
            )
        return response.get("result")

    def deliver(self, message: Json) -> None:
        """Hand a client response to the request waiting for it."""
        request_id = message.get("id")
        with self._lock:
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
        if pending is None:
            logger.warning("response to unknown or abandoned request id %r", message.get("id"))
            return
        pending.response = message
        pending.event.finish()

    def close(self) -> None:
        """stdin is gone: wake every waiter with no response."""
        with self._lock:
            self.closed = True
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.event.set()


def read_lines(fd: int) -> Iterator[bytes]:
    """Yield b"\\n"-separated lines of any length from a binary fd until EOF."""
    buffer = bytearray()
    while True:
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            break
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            buffer += chunk[start:newline]
            yield bytes(buffer)
            buffer.clear()
            start = newline + 1
        buffer += chunk[start:]
    if buffer:
        yield bytes(buffer)
