"""Session swap with real supervisors and demo agents: more long-lived tasks than slots.

Each test writes a `meta-harness.toml` (small `max_live`, profiles whose agents lack a
capability or are slow at one step), drops tasks and messages, and observes only files:
`events.jsonl` (session phases, swaps), `stats.json`, task records, WALs, transcripts and
the demo agent's own session files. Slot use is checked twice: replaying the session
phases of the event log, and counting live agent processes with psutil whenever a file
of the workspace changes while a test waits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psutil
import pytest

from tests.support.procs import (
    Procs,
    acks,
    agent_pids,
    all_acked,
    drop_control,
    drop_message,
    drop_task,
    events,
    header_id,
    marked_processes,
    notes,
    pid_gone,
    publish,
    read_jsonl,
    received,
    received_ids,
    task_phase,
    task_record,
    wait_for,
    wal,
)

T = TypeVar("T")

SLOT_PHASES = frozenset({"starting", "restoring", "idle", "busy", "stopping"})

# Agents that lack a capability, or that are slow at one step so that a test can SIGKILL
# the supervisor inside that step (the pause is the agent's behaviour, not a test sleep).
PROFILES_TOML = """
[agents.noload]
command = ["{python}", "-m", "meta_harness.demo_agent", "--no-load"]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

[agents.noresume]
command = ["{python}", "-m", "meta_harness.demo_agent", "--no-resume"]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

[agents.failload]
command = ["{python}", "-m", "meta_harness.demo_agent", "--fail-load", "--no-resume"]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

# Lingers after stdin EOF and ignores SIGTERM: a swap-out stays in `stopping` until the
# shutdown ladder's SIGKILL (AGENT_STOP_GRACE + AGENT_TERM_GRACE).
[agents.slowexit]
command = [
    "sh", "-c", 'trap "" TERM; "$0" -m "$1"; sleep 60', "{python}", "meta_harness.demo_agent",
]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

# Starts slowly once it has a session on disk: a restore stays in `restoring` a while.
[agents.slowrestore]
command = [
    "sh", "-c", '[ -d "$MH_DEMO_STATE_DIR/sessions" ] && sleep 3; exec "$0" -m "$1"',
    "{python}", "meta_harness.demo_agent",
]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

# Works until it has a session on disk; then it dies before `initialize`, every time.
[agents.norestore]
command = [
    "sh", "-c", '[ -d "$MH_DEMO_STATE_DIR/sessions" ] && exit 3; exec "$0" -m "$1"',
    "{python}", "meta_harness.demo_agent",
]
env = { MH_DEMO_STATE_DIR = "{task_dir}/agent" }

[profiles.noload]
extends = "default"
agent = "noload"

[profiles.noresume]
extends = "default"
agent = "noresume"

[profiles.failload]
extends = "default"
agent = "failload"
on_load_failure = "fail"

[profiles.freshload]
extends = "default"
agent = "failload"
on_load_failure = "fresh"

[profiles.slowexit]
extends = "default"
agent = "slowexit"

[profiles.slowrestore]
extends = "default"
agent = "slowrestore"

[profiles.norestore]
extends = "default"
agent = "norestore"

