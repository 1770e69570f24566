"""A supervisor driving a real agent (Claude or Codex ACP) offline, for tests and benchmarks.

Owns one "rig" per agent: the mock LLM, a small MCP test server (`testsrv`, one `add`
tool that insists on its header), a workspace whose `meta-harness.toml` defines the
agent from its `AgentLaunch` (`[agents.<agent>_mock]`, complete env, no passthrough),
the profiles `<agent>_mock` (MCP tools allowed) and `<agent>_mock_edits` (file edits
allowed too), and a supervisor subprocess: `meta-harness up`, which serves the built-in
MCP server on loopback. Files in, files out: tests drop files and read the WAL,
transcript and task records, and the mock's request log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

from tests.support.mock_llm import MockLLM, ToolCall, Turn
from tests.support.procs import (
    Procs,
    Supervisor,
    acks,
    drop_message,
    events,
    publish,
    task_record,
    transcript,
    wait_for,
    wal,
)
from tests.support.real_agents import LAUNCHERS, AgentLaunch, session_saved

logger = logging.getLogger(__name__)

UP = [sys.executable, "-m", "meta_harness", "up"]  # the real composition root

TESTSRV = "testsrv"  # the profile's own MCP server, as named in [mcp_servers]
TESTSRV_HEADER = "X-Test-Token"
TESTSRV_TOKEN = "testsrv-token-51c2"
BUILTIN_SERVER = "meta-harness"  # the supervisor's MCP server, as handed to every agent
MCP_STOP_TIMEOUT = 10.0  # uvicorn drains the agents' open MCP streams before its thread ends
ARRIVAL_WAIT = 60.0  # a held LLM request reaches the mock within one turn of a real agent
INSTRUCTIONS_MARKER = "agents-md-7d1c"  # in the workspace's AGENTS.md, sent to new sessions
STEP_WAIT = 60.0  # a turn through the supervisor: claude's session/new or load takes ~1-3 s

# Built-in rules are replaced (lists replace in config layers), so they are repeated here.
READ_RULES = [
    {"kind": "read", "action": "allow"},
    {"kind": "search", "action": "allow"},
    {"kind": "think", "action": "allow"},
]
# MCP tool calls ask for permission in both agents. Claude names the tool in `_meta`
# (`mcp__<server>__<tool>`); Codex titles every such request "Approve MCP tool call" (the
# server is only in rawInput.server_name), so a rule can only allow all of them at once.
MCP_RULES = [
    {"tool": "mcp__*", "action": "allow"},
    {"title": "Approve MCP tool call", "action": "allow"},
]
EDIT_RULES = [{"kind": "edit", "action": "allow"}]


# ---------------------------------------------------------------------------------------------
# The profile's own MCP server


@dataclass
class McpTestServer:
    """`add(a, b)` over streamable HTTP; a request without the header gets 401."""

    url: str
    calls: list[tuple[int, int, str | None]] = field(default_factory=list)
    unauthorised: int = 0


def _require_header(app: Any, server: McpTestServer) -> Any:
    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if headers.get(TESTSRV_HEADER.lower()) != TESTSRV_TOKEN:
                server.unauthorised += 1
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"missing test token"})
                return
        await app(scope, receive, send)

    return guarded


@contextlib.contextmanager
def serve_testsrv() -> Iterator[McpTestServer]:
    """The server in a thread, on a socket bound (and listening) before the thread starts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = McpTestServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
    lock = threading.Lock()
    mcp = MCPServer("testsrv")

    @mcp.tool()
    def add(a: int, b: int, ctx: Context[Any, Any]) -> int:
        """Add two integers and return the sum."""
        token = (ctx.headers or {}).get(TESTSRV_HEADER.lower())
        with lock:
            server.calls.append((a, b, token))
        return a + b

    app = _require_header(mcp.streamable_http_app(), server)
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


# ---------------------------------------------------------------------------------------------
# The workspace config


