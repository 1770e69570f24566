"""Per-task tokens: genuine ones verify, anything else is refused without raising."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from meta_harness.base.layout import Workspace
from meta_harness.base.tokens import task_of, task_token, workspace_secret

SECRET = b"0123456789abcdef" * 4


def test_a_task_token_verifies_as_its_task() -> None:
    token = task_token(SECRET, "t-abc")
    assert token.startswith("t-abc.")
    assert task_of(SECRET, token) == "t-abc"


def test_a_task_id_with_dots_round_trips() -> None:
    assert task_of(SECRET, task_token(SECRET, "a.b.c")) == "a.b.c"


def test_a_token_for_task_a_does_not_verify_as_task_b() -> None:
    token_a = task_token(SECRET, "task-a")
    mac = token_a.rpartition(".")[2]
    assert task_of(SECRET, f"task-b.{mac}") is None
    assert task_of(SECRET, token_a) == "task-a"


def test_a_token_made_with_another_secret_is_refused() -> None:
    assert task_of(SECRET, task_token(b"other secret", "t1")) is None


def flip_last(token: str) -> str:
    return token[:-1] + ("0" if token[-1] != "0" else "1")


@pytest.mark.parametrize(
    "tamper",
    [
        flip_last,
        lambda t: t[:-1],
        lambda t: t + "0",
        lambda t: t.upper(),
        lambda t: t.rpartition(".")[0],
        lambda t: t.replace(".", "", 1),
        lambda t: t + "é",
        lambda t: t[:-1] + "é",
        lambda t: "",
        lambda t: ".",
        lambda t: "../../etc." + t.rpartition(".")[2],
        lambda t: "\0." + t.rpartition(".")[2],
    ],
    ids=[
        "flipped",
        "shortened",
        "lengthened",
        "upper-case",
        "mac-removed",
        "no-separator",
        "unicode-appended",
        "unicode-inside",
        "empty",
        "only-dot",
        "path-id",
        "nul-id",
    ],
)
def test_a_tampered_token_is_refused_without_raising(tamper: object) -> None:
    token = task_token(SECRET, "t1")
    assert task_of(SECRET, tamper(token)) is None  # type: ignore[operator]


def test_the_workspace_secret_is_made_once_private_and_then_reused(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    first = workspace_secret(ws)
    assert len(first) == 64
    path = ws.state_dir / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert workspace_secret(ws) == first
    token = task_token(first, "t1")
    assert task_of(workspace_secret(ws), token) == "t1"