[profiles.norestore.limits]
restart_burst = 2
restart_window = 600.0
"""


def configure(ws: Path, *, max_live: int, idle_swap_after: float) -> None:
    (ws / "meta-harness.toml").write_text(
        f"[supervisor]\nmax_live = {max_live}\nidle_swap_after = {idle_swap_after}\n"
        + PROFILES_TOML
    )


# -- observing --------------------------------------------------------------------------------


class AgentCensus:
    """Peak number of live agent processes of the workspace, sampled on every file change."""

    def __init__(self, ws: Path) -> None:
        self.ws = ws
        self.peak = 0
        self.samples = 0

    def sample(self) -> None:
        agents = 0
        for proc in marked_processes(self.ws):
            try:
                if "meta_harness.demo_agent" in " ".join(proc.cmdline()):
                    agents += 1
            except Exception:  # gone between listing and reading: not live
                continue
        self.peak = max(self.peak, agents)
        self.samples += 1


def until(ws: Path, condition: Callable[[], T], what: str, census: AgentCensus | None = None) -> T:
    def check() -> T:
        if census is not None:
            census.sample()
        return condition()

    return wait_for(check, watch_dir=ws, what=what)


def peak_slot_holders(log: list[dict[str, Any]]) -> int:
    """Most sessions at once in a slot-holding phase, replaying the event log in order."""
    holding: set[str] = set()
    peak = 0
    for e in log:
        if e.get("type") == "supervisor" and e.get("status") == "started":
            holding.clear()  # a new supervisor: the old one's processes were reaped
        if e.get("type") != "session.phase":
            continue
        if e["to"] in SLOT_PHASES:
            holding.add(e["task"])
        else:
            holding.discard(e["task"])
        peak = max(peak, len(holding))
    return peak


def phases(ws: Path, task_id: str) -> list[str]:
    return [
        e["to"] for e in events(ws) if e.get("type") == "session.phase" and e.get("task") == task_id
    ]


def swaps(ws: Path, direction: str, task_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in events(ws)
        if e.get("type") == "swap"
        and e.get("direction") == direction
        and (task_id is None or e.get("task") == task_id)
    ]


def first_index(log: list[dict[str, Any]], **match: Any) -> int:
    for i, e in enumerate(log):
        if all(e.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError(f"no event matching {match}")


def stats(ws: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = orjson.loads((ws / ".meta-harness" / "stats.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return value


def until_stats(ws: Path, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The first stats.json snapshot that satisfies `predicate`."""

    def check() -> dict[str, Any] | None:
        snapshot = stats(ws)
        return snapshot if snapshot and predicate(snapshot) else None

    found = until(ws, check, what)
    assert found is not None
    return found


def agent_sessions(ws: Path, task_id: str) -> list[str]:
    """ACP session ids the demo agent of a task ever created (its meta files)."""
    directory = ws / "tasks" / task_id / "agent" / "sessions"
    return sorted(p.name.removesuffix(".meta.json") for p in directory.glob("*.meta.json"))


def history_ids(ws: Path, task_id: str, session_id: str) -> list[str]:
    """Message ids in the order the agent's session file holds them (its conversation)."""
    path = ws / "tasks" / task_id / "agent" / "sessions" / f"{session_id}.jsonl"
    ids: list[str] = []
    for update in read_jsonl(path):
        if update.get("sessionUpdate") == "user_message_chunk":
            found = header_id(str((update.get("content") or {}).get("text", "")))
            if found is not None:
                ids.append(found)
    return ids


def history_text(ws: Path, task_id: str, session_id: str) -> str:
    path = ws / "tasks" / task_id / "agent" / "sessions" / f"{session_id}.jsonl"
    return "".join(
        str((u.get("content") or {}).get("text", ""))
        for u in read_jsonl(path)
        if u.get("sessionUpdate") == "agent_message_chunk"
    )


def acked_once(ws: Path, task_id: str, ids: list[str], stop: str = "end_turn") -> None:
    records = acks(ws, task_id)
    for message_id in ids:
        assert [r["stop"] for r in records.get(message_id, [])] == [stop], (task_id, message_id)
    assert len(received_ids(ws, task_id)) == len(set(received_ids(ws, task_id)))


def wait_acked(ws: Path, task_id: str, *ids: str, census: AgentCensus | None = None) -> None:
    until(ws, lambda: all_acked(ws, task_id, ids), f"{task_id}: acks of {ids}", census)


# -- many tasks, few slots --------------------------------------------------------------------


