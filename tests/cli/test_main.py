"""The command as a whole: one-line errors, `--help` snapshot, and no heavy imports.

Set `UPDATE_SNAPSHOTS=1` to rewrite `snapshots/help.txt` after a deliberate change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from meta_harness.base.layout import Workspace
from meta_harness.cli.main import COMMANDS, cli
from tests.cli.conftest import Cli, make_task

SNAPSHOT = Path(__file__).parent / "snapshots" / "help.txt"
HEAVY = ("acp", "mcp", "starlette", "uvicorn", "httpx", "httpx2", "pydantic")


def test_outside_a_workspace_commands_say_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["ls"])
    assert result.exit_code == 66
    assert result.stderr == (
        f"error: {tmp_path} is not inside a meta-harness workspace; "
        "run `meta-harness init DIR` or pass --workspace DIR\n"
    )


def test_a_file_system_error_is_one_line_with_exit_74(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-broken")
    inbox = ws.task("t-broken").inbox
    inbox.rmdir()
    inbox.write_text("a file where the inbox directory should be")
    result = run("send", "t-broken", "hi")
    assert result.exit_code == 74
    assert result.stderr == f"error: File exists: {inbox}\n"


def test_user_errors_print_one_line_and_no_traceback(ws: Workspace) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "meta_harness", "-w", str(ws.root), "show", "t-nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr == f"error: no task 't-nope' in {ws.root}\n"
    assert proc.stdout == ""


def help_text() -> str:
    runner = CliRunner()
    parts = []
    for args in ([], *([name] for name in COMMANDS), ["config", "show"], ["config", "check"]):
        result = runner.invoke(
            cli,
            [*args, "--help"],
            prog_name="meta-harness",
            terminal_width=100,
            catch_exceptions=False,
        )
        assert result.exit_code == 0
        parts.append(f"$ meta-harness {' '.join([*args, '--help'])}\n{result.stdout}")
    return "\n".join(parts)


def test_help_matches_the_snapshot() -> None:
    text = help_text()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "help changed: rerun with UPDATE_SNAPSHOTS=1 if intended"


PROBE = """
import json, sys
from click.testing import CliRunner
from meta_harness.cli.main import cli
result = CliRunner().invoke(cli, sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"exit": result.exit_code, "heavy": heavy, "output": result.output}))
"""


def imports_of(*args: str) -> dict[str, Any]:
    """Run one command in a fresh interpreter; which heavy packages did it import?"""
    code = PROBE.replace("HEAVY", repr(json.dumps(HEAVY)))
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["ls"], set()),
        (["ls", "--json"], set()),
        (["show", "t-imp"], set()),
        (["send", "t-imp", "hi"], set()),
        (["send", "t-imp", "hi", "--wait", "--timeout", "0.1"], set()),
        (["logs", "t-imp"], set()),
        (["submit", "hello"], {"pydantic"}),  # checks the profile: the config models
    ],
)
def test_read_and_drop_commands_import_nothing_heavy(
    ws: Workspace, args: list[str], allowed: set[str]
) -> None:
    make_task(ws, "t-imp")
    result = imports_of("-w", str(ws.root), *args)
    assert result["exit"] in (0, 124), result["output"]
    assert set(result["heavy"]) <= allowed
