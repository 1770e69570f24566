"""Drive the real Claude and Codex ACP agents end to end, offline, with the ACP SDK client.

Each agent talks to our mock LLM (tests/support/mock_llm.py) and to a small MCP server over
streamable HTTP that lives in this module. The story: initialize, session/new with the MCP server,
a text prompt, an MCP tool call, an approved and a rejected file write, SIGKILL, then a fresh
process that loads the session, replays history and continues. No supervisor is involved.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from acp import text_block
from acp.schema import (
    AgentMessageChunk,
    HttpHeader,
    HttpMcpServer,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
)
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.mock_llm import MockLLM, Rule, Text, ToolCall, Turn
from tests.support.real_agents import (
    LAUNCHERS,
    AgentLaunch,
    RecordingClient,
    RunningAgent,
    start_agent,
    texts,
    wait_session_saved,
)

# The first run may also install both agents with npm (~300 MB), hence the long timeout.
pytestmark = [pytest.mark.real_agent, pytest.mark.anyio, pytest.mark.timeout(600)]

logger = logging.getLogger(__name__)

STEP_TIMEOUT = 60.0  # one ACP step of a real agent; the slowest seen (claude load) takes ~5 s
MCP_STOP_TIMEOUT = 10.0  # uvicorn drains the agents' open MCP streams before its thread ends
MCP_SERVER_NAME = "test"
TASK_TOKEN = "task-token-7f3a"
ADD_A, ADD_B = 1234, 4321
WRITE_TOOL = {"claude": "Write", "codex": "apply_patch"}
# How each agent ends a turn whose file write was rejected: (stop reason, final tool call status).
# Claude reports the call failed and lets the model continue; Codex's reject option ("abort")
# aborts the whole turn and never finishes the tool call (it stays in_progress).
REJECTED_WRITE = {"claude": ("end_turn", "failed"), "codex": ("cancelled", "in_progress")}
WRITE_REFUSED = "Understood, the write was refused."


# ---------------------------------------------------------------------------------------------
# A small MCP server over streamable HTTP, in a background thread


@dataclass
class AddServer:
    """MCP server with one tool, `add(a, b)`, that insists on the X-Task-Token header."""

    url: str
    calls: list[tuple[int, int, str | None]] = field(default_factory=list)
    rejected: int = 0

    def entry(self) -> HttpMcpServer:
        return HttpMcpServer(
            type="http",
            name=MCP_SERVER_NAME,
            url=self.url,
            headers=[HttpHeader(name="X-Task-Token", value=TASK_TOKEN)],
        )


def _require_token(app: ASGIApp, server: AddServer) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if headers.get("x-task-token") != TASK_TOKEN:
                server.rejected += 1
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"missing task token"})
                return
        await app(scope, receive, send)

    return guarded


@pytest.fixture
def mcp_server() -> Iterator[AddServer]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections queue in the backlog until uvicorn accepts: no start race
    server = AddServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
    lock = threading.Lock()
    mcp = MCPServer("test-add")

    @mcp.tool()
    def add(a: int, b: int, ctx: Context) -> int:
        """Add two integers and return the sum."""
        token = (ctx.headers or {}).get("x-task-token")
        with lock:
            server.calls.append((a, b, token))
        return a + b

    app = _require_token(mcp.streamable_http_app(), server)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        web.should_exit = True
        thread.join(MCP_STOP_TIMEOUT)
        sock.close()
        assert not thread.is_alive(), "MCP server thread did not stop"


@pytest.fixture
def mock_llm() -> Iterator[MockLLM]:
    with MockLLM() as mock:
        yield mock


def tool_updates(updates: Sequence[Any]) -> list[ToolCallStart | ToolCallProgress]:
    return [u for u in updates if isinstance(u, ToolCallStart | ToolCallProgress)]


def final_status(updates: Sequence[Any], tool_call_id: str) -> str | None:
    status = None
    for update in tool_updates(updates):
        if update.tool_call_id == tool_call_id and update.status is not None:
            status = update.status
    return status


# ---------------------------------------------------------------------------------------------
# The story


def write_call(agent: str, path: Path, content: str) -> ToolCall:
    """A call of the agent's own file-writing tool."""
    if agent == "claude":
        return ToolCall("Write", {"file_path": str(path), "content": content})
    return ToolCall(
        "apply_patch", f"*** Begin Patch\n*** Add File: {path}\n+{content}\n*** End Patch\n"
    )


def after_write(write_tool: str) -> Callable[[Turn], Text]:
    def reply(turn: Turn) -> Text:
        result = turn.result_of(write_tool)
        return Text(WRITE_REFUSED if result is not None and result.is_error else "File written.")

    return reply


def story_rules(agent: str, work: Path) -> list[Rule]:
    write_tool = WRITE_TOOL[agent]

    def remembers_first_prompt(turn: Turn) -> bool:
        return "Say hello" in turn.history_text() and "Hello from the mock" in turn.history_text()

    return [
        Rule(Text("Hello from the mock, turn one."), prompt_contains="Say hello", name="hello"),
        Rule(
            ToolCall.mcp(MCP_SERVER_NAME, "add", {"a": ADD_A, "b": ADD_B}),
            prompt_contains="Add the numbers",
            name="call-add",
        ),
        Rule(Text("The sum came back."), after_tool="add", name="after-add"),
        Rule(
            write_call(agent, work / "approved.txt", "written with approval"),
            prompt_contains="Write the approved file",
            name="write-approved",
        ),
        Rule(
            write_call(agent, work / "rejected.txt", "must never exist"),
            prompt_contains="Write the rejected file",
            name="write-rejected",
        ),
        Rule(after_write(write_tool), after_tool=write_tool, name="after-write"),
        Rule(
            Text("You first asked me to say hello."),
            prompt_contains="What did I ask first?",
            when=remembers_first_prompt,
            name="recall",
        ),
    ]


