"""Fixtures of the CLI tests: a workspace made by `init`, a runner, and files a supervisor writes.

Most tests drive the commands in-process with click's `CliRunner` and play the
supervisor by writing its files (task records, WAL, transcript, events, permission
requests, `supervisor.json` naming this very process so that it counts as running).
The user config layer is isolated: `XDG_CONFIG_HOME` points into the test's tmp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from click.testing import CliRunner, Result

from meta_harness.base.layout import Workspace
from meta_harness.cli.main import cli
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord, write_task


class Cli:
    """Runs `meta-harness -w <workspace> ARGS…` in-process."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(
            cli, ["-w", str(self.workspace.root), *args], input=input, catch_exceptions=False
        )

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
        return result

    def json(self, *args: str) -> Any:
        return orjson.loads(self.ok(*args, "--json").stdout)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for key in list(os.environ):
        if key.startswith("META_HARNESS_"):
            monkeypatch.delenv(key)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    result = CliRunner().invoke(cli, ["init", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return Workspace.at(root)


@pytest.fixture
def run(ws: Workspace) -> Cli:
    return Cli(ws)


def make_task(
    ws: Workspace,
    task_id: str,
    *,
    phase: TaskPhase = TaskPhase.WAITING,
    parent: str | None = None,
    title: str = "",
    profile: str = "demo",
) -> Path:
    """A task record as the supervisor writes it (with its inbox and permissions dirs)."""
    paths = ws.task(task_id)
    paths.inbox.mkdir(parents=True, exist_ok=True)
    paths.permissions.mkdir(exist_ok=True)
    record = TaskRecord(id=task_id, title=title or task_id, parent=parent, profile=profile)
    write_task(paths, record.model_copy(update={"phase": phase}))
    return paths.dir


def append(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append JSON lines, one write each, as the supervisor's writers do."""
    with open(path, "ab") as f:
        for record in records:
            f.write(orjson.dumps(record) + b"\n")
            f.flush()


@pytest.fixture
def supervisor_running(ws: Workspace) -> None:
    """`supervisor.json` naming this test process: the CLI sees a live supervisor."""
    me = psutil.Process()
    info = {"pid": me.pid, "create_time": me.create_time(), "started_at": 0.0, "endpoints": {}}
    ws.supervisor_file.write_bytes(orjson.dumps(info))
    append(ws.events_file, [{"ts": 1.0, "type": "supervisor", "status": "started", "pid": me.pid}])
