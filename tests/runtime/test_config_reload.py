"""Config hot reload with a real supervisor: edits reach new tasks, old tasks keep their snapshot.

The test edits `meta-harness.toml` the way editors save (write a temp file, rename it
over the config), waits for the supervisor's `config-reloaded` or `warning` event, and
checks what tasks created before and after the edit use: their `profile.json` snapshot
and, through the demo agent's `/run`, the environment their agent was actually given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from tests.support.procs import (
    Procs,
    agent_text,
    all_acked,
    drop_message,
    drop_task,
    events,
    wait_for,
)

T = TypeVar("T")

# `work` lets its agent run commands without asking, so `/run` shows the agent's env.
BASE_TOML = """
[supervisor]
idle_swap_after = {idle}

[profiles.work]
extends = "default"
env = {{ GREETING = "{greeting}" }}

[profiles.work.permissions]
rules = [{{ kind = "execute", action = "allow" }}]
"""

EXTRA_PROFILE = """
[profiles.extra]
extends = "work"
env = { GREETING = "extra" }
"""

SHOW_GREETING = "/run sh -c 'echo greeting=$GREETING'"


def until(ws: Path, condition: Callable[[], T], what: str) -> T:
    return wait_for(condition, watch_dir=ws, what=what)


def wait_acked(ws: Path, task_id: str, *ids: str) -> None:
    until(ws, lambda: all_acked(ws, task_id, ids), f"{task_id}: acks of {ids}")


def base_config(greeting: str, *, idle: float = 600.0) -> str:
    return BASE_TOML.format(greeting=greeting, idle=idle)


def save(ws: Path, text: str) -> None:
    """Save the config as editors do: a temp file beside it, renamed over it."""
    tmp = ws / ".meta-harness.toml.swp"
    tmp.write_text(text)
    os.rename(tmp, ws / "meta-harness.toml")


def supervisor_events(ws: Path, status: str) -> list[dict[str, Any]]:
    return [e for e in events(ws) if e["type"] == "supervisor" and e.get("status") == status]


def warnings(ws: Path) -> list[str]:
    return [str(e["message"]) for e in events(ws) if e["type"] == "warning" and "task" not in e]


def snapshot(ws: Path, task_id: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads((ws / "tasks" / task_id / "profile.json").read_bytes())
    return value


def edit_and_wait(ws: Path, text: str) -> None:
    reloads = len(supervisor_events(ws, "config-reloaded"))
    save(ws, text)
    until(
        ws,
        lambda: len(supervisor_events(ws, "config-reloaded")) > reloads,
        "the supervisor to reload its config",
    )


def test_an_edited_profile_applies_to_new_tasks_and_earlier_tasks_keep_their_snapshot(
    procs: Procs, workspace: Path
) -> None:
    (workspace / "meta-harness.toml").write_text(base_config("one", idle=0.5))
    procs.start_supervisor()
    drop_task(workspace, "before", SHOW_GREETING, profile="work")
    wait_acked(workspace, "before", "prompt-before")
    assert "greeting=one\n" in agent_text(workspace, "before")

    edit_and_wait(workspace, base_config("two", idle=0.5) + EXTRA_PROFILE)

    drop_task(workspace, "after", SHOW_GREETING, profile="work")
    drop_task(workspace, "added", SHOW_GREETING, profile="extra")
    wait_acked(workspace, "after", "prompt-after")
    wait_acked(workspace, "added", "prompt-added")
    assert snapshot(workspace, "after")["env"] == {"GREETING": "two"}
    assert "greeting=two\n" in agent_text(workspace, "after")
    assert snapshot(workspace, "added")["env"] == {"GREETING": "extra"}
    assert "greeting=extra\n" in agent_text(workspace, "added")

    # The earlier task keeps its snapshot, also in a new agent process after a swap.
    until(
        workspace,
        lambda: [
            e
            for e in events(workspace)
            if e["type"] == "swap" and e.get("task") == "before" and e["direction"] == "out"
        ],
        "the earlier task to swap out",
    )
    drop_message(workspace, "before", "m1", SHOW_GREETING)
    wait_acked(workspace, "before", "m1")
    assert snapshot(workspace, "before")["env"] == {"GREETING": "one"}
    assert agent_text(workspace, "before").count("greeting=one\n") == 2
    assert "greeting=two" not in agent_text(workspace, "before")
    assert warnings(workspace) == []


def test_a_broken_edit_is_reported_and_the_last_good_config_stays(
    procs: Procs, workspace: Path
) -> None:
    config = workspace / "meta-harness.toml"
    (workspace / "meta-harness.toml").write_text(base_config("one"))
    procs.start_supervisor()
    reloads = len(supervisor_events(workspace, "config-reloaded"))

    save(workspace, base_config("two") + "\n[profiles.work\n")  # invalid TOML
    [invalid] = until(workspace, lambda: warnings(workspace), "a warning about the TOML")
    assert str(config) in invalid and "invalid TOML" in invalid

    drop_task(workspace, "t1", SHOW_GREETING, profile="work")
    wait_acked(workspace, "t1", "prompt-t1")
    assert snapshot(workspace, "t1")["env"] == {"GREETING": "one"}
    assert "greeting=one\n" in agent_text(workspace, "t1")

    save(workspace, base_config("three") + "\n[supervisor.extra]\nmax_lve = 3\n")
    until(workspace, lambda: len(warnings(workspace)) == 2, "a warning about the unknown key")
    unknown = warnings(workspace)[1]
    assert str(config) in unknown and "supervisor.extra" in unknown and "unknown key" in unknown

    save(workspace, base_config("four").replace('extends = "default"', 'extends = "nope"'))
    until(workspace, lambda: len(warnings(workspace)) == 3, "a warning about the profile")
    assert "profiles.work.extends" in warnings(workspace)[2]
    assert "no profile named 'nope'" in warnings(workspace)[2]

    drop_task(workspace, "t2", SHOW_GREETING, profile="work")
    wait_acked(workspace, "t2", "prompt-t2")
    assert snapshot(workspace, "t2")["env"] == {"GREETING": "one"}
    assert "greeting=one\n" in agent_text(workspace, "t2")
    assert len(supervisor_events(workspace, "config-reloaded")) == reloads

    # A good edit after broken ones applies.
    edit_and_wait(workspace, base_config("five"))
    drop_task(workspace, "t3", SHOW_GREETING, profile="work")
    wait_acked(workspace, "t3", "prompt-t3")
    assert "greeting=five\n" in agent_text(workspace, "t3")