def _toml(value: Any) -> str:
    """A TOML inline value (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def profile_name(agent: str, *, edits: bool = False) -> str:
    return f"{agent}_mock_edits" if edits else f"{agent}_mock"


def workspace_toml(
    launch: AgentLaunch, testsrv_url: str, *, max_live: int = 8, idle_swap_after: float = 600.0
) -> str:
    """`[agents.<agent>_mock]` from the launch, `[mcp_servers.testsrv]`, and two profiles."""
    agent = f"{launch.name}_mock"
    base, edits = profile_name(launch.name), profile_name(launch.name, edits=True)
    lines = [
        "[supervisor]",
        f"max_live = {max_live}",
        f"idle_swap_after = {idle_swap_after!r}",
        "",
        f"[agents.{agent}]",
        f"description = {_toml(f'{launch.name} ACP agent against the mock LLM')}",
        f"command = {_toml(list(launch.argv))}",
        f"env = {_toml(launch.env)}",
        "env_passthrough = []  # the launch env is complete (PATH included)",
        "",
        f"[mcp_servers.{TESTSRV}]",
        'type = "http"',
        f"url = {_toml(testsrv_url)}",
        f"headers = {_toml({TESTSRV_HEADER: TESTSRV_TOKEN})}",
        "",
        f"[profiles.{base}]",
        'extends = "default"',
        f"agent = {_toml(agent)}",
        f"mcp_servers = [{_toml(TESTSRV)}]",
        f"permissions.rules = {_toml(READ_RULES + MCP_RULES)}",
        "",
        f"[profiles.{edits}]",
        f"extends = {_toml(base)}",
        f"permissions.rules = {_toml(READ_RULES + MCP_RULES + EDIT_RULES)}",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The rig


def start_supervisor(procs: Procs, extra_env: dict[str, str] | None = None) -> Supervisor:
    """`meta-harness up` on the rig's workspace; wait until it has started."""
    log = procs.scratch / f"supervisor-{len(procs.supervisors) + 1}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [*UP, str(procs.ws)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=procs.env(extra_env),
            cwd=procs.scratch,
            start_new_session=True,
        )
    procs.popens.append(popen)
    supervisor = Supervisor(procs.ws, popen, log)
    procs.supervisors.append(supervisor)
    supervisor.wait_started()
    return supervisor


@dataclass
class Rig:
    """One agent under one supervisor, with its mock LLM and test MCP server."""

    agent: str
    ws: Path
    mock: MockLLM
    testsrv: McpTestServer
    launch: AgentLaunch
    procs: Procs
    supervisor: Supervisor

    @property
    def profile(self) -> str:
        return profile_name(self.agent)

    # -- files in ------------------------------------------------------------------------------

    def submit(self, task_id: str, prompt: str, **fields: Any) -> str:
        """Drop a task file; return the id of its first message (from the WAL)."""
        fields.setdefault("profile", self.profile)
        publish(self.ws / "inbox" / f"{task_id}.json", {"id": task_id, "prompt": prompt, **fields})
        found: str = self.wait(
            lambda: first_message_id(self.ws, task_id), f"task {task_id} accepted"
        )
        return found

    def send(self, task_id: str, message_id: str, text: str) -> None:
        drop_message(self.ws, task_id, message_id, text)

    def answer_permission(self, task_id: str, request_id: str, decision: str) -> None:
        target = self.ws / "tasks" / task_id / "permissions" / f"{request_id}.answer.json"
        publish(target, {"decision": decision, "always": False, "by": "test"})

    # -- files out -----------------------------------------------------------------------------

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = STEP_WAIT) -> Any:
        try:
            return wait_for(condition, watch_dir=self.ws, what=what, timeout=timeout)
        except AssertionError:
            logger.error("supervisor output:\n%s", self.supervisor.output()[-6000:])
            raise

    def wait_ack(self, task_id: str, message_id: str) -> dict[str, Any]:
        """The (single) ack record of a message, once written."""
        found: list[dict[str, Any]] = self.wait(
            lambda: acks(self.ws, task_id).get(message_id), f"ack of {message_id} in {task_id}"
        )
        return found[0]

    def pending_permission(self, task_id: str) -> dict[str, Any]:
        def pending() -> dict[str, Any] | None:
            directory = self.ws / "tasks" / task_id / "permissions"
            for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
                if path.name.endswith(".answer.json"):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    record: dict[str, Any] = json.loads(path.read_text())
                    if record.get("status") == "pending":
                        return record
            return None

        found: dict[str, Any] = self.wait(pending, f"a pending permission request of {task_id}")
        return found

    def wait_saved(self, session_id: str, *needles: str) -> None:
        """Until the agent's own session file holds every needle (it may lag the answer)."""
        agent_state = Path(self.launch.env["HOME"]).parent
        wait_for(
            lambda: session_saved(self.launch, session_id, needles),
            watch_dir=agent_state,
            what=f"{self.agent} to save {needles} in session {session_id}",
            timeout=STEP_WAIT,
        )

    def session_id(self, task_id: str) -> str:
        record = task_record(self.ws, task_id)
        assert record is not None and record.get("session_id"), f"{task_id} has no session"
        return str(record["session_id"])

    def requests_for(self, message_id: str) -> list[Turn]:
        """LLM requests whose latest user message carries this message's header."""
        marker = f"id={message_id} "
        return [t for t in self.mock.turns() if marker in t.prompt]

    # -- the supervisor ------------------------------------------------------------------------

    def restart(self, extra_env: dict[str, str] | None = None) -> Supervisor:
        """Boot a new supervisor (the old one must be gone)."""
        self.supervisor = start_supervisor(self.procs, extra_env)
        return self.supervisor

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in events(self.ws) if e.get("type") == kind]