def test_four_tasks_share_two_slots_and_every_conversation_continues(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=2, idle_swap_after=0)  # swaps happen only under pressure
    census = AgentCensus(workspace)
    procs.start_supervisor()
    tasks = [f"t{i}" for i in range(4)]
    rounds = 3

    for task_id in tasks:
        drop_task(workspace, task_id, f"hello from {task_id}")
    for task_id in tasks:
        wait_acked(workspace, task_id, f"prompt-{task_id}", census=census)
    for r in range(1, rounds + 1):
        for task_id in tasks:
            drop_message(workspace, task_id, f"m{r}", f"round {r} for {task_id}")
        for task_id in tasks:
            wait_acked(workspace, task_id, f"m{r}", census=census)

    log = events(workspace)
    assert peak_slot_holders(log) == 2
    assert 1 <= census.peak <= 2, census.peak
    swapped_in = swaps(workspace, "in")
    assert len(swapped_in) >= 2 * rounds  # each round, two swapped-out tasks came back
    assert all(e["seconds"] > 0 for e in swapped_in)
    assert {e["reason"] for e in swaps(workspace, "out")} == {"evicted for another task"}
    for task_id in tasks:
        expected = [f"prompt-{task_id}"] + [f"m{r}" for r in range(1, rounds + 1)]
        acked_once(workspace, task_id, expected)
        [session_id] = agent_sessions(workspace, task_id)  # one conversation, never restarted
        record = task_record(workspace, task_id)
        assert record is not None and record["session_id"] == session_id
        assert history_ids(workspace, task_id, session_id) == expected
        assert history_text(workspace, task_id, session_id).endswith(
            f"echo: round {rounds} for {task_id}\n"
        )
        restores = notes(workspace, task_id, "session-resumed")  # nothing was ever in doubt
        assert len(restores) == len(swaps(workspace, "in", task_id))
        assert not notes(workspace, task_id, "session-loaded")
        if restores:
            assert record["last_load"] == "resumed"

    snapshot = until_stats(
        workspace,
        lambda s: s["swaps"]["in"] == len(swapped_in) and s["tasks"] == {"waiting": 4},
        "stats.json to show the final counts",
    )
    assert snapshot["slots"]["max_live"] == 2
    assert snapshot["slots"]["live"] == 2
    assert snapshot["slots"]["queue_depth"] == 0
    assert snapshot["swaps"]["out"] == len(swaps(workspace, "out"))
    assert snapshot["turns"] == 4 * (rounds + 1)
    assert snapshot["swaps"]["swap_in_p50"] > 0


@pytest.mark.parametrize(
    ("profile", "restore_note", "last_load"),
    [("default", "session-resumed", "resumed"), ("noresume", "session-loaded", "loaded")],
)
def test_an_idle_session_swaps_out_after_idle_swap_after_and_is_restored_on_the_next_message(
    procs: Procs, workspace: Path, profile: str, restore_note: str, last_load: str
) -> None:
    configure(workspace, max_live=8, idle_swap_after=0.5)
    supervisor = procs.start_supervisor()
    drop_task(workspace, "t1", "first words", profile=profile)
    wait_acked(workspace, "t1", "prompt-t1")

    [out] = until(workspace, lambda: swaps(workspace, "out", "t1"), "the idle swap-out")
    [first_agent] = agent_pids(workspace, "t1")
    assert out["reason"] == "idle for 0.5 s"
    assert pid_gone(first_agent)
    assert phases(workspace, "t1")[-2:] == ["stopping", "swapped"]
    # A swapped-out task costs no runner and no open WAL descriptor.
    until(workspace, lambda: stats(workspace).get("sessions") == {}, "the runner to end")
    wal_path = str(workspace / "tasks" / "t1" / "inbox.wal.jsonl")
    assert wal_path not in [f.path for f in psutil.Process(supervisor.pid).open_files()]

    drop_message(workspace, "t1", "m1", "second words")
    wait_acked(workspace, "t1", "m1")

    [swap_in] = swaps(workspace, "in", "t1")
    assert swap_in["seconds"] > 0
    assert len(notes(workspace, "t1", restore_note)) == 1
    record = task_record(workspace, "t1")
    assert record is not None and record["last_load"] == last_load
    [session_id] = agent_sessions(workspace, "t1")
    assert record["session_id"] == session_id
    assert history_ids(workspace, "t1", session_id) == ["prompt-t1", "m1"]
    assert history_text(workspace, "t1", session_id) == "echo: first words\necho: second words\n"
    if restore_note == "session-loaded":  # the replay reached the supervisor, marked as load
        assert any(r.get("load") for r in read_jsonl(workspace / "tasks/t1/transcript.jsonl"))


# -- never evicted ----------------------------------------------------------------------------


