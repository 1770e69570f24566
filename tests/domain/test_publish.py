"""The one publisher of drop and answer files that the CLI, the web API and the MCP tools share.

What it publishes must parse as the supervisor parses it; what it refuses (hostile ids,
oversized fields, text that is not UTF-8, malformed shapes) must be refused before any
file exists, with a `UsageError` that says what to fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from meta_harness.base.errors import InvalidId, UsageError
from meta_harness.base.layout import Workspace
from meta_harness.domain import publish
from meta_harness.domain.drops import Control, parse_message_drop, parse_task_drop
from meta_harness.domain.permissions import Decision, parse_answer

HUGE = 9 * 1024 * 1024  # above the default max_drop_bytes: the size limit is the supervisor's
BAD_UTF8 = "caf\udce9"  # b"caf\xe9" as Python decodes undecodable argv bytes (surrogateescape)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.at(tmp_path / "ws")
    workspace.ensure_dirs()
    workspace.task("t-a").inbox.mkdir(parents=True)
    workspace.task("t-a").permissions.mkdir(parents=True)
    return workspace


def files_under(root: Path) -> list[str]:
    """Every file in the test's whole tmp tree (a traversal would land outside the workspace)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def only_file(directory: Path) -> Path:
    [path] = list(directory.iterdir())
    assert not path.name.startswith("."), "a temp file was left behind"
    return path


# -- what is published --------------------------------------------------------------------------


def test_a_new_task_is_a_drop_in_the_workspace_inbox_that_the_supervisor_parses(
    ws: Workspace,
) -> None:
    fields = publish.task_fields(
        "fix it", title="Fix", profile="demo", parent="t-a", mode="oneshot"
    )
    drop = publish.publish_task(ws, fields, sender="cli", task_id="t-new")

    path = only_file(ws.inbox)
    assert path.name == "t-new.json"
    assert parse_task_drop(path.name, path.read_bytes()) == drop
    assert (drop.task_id, drop.title, drop.profile, drop.parent, drop.mode) == (
        "t-new",
        "Fix",
        "demo",
        "t-a",
        "oneshot",
    )
    assert (drop.message.sender, drop.message.content) == (
        "cli",
        [{"type": "text", "text": "fix it"}],
    )


def test_a_task_without_an_id_gets_a_new_one_and_the_surfaces_prefix_names_its_file(
    ws: Workspace,
) -> None:
    drop = publish.publish_task(ws, {"prompt": "x"}, sender="web", name_prefix="web-")
    assert drop.task_id is not None and drop.task_id.startswith("t-")
    assert only_file(ws.inbox).name == f"web-{drop.task_id}.json"


def test_task_fields_leave_out_what_was_not_given() -> None:
    assert publish.task_fields("p", title="", profile=None, parent=None, mode=None) == {
        "prompt": "p"
    }


def test_a_text_message_goes_into_the_tasks_inbox(ws: Workspace) -> None:
    drop = publish.publish_text(ws, "t-a", "more please", sender="task:t-root")
    path = only_file(ws.task("t-a").inbox)
    assert path.name == f"{drop.id}.json" and drop.id.startswith("m-")
    assert parse_message_drop(path.name, path.read_bytes()) == drop
    assert (drop.sender, drop.content) == ("task:t-root", [{"type": "text", "text": "more please"}])


def test_a_message_published_again_with_its_id_replaces_its_own_file(ws: Workspace) -> None:
    for text in ("first", "second"):
        publish.publish_text(ws, "t-a", text, sender="web", message_id="m-42")
    path = only_file(ws.task("t-a").inbox)
    assert path.name == "m-42.json"
    assert parse_message_drop(path.name, path.read_bytes()).content[0]["text"] == "second"


