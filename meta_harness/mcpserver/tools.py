"""The built-in MCP server: the orchestration tools every task's agent gets, as registered.

`build_mcp(workspace)` returns an `MCPServer` with `task_spawn`, `task_status`, `task_list`,
`task_send`, `task_result`, `task_cancel` and `task_complete`: names, argument schemas and
descriptions live here. Each call is bound to its caller (`identity`), runs in `orchestrator`,
and our errors become `ToolError`s. Mounting it: docs/design.md, "Tasks spawning tasks".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from meta_harness import __version__
from meta_harness.base.errors import MetaHarnessError
from meta_harness.base.layout import Workspace
from meta_harness.base.tokens import workspace_secret
from meta_harness.domain.drops import MAX_TITLE
from meta_harness.mcpserver.identity import Identity, TokenReader, token_from_headers
from meta_harness.mcpserver.orchestrator import Orchestrator
from meta_harness.mcpserver.results import (
    Cancelled,
    Completed,
    Sent,
    Spawned,
    TaskList,
    TaskResult,
    TaskStatus,
)
from meta_harness.mcpserver.settings import ConfigSource, FileConfig

SERVER_NAME = "meta-harness"

INSTRUCTIONS = """\
Tools to split work into tasks run by other agents, supervised by meta-harness.
task_spawn starts a child task and returns its id at once; the child works on its own.
When a child finishes, its result arrives in your inbox as a new message from
`task:<child-id>` (its id is `result:<child-id>`), so you do not need to poll: end
your turn and you will be prompted again. task_status, task_list and task_result
inspect your children; task_send messages a child (or your parent); task_cancel stops
a child and its descendants; task_complete finishes your own task with a result.
You can act only on your own task and its descendants."""


@contextlib.contextmanager
def _as_tool_errors() -> Iterator[None]:
    """Our errors become tool errors the model can read and act on."""
    try:
        yield
    except MetaHarnessError as e:
        raise ToolError(e.message) from None


def build_mcp(
    workspace: Workspace,
    *,
    config: ConfigSource | None = None,
    read_token: TokenReader = token_from_headers,
) -> MCPServer:
    """The built-in MCP server of `workspace`.

    `config` gives the current config (default: re-read from the files when they
    change); pass the supervisor's `config` to honour `--set`. `read_token` says where
    the caller's token is found (default: the `X-Task-Token` HTTP header).
    """
    orchestrator = Orchestrator(workspace, config or FileConfig(workspace))
    identity = Identity(workspace_secret(workspace), read_token)
    srv: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__)

    @srv.tool()
    def task_spawn(
        prompt: Annotated[
            str,
            Field(
                min_length=1,
                description="What the child task should do: a complete, self-contained "
                "instruction (the child does not see your conversation)",
            ),
        ],
        ctx: Context[Any, Any],
        profile: Annotated[
            str | None,
            Field(description="Profile (agent and settings) for the child; default: yours"),
        ] = None,
        title: Annotated[
            str | None,
            Field(max_length=MAX_TITLE, description="Short title shown in task lists"),
        ] = None,
        mode: Annotated[
            Literal["oneshot", "session"],
            Field(
                description="oneshot: the child's first answer is its result. session: the "
                "child keeps its conversation and finishes when it calls task_complete"
            ),
        ] = "oneshot",
    ) -> Spawned:
        """Start a child task with its own agent. Returns the child's id at once; when the
        child finishes, its result arrives in your inbox as a message from task:<id>."""
        with _as_tool_errors():
            return orchestrator.spawn(identity.caller(ctx), prompt, profile, title, mode)

    @srv.tool()
    def task_status(
        ctx: Context[Any, Any],
        task_id: Annotated[
            str | None, Field(description="Your task or a descendant; default: your own task")
        ] = None,
    ) -> TaskStatus:
        """Phase, title, profile, parent, result or error, and message counts of a task."""
        with _as_tool_errors():
            return orchestrator.status(identity.caller(ctx), task_id)

    @srv.tool()
    def task_list(ctx: Context[Any, Any]) -> TaskList:
        """Your child tasks, each with its phase and its own descendants (a tree)."""
        with _as_tool_errors():
            return orchestrator.tree(identity.caller(ctx))

    @srv.tool()
    def task_send(
        task_id: Annotated[str, Field(description="A descendant of your task, or your parent")],
        text: Annotated[str, Field(min_length=1, description="The message")],
        ctx: Context[Any, Any],
    ) -> Sent:
        """Send a message to one of your descendant tasks (or to your parent). It is
        delivered as a new prompt from task:<your id> when that task's agent is free."""
        with _as_tool_errors():
            return orchestrator.send(identity.caller(ctx), task_id, text)

    @srv.tool()
    def task_result(
        task_id: Annotated[str, Field(description="One of your descendant tasks")],
        ctx: Context[Any, Any],
    ) -> TaskResult:
        """The result of a descendant task, or "not finished yet" with its phase."""
        with _as_tool_errors():
            return orchestrator.result(identity.caller(ctx), task_id)

    @srv.tool()
    def task_cancel(
        task_id: Annotated[str, Field(description="One of your descendant tasks")],
        ctx: Context[Any, Any],
    ) -> Cancelled:
        """Cancel a descendant task; its own descendants are cancelled with it."""
        with _as_tool_errors():
            return orchestrator.cancel(identity.caller(ctx), task_id)

    @srv.tool()
    def task_complete(
        result: Annotated[
            str, Field(description="Your task's result: what your parent or user receives")
        ],
        ctx: Context[Any, Any],
    ) -> Completed:
        """Finish your own task with this result. Your parent (if any) receives it."""
        with _as_tool_errors():
            return orchestrator.complete(identity.caller(ctx), result)

    return srv