async def prompt(agent: RunningAgent, session_id: str, text: str) -> str:
    with anyio.fail_after(STEP_TIMEOUT):
        response = await agent.conn.prompt(session_id=session_id, prompt=[text_block(text)])
    return str(response.stop_reason)


def answered_by(mock: MockLLM, rule: str) -> list[Turn]:
    return [r.turn for r in mock.requests if r.answered_by == rule and r.turn is not None]


@pytest.mark.parametrize("agent_name", ["claude", "codex"])
async def test_a_real_agent_survives_sigkill_and_resumes_its_session_with_tools_and_history(
    agent_name: str, mock_llm: MockLLM, mcp_server: AddServer, tmp_path: Path
) -> None:
    launch: AgentLaunch = LAUNCHERS[agent_name](mock_llm.url, tmp_path / "scratch")
    work = launch.cwd
    mock_llm.script(*story_rules(agent_name, work))
    client = RecordingClient(work)
    stderr = tmp_path / "agent.stderr.log"

    # --- first process: new session, text, MCP tool, approved and rejected writes ---
    async with start_agent(launch, client, stderr) as agent:
        with anyio.fail_after(STEP_TIMEOUT):
            init = await agent.initialize()
        assert init.agent_capabilities is not None and init.agent_capabilities.load_session
        with anyio.fail_after(STEP_TIMEOUT):
            new = await agent.conn.new_session(cwd=str(work), mcp_servers=[mcp_server.entry()])
        session_id = new.session_id

        assert await prompt(agent, session_id, "Say hello, please.") == "end_turn"
        assert "Hello from the mock, turn one." in texts(client.updates, AgentMessageChunk)

        assert await prompt(agent, session_id, "Add the numbers with the tool.") == "end_turn"
        assert mcp_server.calls == [(ADD_A, ADD_B, TASK_TOKEN)]
        (after_add,) = answered_by(mock_llm, "after-add")
        result = after_add.result_of("add")
        assert result is not None and str(ADD_A + ADD_B) in result.output and not result.is_error
        assert "The sum came back." in texts(client.updates, AgentMessageChunk)

        asked_before = len(client.permissions)
        client.approve = True
        assert await prompt(agent, session_id, "Write the approved file.") == "end_turn"
        assert (work / "approved.txt").read_text().strip() == "written with approval"
        assert len(client.permissions) > asked_before, "writing a file must ask permission"

        asked_before = len(client.permissions)
        seen_before = len(client.updates)
        client.approve = False
        stop_reason = await prompt(agent, session_id, "Write the rejected file.")
        assert not (work / "rejected.txt").exists()
        assert len(client.permissions) > asked_before, "writing a file must ask permission"
        rejected_call = client.permissions[-1][0].tool_call_id
        status = final_status(client.updates[seen_before:], rejected_call)
        assert (stop_reason, status) == REJECTED_WRITE[agent_name]
        rejection_results = [
            t.result_of(WRITE_TOOL[agent_name])
            for t in mock_llm.turns()
            if any(r.call_id == rejected_call for r in t.tool_results)
        ]
        if stop_reason == "end_turn":  # the model was told, with an error result
            assert [r.is_error for r in rejection_results if r] == [True]
            assert WRITE_REFUSED in texts(client.updates[seen_before:], AgentMessageChunk)
        else:  # the turn was aborted: the model never heard of the call again
            assert rejection_results == []

        # Only SIGKILL once the last turn is on disk: claude saves it after answering.
        last_turn = ["Write the rejected file."]
        if stop_reason == "end_turn":
            last_turn.append(WRITE_REFUSED)
        await wait_session_saved(launch, session_id, *last_turn)
        await agent.kill()
        assert agent.process.returncode is not None

    # --- second process: load the session, replay, continue ---
    requests_before_load = len(mock_llm.requests)
    loaded = RecordingClient(work)
    async with start_agent(launch, loaded, stderr) as agent:
        with anyio.fail_after(STEP_TIMEOUT):
            init = await agent.initialize()
        assert init.agent_capabilities is not None and init.agent_capabilities.load_session
        with anyio.fail_after(STEP_TIMEOUT):
            await agent.conn.load_session(
                cwd=str(work), session_id=session_id, mcp_servers=[mcp_server.entry()]
            )
        await loaded.wait_for(
            lambda ups: (
                "Hello from the mock, turn one." in texts(ups, AgentMessageChunk)
                and "Say hello" in texts(ups, UserMessageChunk)
            ),
            "history replay",
        )

        assert await prompt(agent, session_id, "What did I ask first?") == "end_turn"
        (recall,) = answered_by(mock_llm, "recall")
        history = recall.history_text()
        for earlier in ("Say hello", "Hello from the mock, turn one.", str(ADD_A + ADD_B)):
            assert earlier in history, f"history sent after load lacks {earlier!r}"
        assert f"mcp__{MCP_SERVER_NAME}__add" in recall.tools, "MCP server not reconnected"
        assert "You first asked me to say hello." in texts(loaded.updates, AgentMessageChunk)
    assert mcp_server.rejected == 0
    logger.info(
        "%s: %d LLM requests, %d after load",
        agent_name,
        len(mock_llm.turns()),
        len(mock_llm.requests) - requests_before_load,
    )
