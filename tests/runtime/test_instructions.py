"""Instructions and skills reach a new session's first prompt, once, with a real supervisor.

The demo agent records every block of every prompt in its session file as a
`user_message_chunk` (and replays them on `session/load`), so the test reads what the
agent was told from there: the AGENTS.md text as an embedded `resource` block (the demo
agent advertises `embeddedContext`) and the skill listing as a text block, after the
message. A restored session (resumed or loaded) already has them: they are not resent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.procs import (
    Procs,
    all_acked,
    drop_message,
    drop_task,
    events,
    header_id,
    notes,
    read_jsonl,
    task_record,
    wait_for,
)

T = TypeVar("T")

AGENTS_MD = "# House rules\n\nAnswer in one line. Never touch `vendor/`.\n"
SKILL_MD = """---
name: review
description: "Review a diff for bugs and style"
---

# Review

Read the diff twice.
"""

CONFIG = """
[supervisor]
idle_swap_after = 0.5

[agents.noresume]
command = ["{python}", "-m", "meta_harness.demo_agent", "--no-resume"]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

[profiles.skilled]
extends = "default"
skills = ["review"]

[profiles.skilled-load]
extends = "skilled"
agent = "noresume"

[profiles.half-skilled]
extends = "default"
skills = ["review", "nosuch"]
"""


def until(ws: Path, condition: Callable[[], T], what: str) -> T:
    return wait_for(condition, watch_dir=ws, what=what)


def wait_acked(ws: Path, task_id: str, *ids: str) -> None:
    until(ws, lambda: all_acked(ws, task_id, ids), f"{task_id}: acks of {ids}")


@pytest.fixture
def resources(workspace: Path) -> Path:
    """A workspace with AGENTS.md, a `review` skill and the profiles above."""
    (workspace / "AGENTS.md").write_text(AGENTS_MD)
    skill = workspace / "skills" / "review"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(SKILL_MD)
    (workspace / "meta-harness.toml").write_text(CONFIG)
    return workspace


def prompts(ws: Path, task_id: str) -> list[list[dict[str, Any]]]:
    """The blocks of each prompt the task's agent session holds, in order.

    A prompt starts at a text block opening with the meta-harness message header; the
    blocks after it up to the next header belong to it.
    """
    record = task_record(ws, task_id)
    assert record is not None and record["session_id"]
    path = ws / "tasks" / task_id / "agent" / "sessions" / f"{record['session_id']}.jsonl"
    found: list[list[dict[str, Any]]] = []
    for update in read_jsonl(path):
        if update.get("sessionUpdate") != "user_message_chunk":
            continue
        block = update["content"]
        if block.get("type") == "text" and header_id(str(block.get("text", ""))):
            found.append([block])
        else:
            assert found, f"a block before any prompt: {block}"
            found[-1].append(block)
    return found


def swapped_out(ws: Path, task_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events(ws)
        if e["type"] == "swap" and e.get("task") == task_id and e["direction"] == "out"
    ]


@pytest.mark.parametrize(
    ("profile", "restore_note"),
    [("skilled", "session-resumed"), ("skilled-load", "session-loaded")],
)
def test_instructions_and_skills_reach_the_first_prompt_and_are_not_resent_after_a_swap(
    procs: Procs, resources: Path, profile: str, restore_note: str
) -> None:
    ws = resources
    procs.start_supervisor()
    drop_task(ws, "t1", "hello", profile=profile)
    wait_acked(ws, "t1", "prompt-t1")

    [first] = prompts(ws, "t1")
    message, agents, skills = first
    assert header_id(message["text"]) == "prompt-t1" and message["text"].endswith("\nhello")
    assert agents == {
        "type": "resource",
        "resource": {
            "uri": (ws / "AGENTS.md").as_uri(),
            "mimeType": "text/markdown",
            "text": AGENTS_MD,
        },
    }
    skill_md = ws / "skills" / "review" / "SKILL.md"
    assert skills == {
        "type": "text",
        "text": "[skills available to you]\n"
        f"- review: Review a diff for bugs and style — read {skill_md} when it applies",
    }
    [note] = notes(ws, "t1", "instructions")
    assert (note["files"], note["skills"]) == ([str(ws / "AGENTS.md")], ["review"])

    until(ws, lambda: swapped_out(ws, "t1"), "the idle swap-out")
    drop_message(ws, "t1", "m1", "again")
    wait_acked(ws, "t1", "m1")

    assert len(notes(ws, "t1", restore_note)) == 1
    first_again, second = prompts(ws, "t1")
    assert first_again == first
    assert len(second) == 1 and header_id(second[0]["text"]) == "m1"
    assert len(notes(ws, "t1", "instructions")) == 1
    assert not [e for e in events(ws) if e["type"] == "warning"]


def test_a_missing_skill_is_a_warning_and_the_others_are_still_listed(
    procs: Procs, resources: Path
) -> None:
    ws = resources
    (ws / "AGENTS.md").unlink()  # an absent instruction file is simply not sent
    procs.start_supervisor()
    drop_task(ws, "t1", "hello", profile="half-skilled")
    wait_acked(ws, "t1", "prompt-t1")

    [[message, skills]] = prompts(ws, "t1")
    assert header_id(message["text"]) == "prompt-t1"
    assert skills["type"] == "text"
    assert skills["text"].startswith("[skills available to you]\n- review: ")
    assert skills["text"].count("\n- ") == 1  # review only
    [warning] = [e for e in events(ws) if e["type"] == "warning"]
    assert warning["task"] == "t1"
    assert "'nosuch'" in warning["message"]
    assert str(ws / "skills" / "nosuch" / "SKILL.md") in warning["message"]
    [note] = notes(ws, "t1", "instructions")
    assert (note["files"], note["skills"]) == ([], ["review"])


def test_a_profile_without_instruction_files_or_skills_sends_the_message_alone(
    procs: Procs, workspace: Path
) -> None:
    procs.start_supervisor()
    drop_task(workspace, "t1", "hello")  # the default profile; this workspace has no AGENTS.md
    wait_acked(workspace, "t1", "prompt-t1")

    [[message]] = prompts(workspace, "t1")
    assert header_id(message["text"]) == "prompt-t1"
    assert notes(workspace, "t1", "instructions") == []