def first_message_id(ws: Path, task_id: str) -> str | None:
    for record in wal(ws, task_id):
        if record.get("op") == "msg":
            return str(record["id"])
    return None


def acks_of(ws: Path, task_id: str, message_id: str) -> list[dict[str, Any]]:
    return acks(ws, task_id).get(message_id, [])


def sent_count(ws: Path, task_id: str, message_id: str) -> int:
    return sum(1 for r in wal(ws, task_id) if r.get("op") == "sent" and r.get("id") == message_id)


def offered(turn: Turn, bare: str, server: str) -> str:
    """The qualified name a request offers for MCP tool `bare` of `server`.

    Both agents offer `mcp__<server>__<tool>` (Codex as a namespace, flattened by the mock);
    looking the name up keeps the script right should an agent rewrite the server name.
    """
    names = [t for t in turn.tools if t.endswith(f"__{bare}")]
    exact = f"mcp__{server}__{bare}"
    if exact in names:
        return exact
    if not names:
        raise AssertionError(f"{bare} is not offered; tools: {turn.tools}")
    return names[0]


def call_offered(bare: str, server: str, arguments: dict[str, Any]) -> Callable[[Turn], ToolCall]:
    """A reply calling MCP tool `bare` by whatever name the request offers it under."""

    def reply(turn: Turn) -> ToolCall:
        return ToolCall(offered(turn, bare, server), arguments)

    return reply


@contextlib.contextmanager
def open_rig(agent: str, scratch: Path, *, max_live: int = 8) -> Iterator[Rig]:
    """Mock LLM, test MCP server, workspace and a booted supervisor for `agent`."""
    ws = (scratch / "ws").resolve()
    (ws / "inbox").mkdir(parents=True)
    (ws / "AGENTS.md").write_text(f"Instructions for every agent ({INSTRUCTIONS_MARKER}).\n")
    with MockLLM() as mock, serve_testsrv() as testsrv:
        launch = LAUNCHERS[agent](mock.url, scratch / "agent")
        (ws / "meta-harness.toml").write_text(
            workspace_toml(launch, testsrv.url, max_live=max_live)
        )
        procs = Procs(ws, scratch)
        try:
            supervisor = start_supervisor(procs)
            yield Rig(agent, ws, mock, testsrv, launch, procs, supervisor)
        finally:
            orphans = procs.cleanup()
            if orphans:
                raise AssertionError(f"processes outlived their supervisor: {orphans}")


def texts_in(turns: Sequence[Turn]) -> str:
    return "\n".join(t.history_text() for t in turns)


# ---------------------------------------------------------------------------------------------
# Per-agent scripting and transcript readers

WRITE_TOOL = {"claude": "Write", "codex": "apply_patch"}


def write_call(agent: str, path: Path, content: str) -> ToolCall:
    """A call of the agent's own file-writing tool (Claude: Write; Codex: an apply_patch)."""
    if agent == "claude":
        return ToolCall("Write", {"file_path": str(path), "content": content})
    return ToolCall(
        "apply_patch", f"*** Begin Patch\n*** Add File: {path}\n+{content}\n*** End Patch\n"
    )


def tool_status(ws: Path, task_id: str, tool_call_id: str) -> str | None:
    """The last status the agent reported for a tool call (transcript frames, live only)."""
    status = None
    for record in transcript(ws, task_id):
        frame = record.get("frame")
        if record.get("dir") != "in" or record.get("load") or not isinstance(frame, dict):
            continue
        update = (frame.get("params") or {}).get("update") or {}
        is_tool = update.get("sessionUpdate") in ("tool_call", "tool_call_update")
        if is_tool and update.get("toolCallId") == tool_call_id and update.get("status"):
            status = str(update["status"])
    return status
