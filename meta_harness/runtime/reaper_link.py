"""The supervisor's end of the reaper sidecar (`runtime/reaper.py`): start, register, close.

Starts the sidecar with a pipe on its stdin and writes `+PGID` as each agent process
group is spawned and `-PGID` once it has ended (a recycled pid must not be killed at our
death). Closing the pipe at a clean stop lets the sidecar end what is left and exit.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

REAPER_EXIT_TIMEOUT = 5  # seconds; on EOF the sidecar ends the groups left (~1 s) and exits


class ReaperLink:
    def __init__(self) -> None:
        self._reaper: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "meta_harness.runtime.reaper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )

    def register(self, pgid: int) -> None:
        self._tell(b"+%d\n" % pgid)

    def unregister(self, pgid: int) -> None:
        """The group is ended: forget it, or a recycled pid could be killed at our death."""
        self._tell(b"-%d\n" % pgid)

    def _tell(self, line: bytes) -> None:
        if self._reaper is not None and self._reaper.stdin is not None:
            with contextlib.suppress(OSError):
                self._reaper.stdin.write(line)
                self._reaper.stdin.flush()

    def stop(self) -> None:
        if self._reaper is None:
            return
        with contextlib.suppress(OSError):
            if self._reaper.stdin is not None:
                self._reaper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._reaper.wait(timeout=REAPER_EXIT_TIMEOUT)