@pytest.mark.parametrize(
    ("control", "result"), [(Control.CANCEL, None), (Control.COMPLETE, "all done")]
)
def test_a_control_is_a_message_whose_id_names_the_control(
    ws: Workspace, control: Control, result: str | None
) -> None:
    drop = publish.publish_control(ws, "t-a", control, sender="agent", result=result)
    assert drop.id.startswith(f"{control.value}-")
    assert (drop.control, drop.result, drop.sender, drop.content) == (control, result, "agent", [])
    path = only_file(ws.task("t-a").inbox)
    assert parse_message_drop(path.name, path.read_bytes()) == drop


def test_an_answer_is_published_beside_its_request_as_the_gate_reads_it(ws: Workspace) -> None:
    path = publish.publish_answer(
        ws, "t-a", "perm-1", decision="allow", always=True, reason="fine", by="cli"
    )
    assert path == ws.task("t-a").permissions / "perm-1.answer.json"
    assert only_file(ws.task("t-a").permissions) == path
    assert parse_answer(orjson.loads(path.read_bytes())) == (Decision.ALLOW, True, "cli", "fine")


# -- hostile input: refused before any file exists ----------------------------------------------


@pytest.mark.parametrize("task_id", ["../evil", "a/b", "..", ".hidden", "", "x" * 65])
def test_hostile_task_ids_are_refused_for_every_kind_of_file(
    ws: Workspace, tmp_path: Path, task_id: str
) -> None:
    before = files_under(tmp_path)
    attempts: list[Any] = [
        lambda: publish.publish_task(ws, {"prompt": "x"}, sender="cli", task_id=task_id),
        lambda: publish.publish_text(ws, task_id, "x", sender="cli"),
        lambda: publish.publish_control(ws, task_id, Control.CANCEL, sender="cli"),
        lambda: publish.publish_answer(ws, task_id, "perm-1", decision="allow", by="cli"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidId, match="invalid task id"):
            attempt()
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("message_id", ["../../escape", "a/b", ".m", "bad id", "m" * 201])
def test_hostile_message_ids_are_refused(ws: Workspace, tmp_path: Path, message_id: str) -> None:
    before = files_under(tmp_path)
    with pytest.raises(InvalidId, match="invalid message id"):
        publish.publish_text(ws, "t-a", "x", sender="web", message_id=message_id)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("request_id", ["../perm", "a/b", "..", "perm 1"])
def test_hostile_request_ids_are_refused(ws: Workspace, tmp_path: Path, request_id: str) -> None:
    before = files_under(tmp_path)
    with pytest.raises(InvalidId, match="invalid permission request id"):
        publish.publish_answer(ws, "t-a", request_id, decision="allow", by="web")
    assert files_under(tmp_path) == before


def test_a_name_prefix_cannot_make_a_path_or_a_hidden_file(ws: Workspace, tmp_path: Path) -> None:
    before = files_under(tmp_path)
    for prefix in ("../", "sub/", "."):
        with pytest.raises(InvalidId, match="invalid drop file name"):
            publish.publish_task(
                ws, {"prompt": "x"}, sender="cli", task_id="t-b", name_prefix=prefix
            )
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    ("fields", "sender", "message"),
    [
        ({"prompt": "x", "title": "t" * 201}, "cli", "field 'title' is longer than 200 characters"),
        ({"prompt": "x", "profile": "p" * 101}, "cli", "field 'profile' is longer than 100"),
        ({"prompt": "x"}, "s" * 201, "field 'from' is longer than 200 characters"),
        ({"prompt": "x"}, "two\nlines", "field 'from' must be one line of text"),
    ],
)
def test_oversized_or_multiline_fields_get_the_parsers_reason(
    ws: Workspace, fields: dict[str, Any], sender: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        publish.publish_task(ws, fields, sender=sender)
    assert message in caught.value.message
    assert list(ws.inbox.iterdir()) == []


def test_a_huge_prompt_is_published_whole_the_size_limit_is_the_supervisors(
    ws: Workspace,
) -> None:
    text = "y" * HUGE
    drop = publish.publish_text(ws, "t-a", text, sender="cli")
    path = only_file(ws.task("t-a").inbox)
    assert parse_message_drop(path.name, path.read_bytes()).content[0]["text"] == text
    assert drop.content[0]["text"] == text


@pytest.mark.parametrize(
    ("publish_it", "field"),
    [
        (lambda ws: publish.publish_task(ws, {"prompt": BAD_UTF8}, sender="cli"), "prompt"),
        (lambda ws: publish.publish_task(ws, {"prompt": "x"}, sender=BAD_UTF8), "from"),
        (lambda ws: publish.publish_text(ws, "t-a", BAD_UTF8, sender="cli"), "text"),
        (
            lambda ws: publish.publish_control(
                ws, "t-a", Control.COMPLETE, sender="cli", result=BAD_UTF8
            ),
            "result",
        ),
        (
            lambda ws: publish.publish_answer(
                ws, "t-a", "perm-1", decision="reject", reason=BAD_UTF8, by="cli"
            ),
            "reason",
        ),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_the_field(
    ws: Workspace, tmp_path: Path, publish_it: Any, field: str
) -> None:
    before = files_under(tmp_path)
    with pytest.raises(UsageError) as caught:
        publish_it(ws)
    assert caught.value.message.startswith(f"field {field!r} is not valid UTF-8 text")
    assert files_under(tmp_path) == before


def test_text_that_is_not_utf8_deep_inside_content_is_refused_too(ws: Workspace) -> None:
    content = [{"type": "text", "text": BAD_UTF8}]
    with pytest.raises(UsageError, match="the drop is not valid UTF-8 text"):
        publish.publish_message(ws, "t-a", {"content": content}, sender="web")
    assert list(ws.task("t-a").inbox.iterdir()) == []


# -- malformed shapes: the supervisor's reasons, as usage errors -------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": "   "}, "field 'prompt' (non-empty text) or 'content' is required"),
        ({"prompt": "x", "content": [{"type": "text", "text": "y"}]}, "not both"),
        ({"prompt": "x", "mode": "forever"}, "field 'mode' must be 'session' or 'oneshot'"),
        ({"content": [{"type": "bogus"}]}, "content[0].type must be one of"),
        ({"prompt": "x", "parent": "../up"}, "field 'parent': invalid task id"),
    ],
)
def test_a_malformed_task_is_a_usage_error_with_the_supervisors_reason(
    ws: Workspace, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        publish.publish_task(ws, fields, sender="web")
    assert message in caught.value.message
    assert (caught.value.exit_code, caught.value.http_status) == (2, 400)
    assert list(ws.inbox.iterdir()) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": ""}, "field 'text' (non-empty text) or 'content' is required"),
        ({}, "field 'text' (non-empty text) or 'content' is required"),
        ({"text": 5}, "field 'text' (non-empty text) or 'content' is required"),
        ({"text": "x", "meta": ["not", "an", "object"]}, "field 'meta' must be an object"),
    ],
)
def test_a_malformed_message_is_a_usage_error_with_the_supervisors_reason(
    ws: Workspace, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        publish.publish_message(ws, "t-a", fields, sender="web")
    assert list(ws.task("t-a").inbox.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"decision": "maybe"}, "field 'decision' must be 'allow' or 'reject'"),
        ({"decision": None}, "field 'decision' must be 'allow' or 'reject'"),
        ({"decision": "allow", "always": "yes"}, "field 'always' must be true or false"),
        ({"decision": "allow", "reason": 5}, "fields 'by' and 'reason' must be strings"),
    ],
)
def test_a_malformed_answer_is_a_usage_error_with_the_gates_reason(
    ws: Workspace, answer: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        publish.publish_answer(ws, "t-a", "perm-1", by="web", **answer)
    assert caught.value.message == message
    assert list(ws.task("t-a").permissions.iterdir()) == []


def test_the_publisher_sets_id_and_sender_itself(ws: Workspace) -> None:
    for fields in ({"prompt": "x", "id": "t-other"}, {"prompt": "x", "from": "root"}):
        with pytest.raises(ValueError, match="set by the publisher"):
            publish.publish_task(ws, fields, sender="cli")
    assert list(ws.inbox.iterdir()) == []
