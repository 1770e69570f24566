"""Tasks spawning tasks, end to end: a real `meta-harness up`, demo agents, the MCP tools.

Every spawn goes the real way: the demo agent's `/spawn` or `/mcp` command calls
`task_spawn` on the built-in MCP server over HTTP, the server publishes a spawn drop and
the supervisor ingests it. A child's result reaches its parent as the message
`result:<child>` ("Child task X (title) finished:\\n<result>"). The demo agent runs each
line of a prompt that starts with `/` as a command, so a result that is a command line
makes its parent act on it: that is how a parent here "decides" to finish. Crash cases
SIGKILL the supervisor (from outside, or at a fault point) and read the truth from the
files after a restart: each result accepted once per id, every task finished, no orphans.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.procs import (
    Procs,
    Supervisor,
    acks,
    agent_pids,
    agent_text,
    drop_control,
    drop_task,
    events,
    notes,
    pid_gone,
    received,
    received_ids,
    task_phase,
    task_record,
    wait_for,
    wal,
)

CLI_TIMEOUT = 30.0  # one `meta-harness` command (imports, reads files) on a loaded box
MAX_CRASH_RUNS = 15  # the tree makes 7 WAL appends; a crash loop longer than this is stuck
CRASH_POINT = "ingest.after_wal"  # the record is durable, the drop file not yet removed

# The grandchild (oneshot) answers with a command line for its parent; the child (session
# mode: it waits for its child's result) runs it and completes with a command line for
# the root; the root runs that and completes with "root-done".
LEAF = "/say /complete /complete root-done"
CHILD_RESULT = "/complete root-done"
LEAF_RESULT = "/complete /complete root-done\n"


def _spawn_session_child(prompt: str, title: str) -> str:
    """A demo-agent line calling task_spawn for a session-mode child (`/spawn` is oneshot)."""
    arguments = {"prompt": prompt, "mode": "session", "title": title}
    return "/mcp meta-harness task_spawn " + json.dumps(arguments)


TREE_PROMPT = _spawn_session_child(f"/spawn {LEAF}", "child")

T = TypeVar("T")


def wait_value(ws: Path, condition: Callable[[], T | None], what: str) -> T:
    """`wait_for` on the workspace, for a condition that returns a value once it holds."""
    value = wait_for(condition, watch_dir=ws, what=what)
    assert value is not None
    return value


# -- reading the tree ----------------------------------------------------------------------------


def records(ws: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    tasks = ws / "tasks"
    for path in sorted(tasks.iterdir()) if tasks.is_dir() else []:
        record = task_record(ws, path.name)
        if record is not None:
            found[path.name] = record
    return found


def children(ws: Path, parent: str) -> list[str]:
    return sorted(t for t, r in records(ws).items() if r.get("parent") == parent)


def only_child(ws: Path, parent: str) -> str | None:
    kids = children(ws, parent)
    assert len(kids) <= 1, f"{parent} has {kids}"
    return kids[0] if kids else None


def msg_counts(ws: Path, task_id: str) -> collections.Counter[str]:
    """How many times each message id was accepted into the task's WAL."""
    return collections.Counter(str(r["id"]) for r in wal(ws, task_id) if r.get("op") == "msg")


def result_msg(ws: Path, parent: str, child: str) -> dict[str, Any] | None:
    return next(
        (r for r in wal(ws, parent) if r.get("op") == "msg" and r.get("id") == f"result:{child}"),
        None,
    )


def result_text(record: dict[str, Any]) -> str:
    return "".join(str(block.get("text", "")) for block in record.get("content", []))


def tool_errors(text: str) -> list[str]:
    """The demo agent's `tool error: ...` lines (how a failed MCP call reads to a model)."""
    return [line for line in text.splitlines() if line.startswith("tool error: ")]


def spawn_drops(ws: Path) -> list[str]:
    return sorted(p.name for p in (ws / "inbox").glob("spawn+*"))


def rejected_files(ws: Path) -> list[str]:
    rejected = ws / ".meta-harness" / "rejected"
    return sorted(p.name for p in rejected.iterdir()) if rejected.is_dir() else []


def cli(procs: Procs, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "meta_harness", "-w", str(procs.ws), *args],
        capture_output=True,
        text=True,
        env=procs.env(),
        cwd=procs.scratch,
        timeout=CLI_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return done


