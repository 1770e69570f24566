"""The demo's live view: one readable line per event, whatever the event type."""

from __future__ import annotations

import pytest

from meta_harness.cli.eventview import render_event


@pytest.mark.parametrize(
    ("event", "text"),
    [
        ({"type": "supervisor", "status": "started", "pid": 7}, "supervisor started (pid 7)"),
        (
            {"type": "task.phase", "task": "t-1", "from": "active", "to": "done"},
            "task active → done",
        ),
        (
            {"type": "session.phase", "task": "t-1", "from": "starting", "to": "idle"},
            "session starting → idle",
        ),
        (
            {
                "type": "permission",
                "task": "t-1",
                "status": "pending",
                "title": "Edit x",
                "request": "p-1",
            },
            "permission asked: Edit x (p-1)",
        ),
        (
            {"type": "swap", "task": "t-1", "direction": "in", "seconds": 0.132},
            "swapped in (132 ms)",
        ),
        (
            {"type": "swap", "task": "t-1", "direction": "out", "seconds": 0.003, "reason": "idle"},
            "swapped out (3 ms, idle)",
        ),
        ({"type": "something.new", "task": "t-1"}, "something.new"),
    ],
)
def test_each_event_becomes_one_line(event: dict[str, object], text: str) -> None:
    line = render_event({"ts": 0.0, **event}, {"t-1": "echo"})
    assert "\n" not in line and line.endswith(text)
    if "task" in event:
        assert " t-1 echo " in line
