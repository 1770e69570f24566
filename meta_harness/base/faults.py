"""Fault injection for the kill tests: SIGKILL this process at a named point.

`META_HARNESS_CRASH_AT=<point>` (read once at import) makes `crash_point(<point>)` kill
the process with SIGKILL, the way a power cut or OOM kill would, at exactly the step the
test wants to prove recoverable. Points: `ingest.before_wal`, `ingest.after_wal` (the
record is durable, the drop file not yet removed), `deliver.after_sent` (stamped in
flight, prompt not sent), `deliver.before_ack` (the turn ended, the ack not written).
With the variable unset this is one dict lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "META_HARNESS_CRASH_AT"
_ARMED = os.environ.get(CRASH_ENV)


def crash_point(name: str) -> None:
    if _ARMED is not None and name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
