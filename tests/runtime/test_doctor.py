"""`meta-harness agents doctor`: real agent processes started as a task would start them.

The command runs in-process (click's runner) against a workspace whose config defines
agents that work (the demo agent), are not installed, or exit at once. The `procs`
fixture fails a test if any process carrying the workspace marker outlives it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from meta_harness.cli.main import cli
from tests.support.procs import Procs

AGENTS_TOML = """
[agents.ghost]
command = ["meta-harness-no-such-agent", "--acp"]

[agents.quitter]
command = ["false"]

[agents.grumbler]
command = ["sh", "-c", "echo 'cannot find my API key' >&2; exit 3"]
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: Path) -> None:
    """No user config, no META_HARNESS_* of the caller; the workspace defines the agents.

    Temporary files (the doctor's scratch and log directories) go to the test's tmp dir.
    """
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    for key in [k for k in os.environ if k.startswith("META_HARNESS_")]:
        monkeypatch.delenv(key)
    (workspace / "meta-harness.toml").write_text(AGENTS_TOML)


def doctor(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["-w", str(ws), "agents", "doctor", *args], catch_exceptions=False
    )


def doctor_json(ws: Path, *names: str, code: int) -> list[dict[str, Any]]:
    result = doctor(ws, *names, "--json")
    assert result.exit_code == code, result.output
    found: list[dict[str, Any]] = orjson.loads(result.stdout)
    return found


def test_the_demo_agent_is_ok_and_its_capabilities_are_listed(
    procs: Procs, workspace: Path
) -> None:
    [demo] = doctor_json(workspace, "demo", code=0)
    assert demo["agent"] == "demo" and demo["ok"] is True and demo["error"] is None
    assert demo["agent_info"] == {"name": "meta-harness-demo", "version": "0.1.0"}
    caps = demo["capabilities"]
    assert caps["loadSession"] is True
    assert caps["promptCapabilities"]["embeddedContext"] is True
    assert set(caps["sessionCapabilities"]) == {"resume", "close"}
    assert caps["mcpCapabilities"]["http"] is True
    assert demo["found"] and Path(demo["found"]).is_file()
    assert demo["seconds"] is not None
    assert demo["stderr_log"] is None  # every check passed: no log kept
    assert list((workspace.parent / "tmp").iterdir()) == []

    text = doctor(workspace, "demo")
    assert text.exit_code == 0, text.output
    assert re.match(
        r"ok    demo       meta-harness-demo 0\.1\.0 \(\d+\.\d\d s\): "
        r"loadSession, resume, close, mcp:stdio,http\n$",
        text.output,
    ), text.output


def test_an_agent_whose_command_is_not_installed_fails(procs: Procs, workspace: Path) -> None:
    [ghost] = doctor_json(workspace, "ghost", code=1)
    assert ghost["ok"] is False and ghost["found"] is None
    assert ghost["error"] == "'meta-harness-no-such-agent' is not installed or not on PATH"

    text = doctor(workspace, "ghost")
    assert text.exit_code == 1
    assert text.output.startswith("FAIL  ghost ")
    assert "not installed" in text.output


def test_an_agent_that_exits_at_once_fails_naming_its_stderr_file(
    procs: Procs, workspace: Path
) -> None:
    [quitter] = doctor_json(workspace, "quitter", code=1)
    assert quitter["ok"] is False and quitter["found"]
    error = quitter["error"]
    assert "did not complete initialize" in error
    named = re.search(r"see (\S+)$", error)
    assert named, error
    stderr_file = Path(named.group(1))
    assert str(stderr_file) == quitter["stderr_log"]
    assert stderr_file.name == "quitter.stderr.log"
    assert stderr_file.is_file(), f"{stderr_file} is gone: the message points at nothing"

    text = doctor(workspace, "quitter")
    assert text.exit_code == 1
    assert text.output.startswith("FAIL  quitter ")
    assert "stderr.log" in text.output


def test_the_last_line_an_agent_wrote_to_stderr_is_shown(procs: Procs, workspace: Path) -> None:
    [grumbler] = doctor_json(workspace, "grumbler", code=1)
    assert grumbler["stderr_tail"] == "cannot find my API key\n"

    text = doctor(workspace, "grumbler")
    assert text.exit_code == 1
    assert text.output.splitlines()[-1] == "      stderr: cannot find my API key"


def test_one_failing_agent_fails_the_check_and_the_others_are_still_checked(
    procs: Procs, workspace: Path
) -> None:
    results = doctor_json(workspace, "demo", "ghost", code=1)
    assert [(r["agent"], r["ok"]) for r in results] == [("demo", True), ("ghost", False)]


def test_an_unknown_agent_name_is_a_config_error(procs: Procs, workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["-w", str(workspace), "agents", "doctor", "nobody"])
    assert result.exit_code == 78
    assert "agents.nobody" in result.output and "no such agent" in result.output
