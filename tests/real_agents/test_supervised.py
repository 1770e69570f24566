"""The supervisor drives the real Claude and Codex ACP agents, offline: files in, files out.

One rig per agent (tests/support/supervised.py): the mock LLM, a test MCP server, a
workspace whose profiles run the agent, and a supervisor subprocess with the built-in MCP
server mounted. Each test drops task, message and answer files and reads what the
supervisor writes (WAL, transcript, task records, permission requests) and what reached the
model (the mock's request log). Rules match on the visible header line of each prompt
(`[meta-harness message id=<id> ...]`) or on text unique to the test.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.support.mock_llm import Rule, Text, Turn
from tests.support.procs import (
    CRASH_ENV,
    agent_text,
    marked_processes,
    notes,
    replayed_user_text,
    task_phase,
    task_record,
    wait_gone,
    wal,
)
from tests.support.supervised import (
    BUILTIN_SERVER,
    INSTRUCTIONS_MARKER,
    TESTSRV,
    TESTSRV_TOKEN,
    WRITE_TOOL,
    Rig,
    acks_of,
    call_offered,
    open_rig,
    profile_name,
    sent_count,
    tool_status,
    workspace_toml,
    write_call,
)

# The first run may also install both agents with npm (~300 MB), hence the long timeout.
pytestmark = [pytest.mark.real_agent, pytest.mark.timeout(300)]

AGENTS = ["claude", "codex"]
HOLD_WAIT = 60.0  # until the held LLM request reaches the mock (one real-agent turn)
# How each agent ends a turn whose file write was rejected (docs/real-agents.md quirk 4):
# (stop reason, final status of the tool call). Claude fails the call and lets the model go
# on; Codex's reject option ("abort") cancels the turn and leaves the call in progress.
REJECTED_WRITE = {"claude": ("end_turn", "failed"), "codex": ("cancelled", "in_progress")}
RESTORED = ("session-resumed", "session-loaded")  # transcript notes of a swap-in


@pytest.fixture(scope="module", params=AGENTS)
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with open_rig(request.param, tmp_path_factory.mktemp(request.param)) as opened:
        yield opened


def answered_by(rig: Rig, rule: str) -> list[Turn]:
    return [r.turn for r in rig.mock.requests if r.answered_by == rule and r.turn is not None]


def header(message_id: str, sender: str) -> str:
    return f"[meta-harness message id={message_id} from={sender}]"


# ---------------------------------------------------------------------------------------------
# 1-2: a task, then a message as the next turn


def test_a_submitted_task_is_answered_and_a_dropped_message_is_its_next_turn(rig: Rig) -> None:
    rig.mock.script(
        Rule(Text("Hello from the mock."), prompt_contains="Say hello (task hello)", name="hello"),
        Rule(Text("The second answer."), prompt_contains="id=hello-2 ", name="hello-2"),
    )
    first = rig.submit("hello", "Say hello (task hello).")
    assert rig.wait_ack("hello", first)["stop"] == "end_turn"
    assert "Hello from the mock." in agent_text(rig.ws, "hello")
    (opening,) = answered_by(rig, "hello")
    assert header(first, "user") in opening.prompt
    assert INSTRUCTIONS_MARKER in opening.history_text(), "AGENTS.md did not reach the model"

    rig.send("hello", "hello-2", "And now a second thing.")
    assert rig.wait_ack("hello", "hello-2")["stop"] == "end_turn"
    assert "The second answer." in agent_text(rig.ws, "hello")
    (second,) = answered_by(rig, "hello-2")
    assert header("hello-2", "file") in second.prompt
    history = second.history_text()
    assert "Say hello (task hello)." in history and "Hello from the mock." in history
    assert len(notes(rig.ws, "hello", "session-new")) == 1
    assert [a["id"] for a in (acks_of(rig.ws, "hello", m)[0] for m in (first, "hello-2"))] == [
        first,
        "hello-2",
    ]
    rig.wait(lambda: task_phase(rig.ws, "hello") == "waiting", "task hello waiting")


# ---------------------------------------------------------------------------------------------
# 3: the profile's MCP server


def test_the_agent_calls_the_profiles_mcp_server_and_the_model_gets_the_result(rig: Rig) -> None:
    a, b = 1234, 4321
    rig.mock.script(
        Rule(call_offered("add", TESTSRV, {"a": a, "b": b}), prompt_contains="(task tool)"),
        Rule(Text("The sum came back."), after_tool="add", name="after-add"),
    )
    calls_before = len(rig.testsrv.calls)
    first = rig.submit("tool", "Add the numbers with the tool (task tool).")
    assert rig.wait_ack("tool", first)["stop"] == "end_turn"

    assert rig.testsrv.calls[calls_before:] == [(a, b, TESTSRV_TOKEN)]
    (after,) = answered_by(rig, "after-add")
    result = after.result_of("add")
    assert result is not None and not result.is_error and str(a + b) in result.output
    assert "The sum came back." in agent_text(rig.ws, "tool")
    [decision] = notes(rig.ws, "tool", "permission")
    assert decision["decision"] == "allow" and str(decision["by"]).startswith("rule ")
    servers = orjson.loads((rig.ws / "tasks" / "tool" / "mcp.json").read_bytes())
    assert [s["name"] for s in servers] == [BUILTIN_SERVER, TESTSRV]
    assert TESTSRV_TOKEN not in (rig.ws / "tasks" / "tool" / "transcript.jsonl").read_text()
    assert rig.testsrv.unauthorised == 0


# ---------------------------------------------------------------------------------------------
# 4: the supervisor is SIGKILLed mid-turn


def test_a_supervisor_killed_mid_turn_reloads_the_session_and_settles_the_message_in_doubt(
    rig: Rig,
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def held(turn: Turn) -> Text:
        arrived.set()
        return Text("This answer never arrives.", hold=release)

    def remembers(turn: Turn) -> bool:
        history = turn.history_text()
        return "tangerine" in history and "Noted: tangerine." in history

    rig.mock.script(
        Rule(Text("Noted: tangerine."), prompt_contains="(task crash)", name="crash-1"),
        Rule(held, prompt_contains="id=crash-2 ", times=1, name="held"),
        Rule(Text("Picking up: done."), prompt_contains="id=crash-2.continue ", name="continued"),
        Rule(Text("Answering the resent message."), prompt_contains="id=crash-2 ", name="resent"),
        Rule(Text("The word was tangerine."), prompt_contains="id=crash-3 ", when=remembers,
             name="recall"),
    )  # fmt: skip
    first = rig.submit("crash", "Remember the word tangerine (task crash).")
    assert rig.wait_ack("crash", first)["stop"] == "end_turn"
    session_id = rig.session_id("crash")
    # The agent's own durability window (Claude writes a turn after answering it), not ours.
    rig.wait_saved(session_id, "Noted: tangerine.")

    rig.send("crash", "crash-2", "Think about it for a long while.")
    try:
        assert arrived.wait(HOLD_WAIT), "the second message never reached the model"
        rig.supervisor.kill()
        rig.supervisor.wait()
        survivors = wait_gone(marked_processes(rig.ws))
        assert not survivors, f"the reaper left agents alive: {survivors}"
    finally:
        release.set()  # the mock's stream thread ends (its client is gone)
    assert acks_of(rig.ws, "crash", "crash-2") == []

    rig.restart()
    ack = rig.wait_ack("crash", "crash-2")
    record = task_record(rig.ws, "crash")
    assert record is not None and record["session_id"] == session_id
    assert record["last_load"] == "loaded"  # in doubt: load (replay), never resume
    shown = header("crash-2", "file") in replayed_user_text(rig.ws, "crash")
    if shown:  # the agent had it: acked as recovered, not sent again
        assert (ack["stop"], sent_count(rig.ws, "crash", "crash-2")) == ("recovered", 1)
        assert answered_by(rig, "resent") == []
        # the cut turn is continued, before anything else queued
        assert rig.wait_ack("crash", "crash-2.continue")["stop"] == "end_turn"
        assert len(answered_by(rig, "continued")) == 1
    else:  # the replay lacks it: sent again, same id
        assert (ack["stop"], sent_count(rig.ws, "crash", "crash-2")) == ("end_turn", 2)
        assert len(answered_by(rig, "resent")) == 1
    assert len(acks_of(rig.ws, "crash", "crash-2")) == 1

    rig.send("crash", "crash-3", "Which word did I ask you to remember?")
    assert rig.wait_ack("crash", "crash-3")["stop"] == "end_turn"
    assert answered_by(rig, "recall"), "the request after the load lacks the earlier turns"
    assert "The word was tangerine." in agent_text(rig.ws, "crash")
    assert len(notes(rig.ws, "crash", "session-new")) == 1
    assert len(notes(rig.ws, "crash", "session-loaded")) == 1


def test_a_session_killed_before_its_first_prompt_is_replaced_and_the_message_resent(
    rig: Rig,
) -> None:
    # Neither agent writes a session to disk before its first prompt, so its load fails
    # (-32002): the supervisor must start a new session, not fail the task.
    rig.mock.script(Rule(Text("Born at last."), prompt_contains="(task unborn)", name="unborn"))
    rig.supervisor.terminate()
    rig.supervisor.wait()
    rig.restart({CRASH_ENV: "deliver.after_sent"})  # SIGKILL: stamped sent, prompt not sent
    first = rig.submit("unborn", "Say you were born (task unborn).")
    rig.supervisor.wait()
    assert not wait_gone(marked_processes(rig.ws)), "the reaper left agents alive"
    record = task_record(rig.ws, "unborn")
    assert record is not None and record["session_id"] and not record["session_answered"]
    lost_session = record["session_id"]

    rig.restart()
    assert rig.wait_ack("unborn", first)["stop"] == "end_turn"
    assert "Born at last." in agent_text(rig.ws, "unborn")
    [failed] = notes(rig.ws, "unborn", "load-failed")
    assert failed["policy"] == "new-session"
    assert len(notes(rig.ws, "unborn", "session-new")) == 2
    assert sent_count(rig.ws, "unborn", first) == 2
    record = task_record(rig.ws, "unborn")
    assert record is not None and record["phase"] != "failed"
    assert record["session_id"] != lost_session and record["session_answered"]
    assert len(answered_by(rig, "unborn")) == 1


# ---------------------------------------------------------------------------------------------
# 5: file writes through the permission policy


def test_an_edit_allowed_by_a_profile_rule_proceeds_without_asking(rig: Rig) -> None:
    target = rig.ws / "by-rule.txt"
    rig.mock.script(
        Rule(write_call(rig.agent, target, "written by rule"), prompt_contains="(task ruled)"),
        Rule(Text("File written."), after_tool=WRITE_TOOL[rig.agent], name="written"),
    )
    first = rig.submit(
        "ruled", "Write the file (task ruled).", profile=profile_name(rig.agent, edits=True)
    )
    assert rig.wait_ack("ruled", first)["stop"] == "end_turn"
    assert target.read_text().strip() == "written by rule"
    assert not list((rig.ws / "tasks" / "ruled" / "permissions").glob("*.json"))
    [decision] = notes(rig.ws, "ruled", "permission")
    assert decision["decision"] == "allow" and "kind=edit" in str(decision["by"])
    assert answered_by(rig, "written")


def test_an_asked_edit_waits_for_its_answer_file_then_proceeds_or_fails_cleanly(
    rig: Rig,
) -> None:
    approved, refused = rig.ws / "approved.txt", rig.ws / "refused.txt"

    def after_write(turn: Turn) -> Text:
        result = turn.result_of(WRITE_TOOL[rig.agent])
        refused_now = result is not None and result.is_error
        return Text("Understood, refused." if refused_now else "File written.")

    rig.mock.script(
        Rule(write_call(rig.agent, approved, "approved content"), prompt_contains="(task asked)"),
        Rule(write_call(rig.agent, refused, "must never exist"), prompt_contains="id=asked-2 "),
        Rule(after_write, after_tool=WRITE_TOOL[rig.agent], name="after-write"),
        Rule(Text("Still here."), prompt_contains="id=asked-3 ", name="still-here"),
    )
    first = rig.submit("asked", "Write the approved file (task asked).")
    request = rig.pending_permission("asked")
    assert (request["kind"], request["task"]) == ("edit", "asked")
    assert not approved.exists() and acks_of(rig.ws, "asked", first) == []
    rig.answer_permission("asked", request["id"], "allow")
    assert rig.wait_ack("asked", first)["stop"] == "end_turn"
    assert approved.read_text().strip() == "approved content"

    rig.send("asked", "asked-2", "Now write the refused file.")
    request = rig.pending_permission("asked")
    rig.answer_permission("asked", request["id"], "reject")
    ack = rig.wait_ack("asked", "asked-2")
    assert not refused.exists()
    status = tool_status(rig.ws, "asked", request["tool_call"]["toolCallId"])
    assert (ack["stop"], status) == REJECTED_WRITE[rig.agent]
    answered = orjson.loads(
        (rig.ws / "tasks" / "asked" / "permissions" / f"{request['id']}.json").read_bytes()
    )
    assert (answered["status"], answered["decision"], answered["answered_by"]) == (
        "answered",
        "reject",
        "test",
    )
    if ack["stop"] == "end_turn":  # the model was told, with an error result
        assert "Understood, refused." in agent_text(rig.ws, "asked")

    rig.send("asked", "asked-3", "Are you still there?")
    assert rig.wait_ack("asked", "asked-3")["stop"] == "end_turn"
    assert "Still here." in agent_text(rig.ws, "asked")


# ---------------------------------------------------------------------------------------------
# 6: the built-in MCP server: task_spawn


def test_a_child_spawned_through_task_spawn_reports_back_and_wakes_the_parent(rig: Rig) -> None:
    spawn = {"prompt": "hello child", "profile": "demo", "title": "greeter"}
    rig.mock.script(
        Rule(call_offered("task_spawn", BUILTIN_SERVER, spawn), prompt_contains="(task parent)"),
        Rule(Text("Child spawned."), after_tool="task_spawn", name="spawned"),
        Rule(Text("The child reported back."), prompt_contains="id=result:", name="woken"),
    )
    first = rig.submit("parent", "Spawn a child (task parent).")
    assert rig.wait_ack("parent", first)["stop"] == "end_turn"

    def result_message() -> dict[str, Any] | None:
        return next(
            (
                r
                for r in wal(rig.ws, "parent")
                if r.get("op") == "msg" and str(r.get("id", "")).startswith("result:")
            ),
            None,
        )

    message: dict[str, Any] = rig.wait(result_message, "result:<child> in the parent's WAL")
    child = message["id"].removeprefix("result:")
    child_record = task_record(rig.ws, child)
    assert child_record is not None
    assert (child_record["parent"], child_record["profile"], child_record["phase"]) == (
        "parent",
        "demo",
        "done",
    )
    assert "echo: hello child" in str(child_record["result"])
    (spawned,) = answered_by(rig, "spawned")
    spawn_result = spawned.result_of("task_spawn")
    assert spawn_result is not None and child in spawn_result.output

    assert rig.wait_ack("parent", message["id"])["stop"] == "end_turn"
    (woken,) = answered_by(rig, "woken")
    assert "echo: hello child" in woken.prompt
    assert "The child reported back." in agent_text(rig.ws, "parent")


# ---------------------------------------------------------------------------------------------
# 7: swap with max_live = 1


def set_max_live(rig: Rig, max_live: int) -> None:
    """Rewrite the workspace config and wait until the supervisor has reloaded it."""

    def reloads() -> int:
        return sum(1 for e in rig.events_of("supervisor") if e.get("status") == "config-reloaded")

    before = reloads()
    # Renamed into place, as editors do: a reload never sees a half-written file.
    part = rig.ws / ".meta-harness.toml.part"
    part.write_text(workspace_toml(rig.launch, rig.testsrv.url, max_live=max_live))
    os.replace(part, rig.ws / "meta-harness.toml")
    rig.wait(lambda: reloads() > before, f"the config reload to max_live={max_live}")


def test_a_task_swapped_out_for_another_is_restored_with_its_history(rig: Rig) -> None:
    def remembers(turn: Turn) -> bool:
        history = turn.history_text()
        return "Remember plum" in history and "Noted: plum." in history

    rig.mock.script(
        Rule(Text("Noted: plum."), prompt_contains="(task swap-a)", name="swap-a"),
        Rule(Text("Task B here."), prompt_contains="(task swap-b)", name="swap-b"),
        Rule(Text("The fruit was plum."), prompt_contains="id=swap-a-2 ", when=remembers,
             name="recall"),
    )  # fmt: skip
    set_max_live(rig, 1)
    try:
        first_a = rig.submit("swap-a", "Remember plum (task swap-a).")
        assert rig.wait_ack("swap-a", first_a)["stop"] == "end_turn"
        first_b = rig.submit("swap-b", "Say something (task swap-b).")
        assert rig.wait_ack("swap-b", first_b)["stop"] == "end_turn"
        assert notes(rig.ws, "swap-a", "swap-out"), "task A kept its slot"

        rig.send("swap-a", "swap-a-2", "Which fruit did I name?")
        assert rig.wait_ack("swap-a", "swap-a-2")["stop"] == "end_turn"
    finally:
        set_max_live(rig, 8)
    assert notes(rig.ws, "swap-b", "swap-out"), "task B kept its slot"
    restored = [n for n in notes(rig.ws, "swap-a") if n["note"] in RESTORED]
    assert len(restored) == 1 and len(notes(rig.ws, "swap-a", "session-new")) == 1
    assert answered_by(rig, "recall"), "the request after the swap lacks the earlier turns"
    assert "The fruit was plum." in agent_text(rig.ws, "swap-a")
