"""A per-profile cap on live sessions (`limits.max_live`) with a real supervisor and demo agents.

Two profiles run the demo agent; one is capped. The test observes only files: the
session phases and swaps in `events.jsonl` (replayed per profile), `stats.json` and the
acks in the WALs. Every wait is bounded and wakes on file changes, never a sleep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.support.procs import Procs, acks, all_acked, drop_message, drop_task, events, wait_for

SLOT_PHASES = frozenset({"starting", "restoring", "idle", "busy", "stopping"})
CAPPED = [f"capped{i}" for i in range(3)]
FREE = [f"free{i}" for i in range(2)]


def config(cap: int) -> str:
    # idle_swap_after = 0: sessions swap out only when a waiter evicts them.
    return f"""
[supervisor]
max_live = 4
idle_swap_after = 0

[profiles.capped]
extends = "default"
agent = "demo"

[profiles.capped.limits]
max_live = {cap}

[profiles.free]
extends = "default"
agent = "demo"
"""


def save(ws: Path, text: str) -> None:
    """Save the config as editors do: a temp file beside it, renamed over it."""
    tmp = ws / ".meta-harness.toml.swp"
    tmp.write_text(text)
    os.rename(tmp, ws / "meta-harness.toml")


def reloads(ws: Path) -> int:
    return sum(
        1 for e in events(ws) if e["type"] == "supervisor" and e.get("status") == "config-reloaded"
    )


def stats(ws: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = orjson.loads((ws / ".meta-harness" / "stats.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return value


def until(ws: Path, condition: Callable[[], Any], what: str) -> Any:
    return wait_for(condition, watch_dir=ws, what=what)


def wait_all_acked(ws: Path, message_id: str, tasks: list[str]) -> None:
    until(ws, lambda: all(all_acked(ws, t, [message_id]) for t in tasks), f"acks of {message_id}")


def settled_slots(ws: Path, profiles: dict[str, int]) -> dict[str, Any] | None:
    """The `slots` of stats.json once it shows `profiles` live and nobody queued."""
    slots: dict[str, Any] = stats(ws).get("slots", {})
    if slots.get("profiles") == profiles and slots.get("queue_depth") == 0:
        return slots
    return None


def live_per_profile(log: list[dict[str, Any]]) -> list[dict[str, int]]:
    """Live sessions per profile after every session phase change, replaying the log."""
    holding: set[str] = set()
    out: list[dict[str, int]] = []
    for e in log:
        if e.get("type") != "session.phase":
            continue
        if e["to"] in SLOT_PHASES:
            holding.add(e["task"])
        else:
            holding.discard(e["task"])
        out.append({p: sum(1 for t in holding if t.startswith(p)) for p in ("capped", "free")})
    return out


def test_a_capped_profile_never_exceeds_its_cap_while_another_profile_runs_beside_it(
    procs: Procs, workspace: Path
) -> None:
    (workspace / "meta-harness.toml").write_text(config(cap=1))
    procs.start_supervisor()

    for task_id in CAPPED + FREE:
        drop_task(workspace, task_id, f"hello from {task_id}", profile=task_id.rstrip("0123456789"))
    for task_id in CAPPED + FREE:
        wait_all_acked(workspace, f"prompt-{task_id}", [task_id])
    for task_id in CAPPED + FREE:
        drop_message(workspace, task_id, "m1", f"round 1 for {task_id}")
    wait_all_acked(workspace, "m1", CAPPED + FREE)

    slots = until(
        workspace,
        lambda: settled_slots(workspace, {"capped": 1, "free": 2}),
        "stats.json to show one capped and two free sessions",
    )
    assert slots["max_live"] == 4
    assert slots["live"] == 3  # a workspace slot stays free: the cap holds, not the workspace

    before_reload = live_per_profile(events(workspace))
    assert max(c["capped"] for c in before_reload) == 1
    assert max(c["free"] for c in before_reload) == 2
    assert any(c["capped"] == 1 and c["free"] == 2 for c in before_reload)  # side by side
    swapped_out = [e for e in events(workspace) if e["type"] == "swap" and e["direction"] == "out"]
    assert len(swapped_out) >= 2 * (len(CAPPED) - 1)  # capped tasks took turns in one slot
    assert {e["task"] for e in swapped_out} <= set(CAPPED)  # never a free session evicted

    # Hot reload: the cap follows the live config.
    count = reloads(workspace)
    save(workspace, config(cap=2))
    until(workspace, lambda: reloads(workspace) > count, "the supervisor to reload its config")
    for task_id in CAPPED:
        drop_message(workspace, task_id, "m2", f"round 2 for {task_id}")
    wait_all_acked(workspace, "m2", CAPPED)

    after_reload = live_per_profile(events(workspace))[len(before_reload) :]
    assert max(c["capped"] for c in after_reload) == 2
    assert all(c["capped"] + c["free"] <= 4 for c in after_reload)
    assert all(c["free"] == 2 for c in after_reload)

    for task_id in CAPPED + FREE:
        records = acks(workspace, task_id)
        expected = [f"prompt-{task_id}", "m1"] + (["m2"] if task_id in CAPPED else [])
        for message_id in expected:
            assert [r["stop"] for r in records.get(message_id, [])] == ["end_turn"], (
                task_id,
                message_id,
            )
