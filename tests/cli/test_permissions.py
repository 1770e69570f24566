"""`permissions`, `approve`, `reject`: pending requests listed, answers published beside them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from meta_harness.base.layout import Workspace
from meta_harness.cli.state import PENDING
from meta_harness.domain.permissions import Decision, RequestStatus, parse_answer
from tests.cli.conftest import Cli, make_task

TASK = "t-perm"


def request(ws: Workspace, request_id: str, status: str = "pending", **fields: object) -> Path:
    record = {
        "id": request_id,
        "task": TASK,
        "status": status,
        "kind": "edit",
        "title": f"Edit {request_id}.txt",
        "created_at": 1.0,
        **fields,
    }
    path = ws.task(TASK).permissions / f"{request_id}.json"
    path.write_bytes(orjson.dumps(record))
    return path


@pytest.fixture
def task(ws: Workspace) -> None:
    make_task(ws, TASK)


def test_the_cli_pending_status_is_the_domains() -> None:
    assert RequestStatus.PENDING.value == PENDING


def test_permissions_lists_only_pending_requests_of_every_task(
    run: Cli, ws: Workspace, task: None
) -> None:
    request(ws, "perm-aaa")
    request(ws, "perm-bbb", status="answered", decision="allow")
    make_task(ws, "t-other")
    (ws.task("t-other").permissions / "perm-ccc.json").write_bytes(
        orjson.dumps({"id": "perm-ccc", "status": "pending", "kind": "execute", "title": "Run ls"})
    )
    out = run.json("permissions")
    assert sorted((r["task"], r["id"]) for r in out["requests"]) == [
        ("t-other", "perm-ccc"),
        (TASK, "perm-aaa"),
    ]
    text = run.ok("permissions")
    assert "perm-aaa  edit" in text.stdout and "perm-bbb" not in text.stdout
    assert "no supervisor is running" in text.stderr


def test_approve_publishes_an_answer_the_gate_parses(
    run: Cli, ws: Workspace, task: None, supervisor_running: None
) -> None:
    request(ws, "perm-aaa")
    out = run.json("approve", "t-pe", "perm-a", "--always")
    assert out == {"task": TASK, "request": "perm-aaa", "decision": "allow", "always": True}
    answer = ws.task(TASK).permissions / "perm-aaa.answer.json"
    assert parse_answer(orjson.loads(answer.read_bytes())) == (Decision.ALLOW, True, "cli", "")


def test_reject_publishes_a_rejection_with_its_reason(
    run: Cli, ws: Workspace, task: None, supervisor_running: None
) -> None:
    request(ws, "perm-aaa")
    assert run.ok("reject", TASK, "perm-aaa", "--reason", "not that file").stdout == (
        f"reject: perm-aaa of {TASK}\n"
    )
    answer = ws.task(TASK).permissions / "perm-aaa.answer.json"
    assert parse_answer(orjson.loads(answer.read_bytes())) == (
        Decision.REJECT,
        False,
        "cli",
        "not that file",
    )


def test_a_request_that_is_not_pending_cannot_be_answered(
    run: Cli, ws: Workspace, task: None, supervisor_running: None
) -> None:
    request(ws, "perm-aaa", status="answered", decision="reject", answered_by="timeout")
    result = run("approve", TASK, "perm-aaa")
    assert result.exit_code == 4
    assert (
        result.stderr
        == "error: request perm-aaa is not pending: already answered (reject, by timeout)\n"
    )
    assert not (ws.task(TASK).permissions / "perm-aaa.answer.json").exists()


def test_a_request_answered_once_cannot_be_answered_again(
    run: Cli, ws: Workspace, task: None, supervisor_running: None
) -> None:
    request(ws, "perm-aaa")
    run.ok("approve", TASK, "perm-aaa")
    result = run("reject", TASK, "perm-aaa")
    assert result.exit_code == 4 and "already has an answer waiting" in result.stderr


def test_without_a_running_supervisor_no_agent_waits_on_a_request(
    run: Cli, ws: Workspace, task: None
) -> None:
    request(ws, "perm-aaa")
    result = run("approve", TASK, "perm-aaa")
    assert result.exit_code == 4 and "no supervisor is running" in result.stderr


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ("perm-", 2, "error: request prefix 'perm-' is ambiguous: perm-aaa, perm-abb\n"),
        ("perm-x", 3, f"error: task {TASK} has no permission request 'perm-x'\n"),
        ("../x", 2, "error: invalid permission request id '../x'\n"),
    ],
)
def test_a_request_id_must_name_exactly_one_request(
    run: Cli, ws: Workspace, task: None, supervisor_running: None, ref: str, code: int, message: str
) -> None:
    request(ws, "perm-aaa")
    request(ws, "perm-abb")
    result = run("approve", TASK, ref)
    assert (result.exit_code, result.stderr) == (code, message)
