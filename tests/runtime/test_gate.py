"""The permission gate with a real supervisor and demo agents: ask, answer, rules, timeout.

The demo agent's `/edit PATH TEXT` asks `session/request_permission` (kind edit, title
"Edit PATH", all four option kinds) and reports the outcome as agent text; `/ask KIND
TITLE` asks for any kind. Tests observe only files: the request files under
`tasks/<id>/permissions/`, `events.jsonl`, the WAL, the transcript and the files the
agent wrote. Answers come from the real CLI (`approve`, `reject`, in-process) or are
dropped by hand, as any surface would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from click.testing import CliRunner, Result

from meta_harness.cli.main import cli
from tests.support.procs import (
    Procs,
    acks,
    agent_text,
    all_acked,
    drop_control,
    drop_message,
    drop_task,
    events,
    notes,
    publish,
    task_phase,
    wait_for,
)

T = TypeVar("T")

RULES_TOML = """
[profiles.ruled]
extends = "default"

[profiles.ruled.permissions]
rules = [
  { title = "Edit *secret*", action = "reject" },
  { kind = "edit", action = "allow" },
]

[profiles.guarded]
extends = "default"

[profiles.guarded.permissions]
rules = [{ title = "Edit *secret*", action = "reject" }]

[profiles.hasty]
extends = "default"

