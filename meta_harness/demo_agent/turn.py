"""Cancellation of one running prompt: the cancel flag, the waits it wakes, turn-ending errors.

`Turn.wait` is how every blocking step of a turn (a client response, a helper thread) becomes
cancellable; `run_cancellable` runs a blocking call on a helper thread under that rule.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .protocol import StopReason


class TurnCancelled(Exception):
    """The running turn was cancelled (session/cancel, session/close or a cancelled permission)."""


class TurnEnded(Exception):
    """A command ends the turn early with a stop reason."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Turn:
    """One running prompt: its cancel flag and the waits it must wake when cancelled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cancelled = threading.Event()
        self._waiters: set[DoneEvent] = set()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            for waiter in self._waiters:
                waiter.set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise TurnCancelled

    def wait(self, event: DoneEvent, timeout: float | None = None) -> bool:
        """Wait for `event`; raise TurnCancelled if the turn is cancelled first.

        Returns False on timeout, True otherwise (also when the event was set without being
        done, which means the connection closed).
        """
        with self._lock:
            if self.cancelled.is_set():
                raise TurnCancelled
            self._waiters.add(event)
        try:
            event.wait(timeout)
        finally:
            with self._lock:
                self._waiters.discard(event)
        if event.done:
            return True
        if self.cancelled.is_set():
            raise TurnCancelled
        return event.is_set()


class DoneEvent(threading.Event):
    """An event that says whether it fired because the awaited thing happened (`done`)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def finish(self) -> None:
        self.done = True
        self.set()


def run_cancellable(turn: Turn, fn: Callable[[], Any]) -> Any:
    """Run a blocking `fn` in a helper thread; a cancel of `turn` abandons it."""
    event = DoneEvent()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the waiting thread
            box["error"] = exc
        finally:
            event.finish()

    threading.Thread(target=target, name="cancellable", daemon=True).start()
    turn.wait(event)
    if "error" in box:
        raise box["error"]
    return box.get("result")