def test_a_session_waiting_on_a_permission_answer_keeps_its_slot_while_another_task_queues(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=1, idle_swap_after=0)
    procs.start_supervisor()
    drop_task(workspace, "asker", "/edit x.txt hi")  # edits ask by default
    requests = workspace / "tasks" / "asker" / "permissions"
    [request] = until(
        workspace,
        lambda: [p for p in requests.glob("*.json") if not p.name.endswith(".answer.json")],
        "the permission request",
    )
    drop_task(workspace, "other", "hello")
    until(
        workspace,
        lambda: stats(workspace).get("slots", {}).get("queue_depth") == 1,
        "the other task to queue for the only slot",
    )
    assert phases(workspace, "other") == []  # queued: no process was started for it
    assert orjson.loads(request.read_bytes())["status"] == "pending"

    publish(request.with_name(request.stem + ".answer.json"), {"decision": "allow", "by": "test"})
    wait_acked(workspace, "asker", "prompt-asker")
    wait_acked(workspace, "other", "prompt-other")

    log = events(workspace)
    answered = first_index(log, type="permission", task="asker", status="answered")
    asker_out = first_index(log, type="swap", task="asker", direction="out")
    other_starts = first_index(log, type="session.phase", task="other", to="starting")
    assert answered < asker_out < other_starts
    assert log[asker_out]["reason"] == "evicted for another task"
    assert peak_slot_holders(log) == 1
    assert (workspace / "x.txt").read_text() == "hi"
    acked_once(workspace, "asker", ["prompt-asker"])


def test_a_session_whose_agent_cannot_load_is_pinned_and_keeps_its_process(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=1, idle_swap_after=0.3)
    procs.start_supervisor()
    drop_task(workspace, "pinned", "hello", profile="noload")
    wait_acked(workspace, "pinned", "prompt-pinned")
    record = task_record(workspace, "pinned")
    assert record is not None and record["pinned_reason"] == "the agent cannot session/load"
    warnings = [
        e for e in events(workspace) if e["type"] == "warning" and e.get("task") == "pinned"
    ]
    assert [w["message"] for w in warnings] == ["pinned: the agent cannot session/load"]

    drop_task(workspace, "other", "let me in")
    until(
        workspace,
        lambda: stats(workspace).get("slots", {}).get("queue_depth") == 1,
        "the other task to queue behind the pinned one",
    )
    # Idle far longer than idle_swap_after while a task queues: still no swap.
    drop_message(workspace, "pinned", "m1", "still here")
    wait_acked(workspace, "pinned", "m1")
    assert phases(workspace, "other") == []
    assert not swaps(workspace, "out", "pinned")

    drop_control(workspace, "pinned", "done", "complete")
    wait_acked(workspace, "other", "prompt-other")

    assert len(agent_pids(workspace, "pinned")) == 1  # one process served every turn
    [out] = swaps(workspace, "out", "pinned")
    assert out["reason"] == "task ended"
    log = events(workspace)
    assert first_index(log, type="swap", task="pinned") < first_index(
        log, type="session.phase", task="other", to="starting"
    )
    assert task_phase(workspace, "pinned") == "done"


# -- supervisor killed mid-swap ---------------------------------------------------------------


def test_a_supervisor_killed_during_a_swap_out_loses_nothing(procs: Procs, workspace: Path) -> None:
    configure(workspace, max_live=1, idle_swap_after=0)
    first = procs.start_supervisor()
    drop_task(workspace, "t1", "one", profile="slowexit")
    wait_acked(workspace, "t1", "prompt-t1")
    drop_task(workspace, "t2", "two", profile="slowexit")  # evicts t1
    until(workspace, lambda: phases(workspace, "t1")[-1:] == ["stopping"], "t1 swapping out")

    first.kill()
    first.wait()

    assert phases(workspace, "t1")[-1] == "stopping"  # killed inside the swap-out
    assert all(pid_gone(pid) for pid in agent_pids(workspace, "t1"))  # the reaper ended it
    procs.start_supervisor()
    wait_acked(workspace, "t2", "prompt-t2")  # t2 was still waiting for the slot
    drop_message(workspace, "t1", "m1", "after the kill")
    wait_acked(workspace, "t1", "m1")

    acked_once(workspace, "t1", ["prompt-t1", "m1"])
    acked_once(workspace, "t2", ["prompt-t2"])
    [session_id] = agent_sessions(workspace, "t1")
    assert history_ids(workspace, "t1", session_id) == ["prompt-t1", "m1"]
    assert history_text(workspace, "t1", session_id) == "echo: one\necho: after the kill\n"
    assert notes(workspace, "t1", "session-resumed")
    assert peak_slot_holders(events(workspace)) == 1


