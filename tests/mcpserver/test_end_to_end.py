"""Tasks that spawn tasks, end to end: a real supervisor, the demo agent, MCP over HTTP.

The supervisor (`meta-harness up`) serves the built-in MCP server on loopback. The
parent's demo agent runs `/spawn hello`, which calls `task_spawn` over HTTP with the
header it got in `session/new`; the child is created from the drop, runs, finishes
(oneshot), and its result arrives in the parent's WAL as `result:<child>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meta_harness.base.layout import Workspace
from meta_harness.base.tokens import task_token, workspace_secret
from tests.support.procs import (
    Procs,
    Supervisor,
    drop_task,
    events,
    notes,
    task_record,
    wait_for,
    wal,
)

# The demo agent accepts MCP over http only: the profile's sse server must be left out.
WORKSPACE_TOML = """
[mcp_servers.old]
type = "sse"
url = "http://127.0.0.1:9/sse"

[profiles.demo]
mcp_servers = ["old"]
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "meta-harness.toml").write_text(WORKSPACE_TOML)
    (ws / "inbox").mkdir()
    return ws.resolve()


@pytest.fixture
def procs(workspace: Path, tmp_path: Path) -> Iterator[Procs]:
    tracker = Procs(workspace, tmp_path)
    try:
        yield tracker
    finally:
        orphans = tracker.cleanup()
    assert not orphans, f"processes outlived their supervisor: {orphans}"


def start_with_mcp(procs: Procs) -> Supervisor:
    """`meta-harness up`, which serves the built-in MCP server on loopback."""
    return procs.start_supervisor()


def children_of(ws: Path, parent: str) -> list[str]:
    return sorted(
        p.name
        for p in (ws / "tasks").iterdir()
        if (task_record(ws, p.name) or {}).get("parent") == parent
    )


def test_a_spawned_childs_result_arrives_in_the_parents_inbox(
    workspace: Path, procs: Procs
) -> None:
    supervisor = start_with_mcp(procs)
    drop_task(workspace, "parent", "/spawn hello")

    def result_record() -> dict[str, object] | None:
        return next(
            (r for r in wal(workspace, "parent") if str(r.get("id", "")).startswith("result:")),
            None,
        )

    try:
        record = wait_for(
            result_record, watch_dir=workspace, what="result:<child> in the parent's WAL"
        )
    except AssertionError:
        print(supervisor.output())
        raise
    assert record is not None
    [child] = children_of(workspace, "parent")
    assert record["id"] == f"result:{child}"
    assert record["from"] == f"task:{child}"
    child_record = task_record(workspace, child)
    assert child_record is not None
    assert (child_record["phase"], child_record["depth"], child_record["mode"]) == (
        "done",
        1,
        "oneshot",
    )
    assert "echo: hello" in str(child_record["result"])
    assert "echo: hello" in str(record["content"])

    # the token reached the agent, but neither the transcript nor mcp.json keeps it in clear
    token = task_token(workspace_secret(Workspace.at(workspace)), "parent")
    assert token.encode() not in (workspace / "tasks" / "parent" / "transcript.jsonl").read_bytes()
    mcp_json = (workspace / "tasks" / "parent" / "mcp.json").read_text()
    assert token not in mcp_json and '"***"' in mcp_json and "meta-harness" in mcp_json

    # the sse server the agent cannot use was left out, visibly
    assert '"old"' not in mcp_json
    left_out = "MCP server 'old' left out: the agent does not accept MCP over sse"
    warnings = [e for e in events(workspace) if e.get("type") == "warning"]
    assert any(e.get("task") == "parent" and e.get("message") == left_out for e in warnings)
    assert any(n.get("message") == left_out for n in notes(workspace, "parent", "mcp-warning"))
