"""`submit`, `send`, `cancel`, `complete`: what they publish parses as the supervisor parses it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import Control, parse_message_drop, parse_task_drop
from meta_harness.domain.phases import TaskPhase
from tests.cli.conftest import Cli, make_task


def only_file(directory: Path) -> tuple[str, bytes]:
    files = [p for p in directory.iterdir() if not p.name.startswith(".")]
    assert len(files) == 1, files
    return files[0].name, files[0].read_bytes()


def test_submit_publishes_a_task_drop_that_the_supervisor_parses(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-parent")
    result = run.ok(
        "submit",
        "fix the bug",
        "--profile",
        "claude",
        "--title",
        "Bug",
        "--oneshot",
        "--parent",
        "t-par",
        "--id",
        "t-mine",
    )
    assert result.stdout == "t-mine\n"
    name, data = only_file(ws.inbox)
    drop = parse_task_drop(name, data)
    assert (drop.task_id, drop.title, drop.profile, drop.parent, drop.mode) == (
        "t-mine",
        "Bug",
        "claude",
        "t-parent",
        "oneshot",
    )
    assert drop.message.content == [{"type": "text", "text": "fix the bug"}]
    assert drop.message.sender == "cli"
    assert "no supervisor is running" in result.stderr


def test_submit_reads_the_prompt_from_stdin_and_prints_json(run: Cli, ws: Workspace) -> None:
    out = orjson.loads(run.ok("submit", "-", "--json", input="line one\nline two\n").stdout)
    assert out["id"].startswith("t-") and out["profile"] == "demo"
    drop = parse_task_drop(*only_file(ws.inbox))
    assert drop.task_id == out["id"]
    assert drop.message.content[0]["text"] == "line one\nline two\n"
    assert drop.title == "line one"


def test_submit_with_an_unknown_profile_is_one_line_and_exit_2(run: Cli, ws: Workspace) -> None:
    result = run("submit", "x", "--profile", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no profile named 'nope' (known: ")
    assert result.stderr.count("\n") == 1
    assert list(ws.inbox.iterdir()) == []


def test_submit_refuses_a_task_id_already_taken(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-taken")
    assert run("submit", "x", "--id", "t-taken").exit_code == 4
    assert run("submit", "x", "--id", "../evil").exit_code == 2


def test_send_publishes_a_message_that_the_supervisor_parses(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-0k3fabc")
    message_id = run.ok("send", "t-0k3", "also update the changelog").stdout.strip()
    name, data = only_file(ws.task("t-0k3fabc").inbox)
    drop = parse_message_drop(name, data)
    assert name == f"{message_id}.json"
    assert (drop.id, drop.sender, drop.control) == (message_id, "cli", None)
    assert drop.content == [{"type": "text", "text": "also update the changelog"}]


def test_send_json_names_task_and_message(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-json")
    out = run.json("send", "t-json", "hi")
    assert out["task"] == "t-json" and out["message"].startswith("m-")
    assert out["supervisor_running"] is False


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ("t-a", 2, "error: task prefix 't-a' is ambiguous: 2 tasks match (t-aa1, t-aa2)\n"),
        ("t-zz", 3, "error: no task 't-zz' in {root}\n"),
        ("a/b", 2, "error: invalid task id 'a/b'"),
    ],
)
def test_a_task_prefix_must_name_exactly_one_task(
    run: Cli, ws: Workspace, ref: str, code: int, message: str
) -> None:
    make_task(ws, "t-aa1")
    make_task(ws, "t-aa2")
    result = run("send", ref, "hi")
    assert result.exit_code == code
    assert result.stderr.startswith(message.format(root=ws.root))
    assert result.stderr.count("\n") == 1


def test_a_task_still_queued_in_the_inbox_cannot_take_messages_yet(run: Cli, ws: Workspace) -> None:
    task_id = run.ok("submit", "queued").stdout.strip()
    result = run("send", task_id, "hi")
    assert result.exit_code == 4
    assert f"task {task_id} is still queued in inbox/{task_id}.json" in result.stderr


def test_nothing_can_be_sent_to_a_task_that_ended(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-done", phase=TaskPhase.DONE)
    for args in (("send", "t-done", "hi"), ("cancel", "t-done"), ("complete", "t-done")):
        result = run(*args)
        assert result.exit_code == 4
        assert (
            result.stderr
            == "error: task t-done has already ended (done); nothing more can be sent to it\n"
        )


def test_cancel_publishes_a_cancel_control(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-c")
    out = run.json("cancel", "t-c")
    drop = parse_message_drop(*only_file(ws.task("t-c").inbox))
    assert (drop.id, drop.control, drop.content) == (out["message"], Control.CANCEL, [])


def test_complete_publishes_a_complete_control_with_the_result(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-c")
    run.ok("complete", "t-c", "-", input="all done\n")
    drop = parse_message_drop(*only_file(ws.task("t-c").inbox))
    assert (drop.control, drop.result) == (Control.COMPLETE, "all done\n")


def test_send_timeout_without_wait_is_a_usage_error(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-x")
    result = run("send", "t-x", "hi", "--timeout", "3")
    assert result.exit_code == 2
    assert result.stderr == "error: --timeout only applies with --wait\n"