def configure(ws: Path, toml: str) -> None:
    (ws / "meta-harness.toml").write_text(toml)


# -- the tree's checks ---------------------------------------------------------------------------


def tree_ids(ws: Path) -> tuple[str, str]:
    child = only_child(ws, "root")
    assert child is not None
    grandchild = only_child(ws, child)
    assert grandchild is not None
    return child, grandchild


def assert_tree_finished_once(ws: Path) -> None:
    """All three done with the expected results; each result accepted once by its parent."""
    child, grandchild = tree_ids(ws)
    assert set(records(ws)) == {"root", child, grandchild}
    outcome = {t: (r["phase"], r.get("result")) for t, r in records(ws).items()}
    assert outcome == {
        "root": ("done", "root-done"),
        child: ("done", CHILD_RESULT),
        grandchild: ("done", LEAF_RESULT),
    }
    for parent, kid in (("root", child), (child, grandchild)):
        counts = msg_counts(ws, parent)
        assert counts[f"result:{kid}"] == 1, (parent, counts)
        assert max(counts.values()) == 1, (parent, counts)  # no message accepted twice
        record = result_msg(ws, parent, kid)
        assert record is not None and record["meta"] == {"child": kid, "phase": "done"}
        assert f"result:{kid}" in received_ids(ws, parent)  # its agent was prompted with it
    assert msg_counts(ws, grandchild) == {f"prompt-{grandchild}": 1}


# -- tests ---------------------------------------------------------------------------------------


