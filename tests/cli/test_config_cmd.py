"""`config show` (values and where they came from), `config check`, `agents`, `--set`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from meta_harness.base.layout import Workspace
from meta_harness.cli.main import cli
from tests.cli.conftest import Cli


def test_config_show_names_the_layer_and_file_of_each_value(run: Cli, ws: Workspace) -> None:
    ws.config_file.write_text("[supervisor]\nmax_live = 3\n")
    out = run.json("--set", "supervisor.idle_swap_after=5", "config", "show")
    assert out["supervisor.max_live"] == {
        "value": 3,
        "layer": "workspace",
        "source": str(ws.config_file),
    }
    assert out["supervisor.idle_swap_after"] == {"value": 5, "layer": "cli", "source": "--set"}
    assert out["supervisor.drop_settle"]["layer"] == "builtin"
    text = run.ok("config", "show").stdout
    line = next(x for x in text.splitlines() if x.startswith("supervisor.max_live = 3 "))
    assert line.endswith(f"  # workspace {ws.config_file}")


def test_config_show_of_a_profile_says_which_profile_set_each_value(
    run: Cli, ws: Workspace
) -> None:
    ws.config_file.write_text('[profiles.mine]\nextends = "demo"\nmode = "oneshot"\n')
    out = run.json("config", "show", "--profile", "mine")
    assert out["mode"] == {
        "value": "oneshot",
        "profile": "mine",
        "layer": "workspace",
        "source": str(ws.config_file),
    }
    assert out["agent"]["profile"] == "demo"
    assert out["permissions.default"] == {
        "value": "ask",
        "profile": "default",
        "layer": "builtin",
        "source": "built-in defaults",
    }
    assert out["skills"]["layer"] == "default"


def test_config_check_says_ok(run: Cli) -> None:
    assert run.ok("config", "check").stdout.startswith("OK: 7 profiles, 6 agents")
    assert run.json("config", "check")["ok"] is True


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[supervisor]\nmax_live = 0\n", "supervisor.max_live", "greater than or equal to 1"),
        ("[supervisor]\nmax_lives = 2\n", "supervisor.max_lives", "unknown key"),
        ('[profiles.x]\nagent = "nobody"\n', "profiles.x.agent", "no agent named 'nobody'"),
    ],
)
def test_a_bad_config_file_is_reported_with_file_key_and_reason(
    run: Cli, ws: Workspace, text: str, key: str, reason: str
) -> None:
    ws.config_file.write_text(text)
    for args in (("config", "check"), ("submit", "x"), ("agents",)):
        result = run(*args)
        assert result.exit_code == 78
        assert result.stderr.startswith(f"error: {ws.config_file}: {key}: ")
        assert reason in result.stderr and result.stderr.count("\n") == 1


def test_invalid_toml_names_the_file(run: Cli, ws: Workspace) -> None:
    ws.config_file.write_text("[supervisor\n")
    result = run("config", "check")
    assert result.exit_code == 78
    assert result.stderr.startswith(f"error: {ws.config_file}: invalid TOML: ")


def test_a_malformed_set_is_a_config_error(run: Cli) -> None:
    result = run("--set", "max_live", "config", "check")
    assert result.exit_code == 78
    assert (
        result.stderr == "error: --set: max_live: expected KEY=VALUE, e.g. supervisor.max_live=4\n"
    )


def test_agents_lists_every_agent_definition(run: Cli) -> None:
    agents = {a["name"]: a for a in run.json("agents")}
    assert set(agents) == {"demo", "claude", "codex", "gemini", "opencode", "pi"}
    assert agents["demo"]["command"][1:] == ["-m", "meta_harness.demo_agent"]
    assert run.ok("agents").stdout.splitlines()[0].split() == ["NAME", "COMMAND", "DESCRIPTION"]


def test_config_commands_work_outside_a_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config", "check"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.startswith("OK: ")
