"""The reaper sidecar: ends every agent process group if the supervisor dies.

The supervisor starts `python -m meta_harness.runtime.reaper` once, with a pipe on its
stdin, and writes `+PGID` / `-PGID` lines as agents start and stop. When the pipe hits
EOF (the supervisor exited, even by SIGKILL) the reaper SIGTERMs, then SIGKILLs, every
group still registered, and exits. Stdlib only, so it starts in milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
import time

REAPER_TERM_GRACE = 1.0  # agents get this long after SIGTERM before SIGKILL


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def reap(groups: set[int]) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + REAPER_TERM_GRACE
    while time.monotonic() < deadline and any(_alive(g) for g in groups):
        time.sleep(0.02)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole foreground group
    groups: set[int] = set()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if not line:
            continue
        try:
            pgid = int(line[1:])
        except ValueError:
            continue
        if line.startswith(b"+"):
            groups.add(pgid)
        elif line.startswith(b"-"):
            groups.discard(pgid)
    reap(groups)


if __name__ == "__main__":
    main()