def test_a_three_level_tree_delivers_each_result_to_its_parent_exactly_once(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    procs.start_supervisor()
    drop_task(ws, "root", TREE_PROMPT)

    wait_for(lambda: task_phase(ws, "root") == "done", watch_dir=ws, what="the root to finish")

    assert_tree_finished_once(ws)
    child, grandchild = tree_ids(ws)
    # each level reached the next through the tool, as its agent saw it
    assert f'"task_id": "{child}"' in agent_text(ws, "root")
    assert f'"task_id": "{grandchild}"' in agent_text(ws, child)
    assert records(ws)[grandchild]["mode"] == "oneshot"
    assert records(ws)[child]["finished_by"] == "agent"
    # `ls --json` shows the tree
    listing = json.loads(cli(procs, "ls", "--all", "--json").stdout)
    shape = {t["id"]: (t["parent"], t["depth"], t["phase"]) for t in listing["tasks"]}
    assert shape == {
        "root": (None, 0, "done"),
        child: ("root", 1, "done"),
        grandchild: (child, 2, "done"),
    }


def test_a_supervisor_killed_in_the_middle_of_a_tree_finishes_it_after_a_restart(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    # Two slots, and the root and the child hang after spawning: the grandchild is
    # created but queued for a slot when the kill comes, whatever the timing.
    configure(ws, "[supervisor]\nmax_live = 2\n")
    child_prompt = f"/spawn {LEAF}\n/hang"
    first = procs.start_supervisor()
    drop_task(ws, "root", _spawn_session_child(child_prompt, "child") + "\n/hang")

    def grandchild_created() -> str | None:
        child = only_child(ws, "root")
        return only_child(ws, child) if child else None

    grandchild = wait_value(ws, grandchild_created, "the grandchild's task.json")
    first.kill()
    assert first.wait() == -signal.SIGKILL
    child = only_child(ws, "root")
    assert child is not None
    assert agent_pids(ws, grandchild) == []  # it was still queued
    assert task_phase(ws, "root") == task_phase(ws, child) == "active"
    first_agents = agent_pids(ws, "root") + agent_pids(ws, child)
    assert len(first_agents) == 2
    assert all(pid_gone(pid) for pid in first_agents), first_agents  # the reaper ended them

    procs.start_supervisor()
    wait_for(lambda: task_phase(ws, "root") == "done", watch_dir=ws, what="the root to finish")

    assert_tree_finished_once(ws)
    # the hung turns were settled by the load replay, not sent again
    for task_id in ("root", child):
        assert [a["stop"] for a in acks(ws, task_id)[f"prompt-{task_id}"]] == ["recovered"]
        assert received_ids(ws, task_id).count(f"prompt-{task_id}") == 1


def test_a_supervisor_killed_after_every_wal_append_still_finishes_the_tree(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    drop_task(ws, "root", TREE_PROMPT)
    crashes = 0
    for _ in range(MAX_CRASH_RUNS):
        run = procs.start_supervisor(crash_at=CRASH_POINT, wait=False)

        def crashed_or_finished(run: Supervisor = run) -> bool:
            return run.popen.poll() is not None or task_phase(ws, "root") == "done"

        wait_for(
            crashed_or_finished,
            watch_dir=ws,
            what="the supervisor to crash or the tree to finish",
        )
        if task_phase(ws, "root") == "done":
            break
        assert run.wait() == -signal.SIGKILL, run.output()
        crashes += 1
    else:
        pytest.fail(f"the tree did not finish in {MAX_CRASH_RUNS} runs: {records(ws)}")

    assert_tree_finished_once(ws)
    # every accepted message cost one crashed run: the fault struck at each append
    total = sum(sum(msg_counts(ws, t).values()) for t in records(ws))
    assert crashes == total


def test_a_oneshot_child_whose_turn_end_was_lost_in_a_crash_still_reports_its_result(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    # The root hangs after spawning, so the first turn to end is the child's: the
    # supervisor dies after that turn ended and before its ack was written.
    drop_task(ws, "root", "/spawn leaf-text\n/hang")
    first = procs.start_supervisor(crash_at="deliver.before_ack", wait=False)
    assert first.wait() == -signal.SIGKILL, first.output()
    child = only_child(ws, "root")
    assert child is not None
    assert [r["op"] for r in wal(ws, child)] == ["msg", "sent"]
    assert received_ids(ws, child) == [f"prompt-{child}"]

    procs.start_supervisor()
    wait_for(
        lambda: f"result:{child}" in acks(ws, "root"),
        watch_dir=ws,
        what="the root to answer the child's result",
    )

    record = records(ws)[child]
    assert (record["phase"], record["result"], record["finished_by"]) == (
        "done",
        "echo: leaf-text\n",
        "oneshot",
    )
    assert [a["stop"] for a in acks(ws, child)[f"prompt-{child}"]] == ["recovered"]
    assert len(notes(ws, child, "oneshot-recovered")) == 1
    assert msg_counts(ws, "root")[f"result:{child}"] == 1
    result = result_msg(ws, "root", child)
    assert result is not None and "finished:\necho: leaf-text" in result_text(result)


def test_cancelling_a_task_cancels_its_descendants_and_their_running_turns(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    procs.start_supervisor()
    # A child that hangs, and a child that spawns a hanging grandchild and then (oneshot)
    # is done: the cancel must reach the grandchild through its ended parent.
    drop_task(ws, "root", "/spawn /hang\n/spawn /spawn /hang")

    def hanging() -> tuple[str, str, str] | None:
        kids = children(ws, "root")
        if len(kids) != 2:
            return None
        by_prompt = {records(ws)[k]["title"]: k for k in kids}
        hang, spawner = by_prompt.get("/hang"), by_prompt.get("/spawn /hang")
        grandchild = only_child(ws, spawner) if spawner else None
        if hang is None or spawner is None or grandchild is None:
            return None
        turns_running = all(received_ids(ws, t) == [f"prompt-{t}"] for t in (hang, grandchild))
        if not turns_running or task_phase(ws, spawner) != "done":
            return None
        return hang, spawner, grandchild

    hang, spawner, grandchild = wait_value(ws, hanging, "the child and the grandchild to hang")
    agents = agent_pids(ws, hang) + agent_pids(ws, grandchild)

    cli(procs, "cancel", "root")

    ended = ("root", hang, grandchild)
    wait_for(
        lambda: all(task_phase(ws, t) == "cancelled" for t in ended),
        watch_dir=ws,
        what="the root and its live descendants to be cancelled",
    )
    assert task_phase(ws, spawner) == "done"
    for task_id in (hang, grandchild):
        record = records(ws)[task_id]
        assert record["finished_by"] == "task:root"
        assert record.get("error") is None
        # the hung turn itself ended "cancelled"; the cancel control was applied
        assert [a["stop"] for a in acks(ws, task_id)[f"prompt-{task_id}"]] == ["cancelled"]
        assert [a["stop"] for a in acks(ws, task_id)["cancel-by-root"]] == ["applied"]
    assert all(pid_gone(pid) for pid in agents), agents


def test_a_spawn_beyond_max_children_is_a_tool_error_and_is_never_created(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    configure(ws, "[profiles.demo.limits]\nmax_children = 2\n")
    procs.start_supervisor()
    drop_task(ws, "root", "/spawn one\n/spawn two\n/spawn three")

    wait_for(lambda: "prompt-root" in acks(ws, "root"), watch_dir=ws, what="the root's turn")

    def two_done() -> list[str] | None:
        kids = children(ws, "root")
        finished = len(kids) == 2 and all(task_phase(ws, k) == "done" for k in kids)
        return kids if finished else None

    kids = wait_value(ws, two_done, "the two children to finish")

    text = agent_text(ws, "root")
    assert text.count("tool result:") == 2
    [error] = tool_errors(text)
    assert "too many children: root already has 2 (max_children 2 of profile demo)" in error
    assert [records(ws)[k]["title"] for k in kids] == ["one", "two"]
    assert set(records(ws)) == {"root", *kids}
    assert spawn_drops(ws) == [] and rejected_files(ws) == []


def test_a_spawn_beyond_max_depth_is_a_tool_error_the_parent_receives_as_the_result(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    configure(ws, "[profiles.demo.limits]\nmax_depth = 1\n")
    procs.start_supervisor()
    drop_task(ws, "root", "/spawn /spawn too-deep")

    def reported() -> str | None:
        child = only_child(ws, "root")
        return child if child and result_msg(ws, "root", child) else None

    child = wait_value(ws, reported, "the child's result at the root")

    [error] = tool_errors(agent_text(ws, child))
    assert f"too deep: a child of {child} would be at depth 2, beyond max_depth 1" in error
    record = result_msg(ws, "root", child)
    assert record is not None
    assert error in result_text(record)
    assert set(records(ws)) == {"root", child}
    assert spawn_drops(ws) == [] and rejected_files(ws) == []


def test_a_failed_child_reaches_its_parent_as_a_message_saying_it_failed(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    procs.start_supervisor()
    drop_task(ws, "root", "/spawn /fail")

    def answered() -> str | None:
        child = only_child(ws, "root")
        return child if child and f"result:{child}" in acks(ws, "root") else None

    child = wait_value(ws, answered, "the root to answer the child's result")

    record = records(ws)[child]
    assert record["phase"] == "failed"
    assert "demo failure" in record["error"]
    message = result_msg(ws, "root", child)
    assert message is not None
    assert message["meta"] == {"child": child, "phase": "failed"}
    assert message["from"] == f"task:{child}"
    expected = f"Child task {child} (/fail) failed: {record['error']}"
    assert result_text(message) == expected
    prompts = {r["messageId"]: r["text"] for r in received(ws, "root")}
    assert expected in prompts[f"result:{child}"]  # the root's agent was told
    assert msg_counts(ws, "root")[f"result:{child}"] == 1


def test_a_parent_that_ends_before_its_child_warns_and_so_does_the_undeliverable_result(
    procs: Procs, workspace: Path
) -> None:
    ws = workspace
    procs.start_supervisor()
    drop_task(ws, "root", _spawn_session_child("standing by", "child"))
    child = wait_value(ws, lambda: only_child(ws, "root"), "the child task")
    wait_for(lambda: task_phase(ws, child) == "waiting", watch_dir=ws, what="the child idle")

    drop_control(ws, "root", "end-root", "complete")  # the parent ends; the child runs on
    wait_for(lambda: task_phase(ws, "root") == "done", watch_dir=ws, what="the root done")

    def warnings(task_id: str) -> list[str]:
        return [
            e["message"] for e in events(ws) if e["type"] == "warning" and e.get("task") == task_id
        ]

    wait_for(lambda: warnings("root"), watch_dir=ws, what="the root's warning")
    [on_root] = warnings("root")
    assert "1 unfinished child task(s)" in on_root and child in on_root
    assert task_phase(ws, child) == "waiting"  # not cancelled: its work may be wanted

    drop_control(ws, child, "end-child", "complete")
    wait_for(lambda: warnings(child), watch_dir=ws, what="the child's warning")
    assert warnings(child) == [
        "result not delivered: parent root had already ended (done); it stays in this task's record"
    ]
    assert f"result:{child}" not in msg_counts(ws, "root")
