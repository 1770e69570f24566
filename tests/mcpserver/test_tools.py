"""The orchestration tools, called with the official MCP client in-process.

In-process calls carry no HTTP headers, so these servers read the task token from the
request's `_meta` (`token_from_meta`); test_http.py covers the header. Every tool's drop
files are parsed with the supervisor's own drop parser.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from meta_harness.base.config import Config
from meta_harness.base.jsonl import JsonlWriter
from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import Control, MessageDrop
from meta_harness.domain.inbox import ack_record, msg_record, sent_record
from meta_harness.domain.phases import TaskPhase
from meta_harness.mcpserver.identity import TOKEN_META_KEY, token_from_meta
from meta_harness.mcpserver.publish import spawn_name
from meta_harness.mcpserver.tools import build_mcp
from tests.mcpserver.support import (
    make_task,
    message_drops,
    meta,
    rejected_spawn,
    task_drops,
    text_of,
)

pytestmark = pytest.mark.anyio

TOOLS = {
    "task_spawn",
    "task_status",
    "task_list",
    "task_send",
    "task_result",
    "task_cancel",
    "task_complete",
}


@pytest.fixture
def srv(ws: Workspace) -> MCPServer:
    return build_mcp(ws, read_token=token_from_meta)


@pytest.fixture
async def client(srv: MCPServer) -> AsyncIterator[Client]:
    async with Client(srv) as c:
        yield c


class Caller:
    """Calls tools as one task (its token in `_meta`)."""

    def __init__(self, client: Client, ws: Workspace, task_id: str) -> None:
        self.client = client
        self.ws = ws
        self.task_id = task_id

    async def raw(self, tool: str, **args: Any) -> CallToolResult:
        return await self.client.call_tool(tool, args, meta=meta(self.ws, self.task_id))  # type: ignore[arg-type]

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.raw(tool, **args)
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        return dict(result.structured_content)

    async def error(self, tool: str, **args: Any) -> str:
        result = await self.raw(tool, **args)
        assert result.is_error, result.structured_content
        return text_of(result)


@pytest.fixture
def as_task(client: Client, ws: Workspace) -> Any:
    return lambda task_id: Caller(client, ws, task_id)


# -- the tool list -----------------------------------------------------------------------------


async def test_the_server_lists_the_seven_tools_with_described_typed_arguments(
    client: Client,
) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description, tool.name
        assert tool.output_schema is not None, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
        assert "ctx" not in tool.input_schema.get("properties", {})
    spawn = tools["task_spawn"].input_schema
    assert spawn["required"] == ["prompt"]
    assert spawn["properties"]["mode"]["enum"] == ["oneshot", "session"]
    assert spawn["properties"]["mode"]["default"] == "oneshot"
    assert set(tools["task_send"].input_schema["required"]) == {"task_id", "text"}
    assert tools["task_complete"].input_schema["required"] == ["result"]
    assert "required" not in tools["task_status"].input_schema  # default: the caller


# -- task_spawn --------------------------------------------------------------------------------


async def test_task_spawn_publishes_a_task_drop_with_the_caller_as_parent(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root", profile="narrow")
    spawned = await as_task("root").ok("task_spawn", prompt="say hello")

    [(name, drop)] = task_drops(ws)
    assert name == spawn_name("root", spawned["task_id"])
    assert drop.task_id == spawned["task_id"]
    assert drop.parent == "root"
    assert drop.profile == "narrow" == spawned["profile"]  # a child inherits its parent's
    assert drop.mode == "oneshot" == spawned["mode"]
    assert drop.message.content == [{"type": "text", "text": "say hello"}]
    assert drop.message.sender == "task:root"


async def test_task_spawn_takes_the_profile_title_and_mode_it_is_given(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    spawned = await as_task("root").ok(
        "task_spawn", prompt="review", profile="narrow", title="Reviewer", mode="session"
    )
    [(_, drop)] = task_drops(ws)
    assert (drop.task_id, drop.profile, drop.title, drop.mode) == (
        spawned["task_id"],
        "narrow",
        "Reviewer",
        "session",
    )


async def test_task_spawn_refuses_an_unknown_profile_and_names_the_known_ones(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    text = await as_task("root").error("task_spawn", prompt="x", profile="nope")
    assert "unknown profile 'nope'" in text
    assert "demo" in text and "narrow" in text
    assert task_drops(ws) == []


async def test_task_spawn_refuses_a_child_deeper_than_max_depth(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root", profile="shallow")
    make_task(ws, config, "kid", parent="root", profile="shallow")  # depth 1 = max_depth
    text = await as_task("kid").error("task_spawn", prompt="x")
    assert "too deep" in text and "max_depth 1" in text
    assert task_drops(ws) == []
    await as_task("root").ok("task_spawn", prompt="depth 1 is fine")


async def test_task_spawn_counts_created_and_queued_children_against_max_children(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root", profile="narrow")  # max_children 2
    make_task(ws, config, "old", parent="root")
    await as_task("root").ok("task_spawn", prompt="second")  # queued, not yet created
    text = await as_task("root").error("task_spawn", prompt="third")
    assert "too many children" in text and "max_children 2" in text
    assert len(task_drops(ws)) == 1


async def test_an_ended_task_cannot_spawn(ws: Workspace, config: Config, as_task: Any) -> None:
    make_task(ws, config, "root", phase=TaskPhase.DONE, result="r")
    text = await as_task("root").error("task_spawn", prompt="x")
    assert "already ended" in text


async def test_task_spawn_validates_its_arguments(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    assert "prompt" in await as_task("root").error("task_spawn", prompt="")
    assert "mode" in await as_task("root").error("task_spawn", prompt="x", mode="forever")
    assert task_drops(ws) == []


# -- task_status, task_list, task_result --------------------------------------------------------


def _wal(ws: Workspace, task_id: str, *records: dict[str, Any]) -> None:
    writer = JsonlWriter.open(ws.task(task_id).wal)
    writer.append(list(records), durable=False)
    writer.close()


async def test_task_status_defaults_to_the_caller_and_counts_its_messages(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root", title="Root", phase=TaskPhase.ACTIVE)
    make_task(ws, config, "kid", parent="root")
    one = MessageDrop(id="m1", sender="user", content=[{"type": "text", "text": "a"}])
    two = MessageDrop(id="m2", sender="user", content=[{"type": "text", "text": "b"}])
    _wal(
        ws,
        "root",
        msg_record(one),
        msg_record(two),
        sent_record("m1", 1),
        ack_record("m1", "end_turn"),
    )

    status = await as_task("root").ok("task_status")
    assert status["task_id"] == "root"
    assert (status["phase"], status["title"], status["profile"]) == ("active", "Root", "demo")
    assert status["parent"] is None and status["children"] == 1
    assert status["messages"] == {"accepted": 2, "delivered": 1, "pending": 1, "duplicates": 0}

    kid = await as_task("root").ok("task_status", task_id="kid")
    assert (kid["parent"], kid["depth"]) == ("root", 1)


async def test_task_status_of_a_spawn_not_yet_created_says_queued_then_rejected(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    child = (await as_task("root").ok("task_spawn", prompt="x"))["task_id"]
    assert (await as_task("root").ok("task_status", task_id=child))["phase"] == "queued"

    rejected_spawn(ws, spawn_name("root", child), "too many children: the supervisor said no")
    status = await as_task("root").ok("task_status", task_id=child)
    assert status["phase"] == "rejected"
    assert "the supervisor said no" in status["error"]
    result = await as_task("root").ok("task_result", task_id=child)
    assert result["finished"] is True and "the supervisor said no" in result["status"]


async def test_task_list_returns_the_callers_descendants_as_a_tree(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    make_task(ws, config, "a", parent="root", phase=TaskPhase.DONE, result="ok")
    make_task(ws, config, "a1", parent="a")
    make_task(ws, config, "b", parent="root")
    make_task(ws, config, "other")  # not root's
    queued = (await as_task("b").ok("task_spawn", prompt="x"))["task_id"]

    tree = (await as_task("root").ok("task_list"))["tasks"]
    assert [(n["task_id"], n["phase"]) for n in tree] == [("a", "done"), ("b", "waiting")]
    assert [n["task_id"] for n in tree[0]["children"]] == ["a1"]
    assert [(n["task_id"], n["phase"]) for n in tree[1]["children"]] == [(queued, "queued")]
    assert (await as_task("a1").ok("task_list"))["tasks"] == []


async def test_task_result_says_not_finished_with_the_phase_until_the_child_ends(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    make_task(ws, config, "busy", parent="root", phase=TaskPhase.ACTIVE)
    make_task(ws, config, "done", parent="root", phase=TaskPhase.DONE, result="42")
    make_task(ws, config, "bad", parent="root", phase=TaskPhase.FAILED, error="crashed")

    busy = await as_task("root").ok("task_result", task_id="busy")
    assert busy["finished"] is False and busy["status"] == "not finished yet (active)"
    done = await as_task("root").ok("task_result", task_id="done")
    assert (done["finished"], done["phase"], done["result"]) == (True, "done", "42")
    bad = await as_task("root").ok("task_result", task_id="bad")
    assert (bad["phase"], bad["error"]) == ("failed", "crashed")


# -- task_send, task_cancel, task_complete -------------------------------------------------------


async def test_task_send_drops_a_message_into_a_descendants_inbox(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    make_task(ws, config, "kid", parent="root")
    make_task(ws, config, "grandkid", parent="kid")
    sent = await as_task("root").ok("task_send", task_id="grandkid", text="faster please")

    [drop] = message_drops(ws, "grandkid")
    assert drop.id == sent["message_id"]
    assert drop.sender == "task:root"
    assert drop.content == [{"type": "text", "text": "faster please"}]
    assert drop.control is None


async def test_a_child_may_message_its_parent(ws: Workspace, config: Config, as_task: Any) -> None:
    make_task(ws, config, "root")
    make_task(ws, config, "kid", parent="root")
    await as_task("kid").ok("task_send", task_id="root", text="question")
    [drop] = message_drops(ws, "root")
    assert (drop.sender, drop.content[0]["text"]) == ("task:kid", "question")


async def test_task_send_refuses_siblings_grandparents_itself_and_ended_tasks(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    make_task(ws, config, "kid", parent="root")
    make_task(ws, config, "sib", parent="root")
    make_task(ws, config, "grandkid", parent="kid")
    make_task(ws, config, "ended", parent="root", phase=TaskPhase.CANCELLED)
    assert "not yours" in await as_task("kid").error("task_send", task_id="sib", text="hi")
    assert "not yours" in await as_task("grandkid").error("task_send", task_id="root", text="hi")
    assert "your own task" in await as_task("kid").error("task_send", task_id="kid", text="hi")
    assert "has ended" in await as_task("root").error("task_send", task_id="ended", text="hi")
    assert all(message_drops(ws, t) == [] for t in ("root", "kid", "sib", "ended"))


async def test_task_send_to_a_child_still_queued_asks_to_retry(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    child = (await as_task("root").ok("task_spawn", prompt="x"))["task_id"]
    text = await as_task("root").error("task_send", task_id=child, text="hi")
    assert "still queued" in text and "again" in text


async def test_task_cancel_drops_a_cancel_control_for_a_descendant(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    make_task(ws, config, "kid", parent="root", phase=TaskPhase.ACTIVE)
    make_task(ws, config, "gone", parent="root", phase=TaskPhase.DONE, result="r")
    answer = await as_task("root").ok("task_cancel", task_id="kid")
    assert "cancel requested" in answer["status"]
    [drop] = message_drops(ws, "kid")
    assert (drop.control, drop.sender) == (Control.CANCEL, "task:root")

    assert (await as_task("root").ok("task_cancel", task_id="gone"))["status"] == "already done"
    assert message_drops(ws, "gone") == []
    assert "descendants" in await as_task("kid").error("task_cancel", task_id="kid")
    assert "not yours" in await as_task("kid").error("task_cancel", task_id="root")


async def test_task_complete_drops_a_complete_control_into_the_callers_own_inbox(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    await as_task("root").ok("task_complete", result="all done")
    [drop] = message_drops(ws, "root")
    assert (drop.control, drop.result, drop.sender) == (Control.COMPLETE, "all done", "agent")


async def test_an_ended_task_cannot_complete_again(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root", phase=TaskPhase.DONE, result="r")
    assert "already ended" in await as_task("root").error("task_complete", result="again")


# -- errors and identity -----------------------------------------------------------------------


async def test_unknown_and_malformed_task_ids_are_reported(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "root")
    for tool in ("task_status", "task_result", "task_cancel", "task_send"):
        args = {"task_id": "t-nothere"} | ({"text": "x"} if tool == "task_send" else {})
        assert "no task 't-nothere'" in await as_task("root").error(tool, **args)
    assert "invalid task id" in await as_task("root").error("task_status", task_id="../etc")


async def test_a_task_without_a_record_is_told_so(as_task: Any) -> None:
    assert "no record" in await as_task("ghost").error("task_spawn", prompt="x")


async def test_calls_without_a_token_or_with_a_forged_one_are_unauthenticated(
    ws: Workspace, config: Config, client: Client
) -> None:
    make_task(ws, config, "root")
    for tool, args in (("task_status", {}), ("task_spawn", {"prompt": "x"}), ("task_list", {})):
        missing = await client.call_tool(tool, args)
        assert missing.is_error and "unauthenticated" in text_of(missing)
        forged = await client.call_tool(tool, args, meta={TOKEN_META_KEY: "root.0000"})  # type: ignore[arg-type]
        assert forged.is_error and "unauthenticated" in text_of(forged)
    assert task_drops(ws) == []


async def test_two_tasks_see_and_act_only_on_their_own_trees(
    ws: Workspace, config: Config, as_task: Any
) -> None:
    make_task(ws, config, "alice")
    make_task(ws, config, "bob")
    a_child = (await as_task("alice").ok("task_spawn", prompt="for alice"))["task_id"]
    b_child = (await as_task("bob").ok("task_spawn", prompt="for bob"))["task_id"]
    parents = {drop.task_id: drop.parent for _, drop in task_drops(ws)}
    assert parents == {a_child: "alice", b_child: "bob"}

    assert [n["task_id"] for n in (await as_task("alice").ok("task_list"))["tasks"]] == [a_child]
    assert [n["task_id"] for n in (await as_task("bob").ok("task_list"))["tasks"]] == [b_child]
    assert (await as_task("bob").ok("task_status"))["task_id"] == "bob"
    for tool in ("task_status", "task_result", "task_cancel"):
        assert "not yours" in await as_task("bob").error(tool, task_id=a_child)
    assert "not yours" in await as_task("bob").error("task_status", task_id="alice")
    assert "not yours" in await as_task("bob").error("task_send", task_id="alice", text="hi")


def test_the_server_imports_neither_the_runtime_nor_the_agent_layer() -> None:
    code = (
        "import sys, meta_harness.mcpserver.tools, meta_harness.mcpserver.entries; "
        "bad = sorted(m for m in sys.modules if m.startswith("
        "('meta_harness.runtime', 'meta_harness.agent', 'meta_harness.cli', 'acp'))); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