[profiles.hasty.permissions]
timeout = 1
"""


# -- helpers ----------------------------------------------------------------------------------


def until(ws: Path, condition: Callable[[], T], what: str) -> T:
    return wait_for(condition, watch_dir=ws, what=what)


def request_files(ws: Path, task_id: str) -> list[Path]:
    """`permissions/<req>.json` of a task (not answers, not set-aside files), oldest first."""
    directory = ws / "tasks" / task_id / "permissions"
    found = [
        p
        for p in directory.glob("*.json")
        if not p.name.endswith(".answer.json") and not p.name.startswith(".")
    ]
    return sorted(found, key=lambda p: orjson.loads(p.read_bytes())["created_at"])


def request(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(path.read_bytes())
    return value


def pending_request(ws: Path, task_id: str, *, count: int = 1) -> Path:
    """Wait until the task has `count` request files, the last one pending; return it."""

    def check() -> Path | None:
        files = request_files(ws, task_id)
        if len(files) == count and request(files[-1])["status"] == "pending":
            return files[-1]
        return None

    return until(ws, check, f"{task_id}: permission request #{count} to be pending")


def wait_acked(ws: Path, task_id: str, *ids: str) -> None:
    until(ws, lambda: all_acked(ws, task_id, ids), f"{task_id}: acks of {ids}")


def permission_notes(ws: Path, task_id: str) -> list[dict[str, Any]]:
    return notes(ws, task_id, "permission")


def run_cli(ws: Path, *args: str) -> Result:
    """`meta-harness -w WS ARGS…`, in-process (these commands only read and drop files)."""
    return CliRunner().invoke(cli, ["-w", str(ws), *args], catch_exceptions=False)


def configure(ws: Path, *, idle_swap_after: float = 600.0) -> None:
    (ws / "meta-harness.toml").write_text(
        f"[supervisor]\nidle_swap_after = {idle_swap_after}\n" + RULES_TOML
    )


@pytest.fixture(autouse=True)
def isolated_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process CLI sees no user config and no META_HARNESS_* of the caller."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for key in [k for k in os.environ if k.startswith("META_HARNESS_")]:
        monkeypatch.delenv(key)


# -- ask and answer ---------------------------------------------------------------------------


def test_an_edit_waits_for_approval_while_another_task_works_and_approve_writes_the_file(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(workspace, "editor", "/edit notes.txt hi there")
    path = pending_request(workspace, "editor")

    record = request(path)
    assert record["task"] == "editor"
    assert (record["kind"], record["title"]) == ("edit", f"Edit {workspace / 'notes.txt'}")
    assert {o["kind"] for o in record["options"]} == {
        "allow_once",
        "allow_always",
        "reject_once",
        "reject_always",
    }
    [asked] = [
        e for e in events(workspace) if e["type"] == "permission" and e.get("status") == "pending"
    ]
    assert (asked["task"], asked["request"], asked["kind"]) == ("editor", path.stem, "edit")

    # Only that tool call waits: another task is served meanwhile.
    drop_task(workspace, "other", "hello")
    wait_acked(workspace, "other", "prompt-other")
    assert agent_text(workspace, "other") == "echo: hello\n"
    assert "prompt-editor" not in acks(workspace, "editor")
    assert request(path)["status"] == "pending"
    assert not (workspace / "notes.txt").exists()

    result = run_cli(workspace, "approve", "editor", path.stem[:-3])  # a unique prefix
    assert result.exit_code == 0, result.output
    wait_acked(workspace, "editor", "prompt-editor")

    assert (workspace / "notes.txt").read_text() == "hi there"
    assert agent_text(workspace, "editor") == f"edited {workspace / 'notes.txt'}\n"
    answered = request(path)
    assert answered["status"] == "answered"
    assert (answered["decision"], answered["answered_by"], answered["always"]) == (
        "allow",
        "cli",
        False,
    )
    assert not path.with_name(path.stem + ".answer.json").exists()  # taken by the gate
    [note] = permission_notes(workspace, "editor")
    assert (note["decision"], note["by"], note["option"]) == ("allow", "cli", "allow-once")
    assert [
        e["status"]
        for e in events(workspace)
        if e["type"] == "permission" and e.get("task") == "editor"
    ] == ["pending", "answered"]


def test_a_rejected_edit_says_permission_denied_and_writes_nothing(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(workspace, "editor", "/edit notes.txt hi")
    path = pending_request(workspace, "editor")

    result = run_cli(workspace, "reject", "editor", path.stem, "--reason", "not today")
    assert result.exit_code == 0, result.output
    wait_acked(workspace, "editor", "prompt-editor")

    assert agent_text(workspace, "editor") == "permission denied\n"
    assert not (workspace / "notes.txt").exists()
    answered = request(path)
    assert (answered["decision"], answered["answered_by"], answered["reason"]) == (
        "reject",
        "cli",
        "not today",
    )
    [note] = permission_notes(workspace, "editor")
    assert (note["decision"], note["by"], note["option"]) == ("reject", "cli", "reject-once")
    # An answered request cannot be answered again.
    again = run_cli(workspace, "approve", "editor", path.stem)
    assert again.exit_code != 0
    assert "not pending" in again.output


def test_an_always_answer_is_not_asked_again_in_the_task_even_after_a_swap(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace, idle_swap_after=0.5)
    procs.start_supervisor()
    drop_task(workspace, "editor", "/edit a.txt one", profile="guarded")
    path = pending_request(workspace, "editor")
    result = run_cli(workspace, "approve", "editor", path.stem, "--always")
    assert result.exit_code == 0, result.output
    wait_acked(workspace, "editor", "prompt-editor")
    assert (workspace / "a.txt").read_text() == "one"

    # The session swaps out when idle; the next agent process has forgotten the answer,
    # the gate has not (it reads it back from the answered request file). A profile
    # rule still decides the calls it matches: the remembered answer stands in for asking.
    until(
        workspace,
        lambda: [
            e
            for e in events(workspace)
            if e["type"] == "swap" and e.get("task") == "editor" and e["direction"] == "out"
        ],
        "the idle swap-out",
    )
    drop_message(workspace, "editor", "m1", "/edit my-secret.txt no\n/edit b.txt two")
    wait_acked(workspace, "editor", "m1")

    assert (workspace / "b.txt").read_text() == "two"
    assert not (workspace / "my-secret.txt").exists()
    assert request_files(workspace, "editor") == [path]  # no new request
    assert notes(workspace, "editor", "session-resumed")
    first, secret, second = permission_notes(workspace, "editor")
    # the gate remembers "always" itself and answers the agent with a once-option
    assert (first["by"], first["always"], first["option"]) == ("cli", True, "allow-once")
    assert (secret["decision"], secret["by"]) == ("reject", "rule 1 (title=Edit *secret*)")
    assert (second["decision"], second["by"]) == ("allow", "remembered always-answer")
    assert agent_text(workspace, "editor") == (
        f"edited {workspace / 'a.txt'}\npermission denied\nedited {workspace / 'b.txt'}\n"
    )


def test_an_answer_file_dropped_by_hand_works_and_a_malformed_one_is_set_aside(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(workspace, "editor", "/edit notes.txt by hand")
    path = pending_request(workspace, "editor")
    answer = path.with_name(path.stem + ".answer.json")

    publish(answer, {"decision": "maybe", "by": "alice"})
    set_aside = answer.with_name(answer.name + ".rejected")
    until(workspace, set_aside.exists, "the malformed answer to be set aside")
    assert not answer.exists()
    assert request(path)["status"] == "pending"
    [rejected] = [
        e for e in events(workspace) if e["type"] == "rejected" and e.get("task") == "editor"
    ]
    assert rejected["file"] == answer.name and "decision" in rejected["reason"]
    assert run_cli(workspace, "permissions", "--json").exit_code == 0

    publish(answer, {"decision": "allow", "by": "alice", "reason": "looks fine"})
    wait_acked(workspace, "editor", "prompt-editor")
    assert (workspace / "notes.txt").read_text() == "by hand"
    answered = request(path)
    assert (answered["answered_by"], answered["reason"]) == ("alice", "looks fine")
    [note] = permission_notes(workspace, "editor")
    assert (note["by"], note["reason"]) == ("alice", "looks fine")


def test_permissions_lists_the_pending_requests_of_every_task(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(workspace, "one", "/edit one.txt 1")
    drop_task(workspace, "two", "/ask execute Run make")
    first = pending_request(workspace, "one")
    second = pending_request(workspace, "two")

    result = run_cli(workspace, "permissions", "--json")
    assert result.exit_code == 0, result.output
    listing = orjson.loads(result.stdout)
    assert listing["supervisor_running"] is True
    found = {(r["task"], r["id"]) for r in listing["requests"]}
    assert found == {("one", first.stem), ("two", second.stem)}

    assert run_cli(workspace, "approve", "two", second.stem).exit_code == 0
    wait_acked(workspace, "two", "prompt-two")
    assert agent_text(workspace, "two") == "permission: allow_once\n"
    listing = orjson.loads(run_cli(workspace, "permissions", "--json").stdout)
    assert [(r["task"], r["id"]) for r in listing["requests"]] == [("one", first.stem)]


# -- decided without asking -------------------------------------------------------------------


def test_profile_rules_and_builtin_defaults_decide_without_asking(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(
        workspace,
        "ruled",
        "/edit notes.txt ok\n/edit my-secret.txt no",
        profile="ruled",
    )
    drop_task(workspace, "reader", "/ask read Read notes\n/ask think Ponder")
    wait_acked(workspace, "ruled", "prompt-ruled")
    wait_acked(workspace, "reader", "prompt-reader")

    edited = f"edited {workspace / 'notes.txt'}\n"
    assert agent_text(workspace, "ruled") == edited + "permission denied\n"
    assert (workspace / "notes.txt").read_text() == "ok"
    assert not (workspace / "my-secret.txt").exists()
    assert agent_text(workspace, "reader") == ("permission: allow_once\npermission: allow_once\n")
    for task_id in ("ruled", "reader"):
        assert request_files(workspace, task_id) == []
    assert not [e for e in events(workspace) if e["type"] == "permission"]
    allowed, rejected = permission_notes(workspace, "ruled")
    assert (allowed["decision"], allowed["by"]) == ("allow", "rule 2 (kind=edit)")
    assert (rejected["decision"], rejected["by"]) == ("reject", "rule 1 (title=Edit *secret*)")
    assert [(n["decision"], n["by"]) for n in permission_notes(workspace, "reader")] == [
        ("allow", "rule 1 (kind=read)"),
        ("allow", "rule 3 (kind=think)"),
    ]


def test_an_unanswered_request_is_rejected_when_the_timeout_passes(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(workspace, "hasty", "/edit notes.txt late", profile="hasty")
    wait_acked(workspace, "hasty", "prompt-hasty")

    assert agent_text(workspace, "hasty") == "permission denied\n"
    assert not (workspace / "notes.txt").exists()
    [path] = request_files(workspace, "hasty")
    answered = request(path)
    assert (answered["status"], answered["decision"], answered["answered_by"]) == (
        "answered",
        "reject",
        "timeout",
    )
    assert answered["reason"] == "no answer within 1 s"
    [note] = permission_notes(workspace, "hasty")
    assert (note["by"], note["reason"]) == ("timeout", "no answer within 1 s")


def test_cancelling_the_task_answers_its_pending_request_cancelled_and_ends_the_turn(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    procs.start_supervisor()
    drop_task(workspace, "editor", "/edit notes.txt never")
    path = pending_request(workspace, "editor")

    drop_control(workspace, "editor", "stop", "cancel")
    until(workspace, lambda: task_phase(workspace, "editor") == "cancelled", "the cancel")
    wait_acked(workspace, "editor", "prompt-editor", "stop")

    [ack] = acks(workspace, "editor")["prompt-editor"]
    assert ack["stop"] == "cancelled"
    answered = request(path)
    assert (answered["status"], answered["decision"], answered["answered_by"]) == (
        "answered",
        "cancelled",
        "supervisor",
    )
    assert not (workspace / "notes.txt").exists()
    [note] = permission_notes(workspace, "editor")
    assert (note["decision"], note["by"], note["option"]) == ("cancelled", "supervisor", None)
    listing = orjson.loads(run_cli(workspace, "permissions", "--json").stdout)
    assert listing["requests"] == []


def test_a_supervisor_stop_answers_a_pending_request_cancelled_and_notes_it(
    procs: Procs, workspace: Path
) -> None:
    configure(workspace)
    supervisor = procs.start_supervisor()
    drop_task(workspace, "editor", "/edit notes.txt never")
    path = pending_request(workspace, "editor")

    supervisor.terminate()
    assert supervisor.wait() == 0

    answered = request(path)
    assert (answered["status"], answered["decision"], answered["answered_by"]) == (
        "answered",
        "cancelled",
        "supervisor",
    )
    [note] = permission_notes(workspace, "editor")
    assert (note["decision"], note["by"], note["option"]) == ("cancelled", "supervisor", None)
    assert "prompt-editor" not in acks(workspace, "editor")  # in doubt, for the next boot
    listing = orjson.loads(run_cli(workspace, "permissions", "--json").stdout)
    assert listing == {"supervisor_running": False, "requests": []}
