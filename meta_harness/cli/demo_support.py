"""The machinery under `demo`: the console, the supervisor subprocess, the live event view.

`Console` serialises output of the scenario (main thread) and the event view (its own
thread). `DemoSupervisor` runs `python -m meta_harness up` in its own process group with
its output in `.meta-harness/supervisor.log`, knows when it has booted, and stops it
(SIGTERM), kills it (SIGKILL) or cleans up after a failure. `wait_until` is the one
bounded wait: it re-checks a condition whenever something in the workspace changes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import click

from meta_harness.base.errors import MetaHarnessError, TimedOut
from meta_harness.base.jsonl import read_from, read_reversed
from meta_harness.base.layout import Workspace
from meta_harness.cli.eventview import render_event
from meta_harness.cli.follow import Waker
from meta_harness.domain.events import EventType

T = TypeVar("T")

STOP_TIMEOUT = 20.0  # SIGTERM -> every session swapped out and the supervisor gone
KILL_TIMEOUT = 5.0  # SIGKILL -> the kernel reaps it
LOG_TAIL_LINES = 15  # supervisor log lines shown when it died unexpectedly


class Console:
    """Whole lines from any thread; streamed text (with a prefix per line) from the main one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False  # a streamed line is not finished
        self._held: list[str] = []  # event lines that arrived mid-line, shown after it

    def event(self, text: str) -> None:
        """A line from the event view: held back while a streamed line is being written."""
        with self._lock:
            if self._open:
                self._held.append(text)
            else:
                click.echo(text)

    def _release(self) -> None:
        for text in self._held:
            click.echo(text)
        self._held.clear()

    def line(self, text: str = "") -> None:
        with self._lock:
            self._close()
            click.echo(text)

    def _close(self) -> None:
        if self._open:
            click.echo()
            self._open = False
        self._release()

    def end(self) -> None:
        """Finish a streamed line, if one is open."""
        with self._lock:
            self._close()

    def head(self, text: str) -> None:
        self.line()
        self.line(click.style(f"==> {text}", bold=True))

    def stream(self, text: str, prefix: str) -> None:
        with self._lock:
            for part in text.splitlines(keepends=True):
                if not self._open:
                    click.echo(prefix, nl=False)
                click.echo(part, nl=False)
                self._open = not part.endswith("\n")
                if not self._open:
                    self._release()
            sys.stdout.flush()


def wait_until(
    check: Callable[[], T | None],
    what: str,
    workspace: Workspace,
    deadline: float,
    alive: Callable[[], None] = lambda: None,
) -> T:
    """`check()`'s first non-None value, re-checked on every change in the workspace."""
    with Waker(workspace.root, deadline=deadline, recursive=True) as waker:
        while True:
            value = check()
            if value is not None:
                return value
            alive()
            if not waker.wait():
                value = check()
                if value is not None:
                    return value
                raise TimedOut(f"demo: timed out waiting for {what}")


class DemoSupervisor:
    def __init__(self, workspace: Workspace, env: dict[str, str]) -> None:
        self.workspace = workspace
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, deadline: float) -> None:
        log_path = self.workspace.supervisor_log
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meta_harness", "-w", str(self.workspace.root), "up"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        self.starts += 1
        wait_until(
            self._booted, "the supervisor to start", self.workspace, deadline, self.check_alive
        )

    def _booted(self) -> bool | None:
        for event in read_reversed(self.workspace.events_file):
            if event.get("type") == EventType.SUPERVISOR and event.get("pid") == self.pid:
                return True if event.get("status") == "started" else None
        return None

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        log = self.workspace.supervisor_log
        try:
            tail = log.read_text("utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            tail = []
        for line in tail:
            click.echo(f"    | {line}", err=True)
        raise MetaHarnessError(
            f"the supervisor exited with code {self.proc.returncode} (its log: {log})"
        )

    def kill(self) -> None:
        """SIGKILL the supervisor alone: its reaper then ends the agents' process groups."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(KILL_TIMEOUT)
        self.kills += 1

    def stop(self) -> int:
        """SIGTERM and wait: every session is swapped out, then the supervisor exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"demo: the supervisor did not stop within {STOP_TIMEOUT:g} s") from None

    def cleanup(self) -> None:
        """After a failure: stop it gently if possible, else kill its process group."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(TimedOut, OSError):
            self.stop()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(KILL_TIMEOUT)


class EventPrinter(threading.Thread):
    """Prints one line per supervisor event as it is appended, until stopped."""

    def __init__(self, workspace: Workspace, console: Console, labels: dict[str, str]) -> None:
        super().__init__(name="demo-events", daemon=True)
        self.workspace = workspace
        self.console = console
        self.labels = labels
        self._halt = threading.Event()
        self._offset = 0

    def run(self) -> None:
        with Waker(self.workspace.state_dir, stop=self._halt) as waker:
            while True:
                self._drain()
                if not waker.wait():
                    break
        self._drain()

    def _drain(self) -> None:
        records, self._offset = read_from(self.workspace.events_file, self._offset)
        for _, event in records:
            self.console.event(click.style("    " + render_event(event, self.labels), dim=True))

    def stop(self) -> None:
        self._halt.set()
        self.join(STOP_TIMEOUT)
