"""`init` copies the workspace template; `up` runs a real supervisor the other commands talk to."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from meta_harness.base.config import (
    AgentDef,
    Limits,
    McpServerDef,
    PermissionPolicy,
    Profile,
    SupervisorSettings,
    load_config,
)
from meta_harness.base.layout import Workspace
from meta_harness.cli.main import cli
from meta_harness.cli.setup import template_dir
from tests.support.procs import Procs, Supervisor

REPO = Path(__file__).resolve().parents[2]


def test_init_creates_a_workspace_from_the_template(tmp_path: Path) -> None:
    root = tmp_path / "agents"
    result = CliRunner().invoke(cli, ["init", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("meta-harness.toml", "AGENTS.md"):
        assert (root / name).is_file()
    for name in ("inbox", "tasks", "skills", ".meta-harness"):
        assert (root / name).is_dir()
    assert list((root / "inbox").iterdir()) == []  # .keep files stay in the template


def test_init_refuses_an_existing_workspace_and_changes_nothing(ws: Workspace) -> None:
    ws.config_file.write_text("# mine\n")
    result = CliRunner().invoke(cli, ["init", str(ws.root)])
    assert result.exit_code == 4
    assert (
        result.stderr.startswith("error: ") and "already a meta-harness workspace" in result.stderr
    )
    assert ws.config_file.read_text() == "# mine\n"


def test_init_keeps_files_of_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").write_text("my own\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert (tmp_path / "AGENTS.md").read_text() == "my own\n"
    assert (tmp_path / "meta-harness.toml").is_file()


def test_the_template_config_loads_and_shows_every_setting(ws: Workspace) -> None:
    config = load_config(ws, env={})
    assert config.settings.supervisor.default_profile == "demo"
    text = (template_dir() / "meta-harness.toml").read_text()
    shown = set(re.findall(r"^#\s+([a-z_]+) = ", text, flags=re.MULTILINE))
    for model in (SupervisorSettings, AgentDef, McpServerDef, Profile, PermissionPolicy, Limits):
        for name in model.model_fields:
            if name != "name":
                table = f".{name}]" in text  # a nested table, e.g. [profiles.x.permissions]
                assert name in shown or table, f"{model.__name__}.{name} is not in the template"


def test_the_template_defaults_match_the_built_in_defaults(ws: Workspace) -> None:
    """Uncommenting the [supervisor] lines of the template changes nothing."""
    text = (template_dir() / "meta-harness.toml").read_text()
    section = text.split("[supervisor]", 1)[1].split("\n\n", 1)[0]
    uncommented = "[supervisor]\n" + re.sub(r"^# ", "", section, flags=re.MULTILINE)
    explicit = load_config(ws, env={}, workspace_text=uncommented)
    assert explicit.settings.supervisor == load_config(None, env={}).settings.supervisor


@pytest.fixture
def procs(ws: Workspace, tmp_path: Path) -> Iterator[Procs]:
    tracker = Procs(ws.root, tmp_path)
    yield tracker
    orphans = tracker.cleanup()
    assert not orphans, f"processes outlived their supervisor: {orphans}"


def start_up(procs: Procs, ws: Workspace, log: Path) -> Supervisor:
    """`python -m meta_harness -w WS up`, tracked by `procs` (stopped and checked at teardown)."""
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "meta_harness", "-w", str(ws.root), "up"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=procs.env(),
            start_new_session=True,
        )
    procs.popens.append(popen)
    supervisor = Supervisor(ws.root, popen, log)
    procs.supervisors.append(supervisor)
    return supervisor


def cli_process(ws: Workspace, procs: Procs, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meta_harness", "-w", str(ws.root), *args],
        capture_output=True,
        text=True,
        env=procs.env(),
        timeout=60,
    )


def test_up_runs_a_supervisor_that_answers_submit_and_send_wait(
    ws: Workspace, procs: Procs, tmp_path: Path
) -> None:
    supervisor = start_up(procs, ws, tmp_path / "up.log")
    supervisor.wait_started()
    task = cli_process(ws, procs, "submit", "hello")
    assert task.returncode == 0, task.stderr
    task_id = task.stdout.strip()
    reply = cli_process(
        ws, procs, "send", task_id[:10], "/say first\nsecond", "--wait", "--timeout", "30"
    )
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout == "first\necho: second\n"
    listing = orjson.loads(cli_process(ws, procs, "ls", "--json").stdout)
    assert listing["supervisor"]["running"] is True
    assert [t["id"] for t in listing["tasks"]] == [task_id]

    second = cli_process(ws, procs, "up")
    assert second.returncode == 75
    assert second.stderr.count("\n") == 1 and second.stderr.startswith("error: another supervisor")

    supervisor.popen.send_signal(signal.SIGTERM)
    assert supervisor.wait() == 0
    after = orjson.loads(cli_process(ws, procs, "ls", "--json").stdout)
    assert after["supervisor"]["running"] is False
    assert after["tasks"][0]["session"] == "-"


def test_up_on_a_directory_that_is_not_a_workspace_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["up", str(tmp_path)])
    assert result.exit_code == 66
    assert result.stderr == (
        f"error: {tmp_path} is not a meta-harness workspace (no meta-harness.toml); "
        "run `meta-harness init DIR`\n"
    )


def test_a_source_checkout_uses_the_repos_template() -> None:
    assert template_dir() == REPO / "workspace-template"
