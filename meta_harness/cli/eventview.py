"""One readable line per record of `.meta-harness/events.jsonl` (the demo's live view).

`12:01:02  t-0k3f9x2ab7q4 echo  session starting → idle`. Unknown event types still get
a line (their type), so a newer supervisor never makes the view fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meta_harness.cli.output import clock
from meta_harness.domain.events import EventType

WHO_WIDTH = 22  # task id (15) plus a short label


def _describe(event: Mapping[str, Any]) -> str:
    etype = event.get("type")
    get = event.get
    reason = f" ({get('reason')})" if get("reason") else ""
    if etype == EventType.SUPERVISOR:
        pid = f" (pid {get('pid')})" if get("pid") else ""
        return f"supervisor {get('status')}{pid}"
    if etype == EventType.TASK_CREATED:
        return f"task created, profile {get('profile')}: {get('title')}"
    if etype == EventType.TASK_PHASE:
        return f"task {get('from')} → {get('to')}{reason}"
    if etype == EventType.SESSION_PHASE:
        return f"session {get('from')} → {get('to')}{reason}"
    if etype == EventType.MESSAGE:
        return f"message {get('id')} {get('status')}"
    if etype == EventType.PERMISSION:
        if get("status") == "pending":
            return f"permission asked: {get('title')} ({get('request')})"
        return f"permission {get('decision')} by {get('by')} ({get('request')})"
    if etype == EventType.SWAP:
        seconds = get("seconds")
        details = [f"{seconds * 1000:.0f} ms"] if isinstance(seconds, int | float) else []
        details += [str(get("reason"))] if get("reason") else []
        return f"swapped {get('direction')}" + (f" ({', '.join(details)})" if details else "")
    if etype == EventType.REJECTED:
        return f"rejected {get('file')}: {get('reason')}"
    if etype == EventType.WARNING:
        return f"warning: {get('message')}"
    return str(etype)


def render_event(event: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> str:
    ts = event.get("ts")
    when = clock(float(ts)) if isinstance(ts, int | float) else "--:--:--"
    task = event.get("task")
    who = f"{task} {(labels or {}).get(task, '')}".rstrip() if isinstance(task, str) else ""
    return f"{when}  {who:<{WHO_WIDTH}}  {_describe(event)}"
