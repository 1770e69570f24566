"""Workspace paths and the ids that may become path parts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meta_harness.base.errors import InvalidId, WorkspaceError
from meta_harness.base.layout import (
    Workspace,
    new_id,
    validate_message_id,
    validate_request_id,
    validate_task_id,
)

GOOD_TASK_IDS = ["a", "t-0k3f9x2ab7q4", "Task_1.2-b", "9", "x" * 64, "a.b", "a-", "A_"]

BAD_TASK_IDS = {
    "slash": "a/b",
    "leading-slash": "/etc",
    "dot-dot": "..",
    "dot-dot-inside": "a..b",
    "dot-dot-path": "../x",
    "empty": "",
    "too-long": "x" * 65,
    "leading-dot": ".hidden",
    "leading-dash": "-x",
    "leading-underscore": "_x",
    "unicode-letter": "tâche",
    "unicode-digit": "t٣",
    "fullwidth": "ａｂｃ",
    "nul": "a\0b",
    "trailing-newline": "abc\n",
    "inner-newline": "a\nb",
    "space": "a b",
    "backslash": "a\\b",
    "colon": "a:b",
    "not-a-string": 5,
    "none": None,
}


@pytest.mark.parametrize("value", GOOD_TASK_IDS)
def test_a_safe_task_id_is_returned_unchanged(value: str) -> None:
    assert validate_task_id(value) == value
    assert validate_request_id(value) == value


@pytest.mark.parametrize("value", list(BAD_TASK_IDS.values()), ids=list(BAD_TASK_IDS))
def test_an_unsafe_task_id_raises_invalid_id(value: object) -> None:
    with pytest.raises(InvalidId):
        validate_task_id(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidId):
        validate_request_id(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["m1", "file-0123abcdef", "result:t-1", "user@host+1=2", "a.b_c-d", "x" * 200]
)
def test_a_safe_message_id_is_returned_unchanged(value: str) -> None:
    assert validate_message_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "a/b", "../x", "..", ".x", "x" * 201, "é", "a\0", "a\n", "abc\n", "a b", 3],
    ids=[
        "empty",
        "slash",
        "dotdot-path",
        "dotdot",
        "leading-dot",
        "too-long",
        "unicode",
        "nul",
        "newline",
        "trailing-newline",
        "space",
        "not-a-string",
    ],
)
def test_an_unsafe_message_id_raises_invalid_id(value: object) -> None:
    with pytest.raises(InvalidId):
        validate_message_id(value)  # type: ignore[arg-type]


def test_an_invalid_id_error_is_a_usage_error_with_exit_code_2() -> None:
    with pytest.raises(InvalidId) as caught:
        validate_task_id("a/b")
    assert caught.value.exit_code == 2
    assert "a/b" in str(caught.value)


def test_new_ids_are_valid_unique_and_sort_by_time() -> None:
    ids = [new_id("t") for _ in range(5000)]  # many share a millisecond
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert re.fullmatch(r"t-[0-9a-z]{17}", value)
        validate_task_id(value)
    # the first 9 characters after the prefix encode milliseconds, so they never go back
    stamps = [v[2:11] for v in ids]
    assert stamps == sorted(stamps)


def test_task_paths_refuse_an_unsafe_id(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    with pytest.raises(InvalidId):
        ws.task("../../etc")
    assert ws.task("t1").dir == ws.root / "tasks" / "t1"
    assert ws.task("t1").wal == ws.root / "tasks" / "t1" / "inbox.wal.jsonl"


def test_task_ids_lists_only_safe_directories_that_hold_a_task_record(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    for name in ("t2", "t1", ".hidden", "no-record"):
        (ws.tasks_dir / name).mkdir(parents=True)
    for name in ("t2", "t1", ".hidden"):
        (ws.tasks_dir / name / "task.json").write_text("{}")
    assert ws.task_ids() == ["t1", "t2"]


def test_task_ids_of_a_workspace_without_tasks_is_empty(tmp_path: Path) -> None:
    assert Workspace.at(tmp_path).task_ids() == []


def test_find_walks_up_to_the_directory_holding_the_config(tmp_path: Path) -> None:
    (tmp_path / "meta-harness.toml").write_text("")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert Workspace.find(deep).root == tmp_path.resolve()


def test_find_outside_any_workspace_raises_workspace_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not inside a meta-harness workspace"):
        Workspace.find(tmp_path)


def test_ensure_dirs_makes_the_tree(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    ws.root.mkdir()
    ws.ensure_dirs()
    for d in (ws.inbox, ws.tasks_dir, ws.state_dir, ws.rejected_dir):
        assert d.is_dir()
    assert ws.require() is ws
    with pytest.raises(WorkspaceError):
        Workspace.at(tmp_path / "absent").require()