def test_a_supervisor_killed_during_a_restore_delivers_the_message_after_the_rerun(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=1, idle_swap_after=0)
    first = procs.start_supervisor()
    drop_task(workspace, "t1", "one", profile="slowrestore")
    wait_acked(workspace, "t1", "prompt-t1")
    drop_task(workspace, "t2", "two")  # evicts t1
    wait_acked(workspace, "t2", "prompt-t2")
    drop_message(workspace, "t1", "m1", "while restoring")  # evicts t2, restores t1
    until(workspace, lambda: phases(workspace, "t1")[-1:] == ["restoring"], "t1 restoring")

    first.kill()
    first.wait()

    assert phases(workspace, "t1")[-1] == "restoring"  # killed inside the restore
    assert not any(r["op"] == "sent" and r["id"] == "m1" for r in wal(workspace, "t1"))
    assert all(pid_gone(pid) for pid in agent_pids(workspace, "t1"))
    procs.start_supervisor()
    wait_acked(workspace, "t1", "m1")

    acked_once(workspace, "t1", ["prompt-t1", "m1"])
    [session_id] = agent_sessions(workspace, "t1")
    assert history_ids(workspace, "t1", session_id) == ["prompt-t1", "m1"]
    assert history_text(workspace, "t1", session_id) == "echo: one\necho: while restoring\n"
    assert received_ids(workspace, "t1") == ["prompt-t1", "m1"]


def test_sigterm_ends_a_running_turn_and_the_queue_without_starting_queued_tasks(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=1, idle_swap_after=0)
    first = procs.start_supervisor()
    drop_task(workspace, "busy", "/hang")  # a turn that never ends by itself
    until(workspace, lambda: "prompt-busy" in received_ids(workspace, "busy"), "the turn to run")
    drop_task(workspace, "queued", "hello")
    until(
        workspace,
        lambda: stats(workspace).get("slots", {}).get("queue_depth") == 1,
        "the second task to queue",
    )

    first.terminate()

    assert first.wait() == 0, first.output()
    assert phases(workspace, "busy")[-2:] == ["stopping", "swapped"]
    assert phases(workspace, "queued") == []  # stopping never starts a queued task
    assert all(pid_gone(pid) for pid in agent_pids(workspace, "busy"))
    in_flight = [r["op"] for r in wal(workspace, "busy") if r.get("id") == "prompt-busy"]
    assert in_flight == ["msg", "sent"]  # cut short: in doubt until the next boot

    procs.start_supervisor()
    wait_acked(workspace, "queued", "prompt-queued")
    wait_acked(workspace, "busy", "prompt-busy")
    assert [r["stop"] for r in acks(workspace, "busy")["prompt-busy"]] == ["recovered"]
    assert received_ids(workspace, "busy") == ["prompt-busy"]  # not sent twice


def test_a_restarted_supervisor_publishes_stats_at_once_even_with_nothing_to_do(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=2, idle_swap_after=0)
    first = procs.start_supervisor()
    drop_task(workspace, "t1", "hello")
    wait_acked(workspace, "t1", "prompt-t1")
    until(workspace, lambda: task_phase(workspace, "t1") == "waiting", "t1 to wait")
    first.kill()
    first.wait()

    second = procs.start_supervisor()

    snapshot = until_stats(
        workspace, lambda s: s["pid"] == second.pid, "stats.json from the new supervisor"
    )
    assert snapshot["tasks"] == {"waiting": 1}
    assert snapshot["slots"] == {"max_live": 2, "live": 0, "queue_depth": 0}


# -- restores that fail -----------------------------------------------------------------------


def test_a_failed_load_under_on_load_failure_fail_fails_the_task_with_the_reason(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=2, idle_swap_after=0.3)
    procs.start_supervisor()
    drop_task(workspace, "t1", "hello", profile="failload")
    wait_acked(workspace, "t1", "prompt-t1")
    until(workspace, lambda: swaps(workspace, "out", "t1"), "the idle swap-out")

    drop_message(workspace, "t1", "m1", "are you there")
    until(workspace, lambda: task_phase(workspace, "t1") == "failed", "t1 to fail")

    record = task_record(workspace, "t1")
    assert record is not None
    assert "session/load" in record["error"] and "failed" in record["error"]
    assert record["finished_by"] == "supervisor"
    [note] = notes(workspace, "t1", "load-failed")
    assert note["policy"] == "fail"
    until(
        workspace,
        lambda: any(r["op"] == "drop" and r["id"] == "m1" for r in wal(workspace, "t1")),
        "m1 to be dropped",
    )
    assert "m1" not in received_ids(workspace, "t1")
    assert phases(workspace, "t1")[-1] == "swapped"  # the slot was given back


def test_a_failed_load_under_on_load_failure_fresh_starts_a_new_session_with_the_context_first(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=2, idle_swap_after=0.3)
    procs.start_supervisor()
    drop_task(workspace, "t1", "remember the word banana", profile="freshload")
    wait_acked(workspace, "t1", "prompt-t1")
    record = task_record(workspace, "t1")
    assert record is not None
    old_session = record["session_id"]
    until(workspace, lambda: swaps(workspace, "out", "t1"), "the idle swap-out")

    drop_message(workspace, "t1", "m1", "what was the word")
    wait_acked(workspace, "t1", "m1")
    until(workspace, lambda: task_phase(workspace, "t1") == "waiting", "t1 to wait again")

    record = task_record(workspace, "t1")
    assert record is not None
    assert record["last_load"] == "fresh-with-context"
    assert record["session_id"] != old_session
    assert sorted(agent_sessions(workspace, "t1")) == sorted([old_session, record["session_id"]])
    [context] = [r for r in wal(workspace, "t1") if r["op"] == "msg" and r["from"] == "supervisor"]
    assert context["id"].startswith("context-")
    acked_once(workspace, "t1", ["prompt-t1", context["id"], "m1"])
    # The new session heard the old conversation before the waiting message.
    assert history_ids(workspace, "t1", record["session_id"]) == [context["id"], "m1"]
    [context_prompt] = [r for r in received(workspace, "t1") if r["messageId"] == context["id"]]
    assert (
        "user: [meta-harness message id=prompt-t1 from=user]\nremember the word banana"
        in (context_prompt["text"])
    )
    assert "agent: echo: remember the word banana" in context_prompt["text"]
    [note] = notes(workspace, "t1", "load-failed")
    assert note["policy"] == "fresh"


def test_a_restore_that_keeps_failing_spends_the_budget_fails_the_task_and_frees_the_slot(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, max_live=1, idle_swap_after=0.3)
    procs.start_supervisor()
    drop_task(workspace, "t1", "hello", profile="norestore")
    wait_acked(workspace, "t1", "prompt-t1")
    until(workspace, lambda: swaps(workspace, "out", "t1"), "the idle swap-out")

    drop_message(workspace, "t1", "m1", "come back")
    until(workspace, lambda: task_phase(workspace, "t1") == "failed", "t1 to fail")
    drop_task(workspace, "t2", "next")
    wait_acked(workspace, "t2", "prompt-t2")

    record = task_record(workspace, "t1")
    assert record is not None
    assert re.match(
        r"restart budget exhausted: 3 failures in 600 s \(last: .*initialize", record["error"]
    )
    assert len(notes(workspace, "t1", "spawn")) == 4  # the first session, then three attempts
    assert [r["reason"] for r in wal(workspace, "t1") if r["op"] == "drop"] == ["task failed"]
    assert phases(workspace, "t1").count("restoring") == 3
    assert peak_slot_holders(events(workspace)) == 1
