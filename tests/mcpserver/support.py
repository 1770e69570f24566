"""Helpers of the MCP server tests: task records as the supervisor writes them, and an HTTP app.

`make_task` writes `task.json`, the profile snapshot and the inbox directory the way the
supervisor's store does, so the tools read a realistic workspace without a supervisor.
`serve_mcp` runs the server under uvicorn on a pre-bound 127.0.0.1 socket (port 0):
connections queue in the listen backlog until uvicorn accepts, so nothing waits.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from starlette.applications import Starlette
from starlette.routing import Mount

from meta_harness.base.config import Config
from meta_harness.base.layout import Workspace
from meta_harness.base.tokens import task_token, workspace_secret
from meta_harness.domain.drops import MessageDrop, TaskDrop, parse_message_drop, parse_task_drop
from meta_harness.domain.phases import TaskPhase
from meta_harness.domain.tasks import TaskRecord, write_task
from meta_harness.mcpserver.identity import TOKEN_HEADER, TOKEN_META_KEY

SHUTDOWN_GRACE = 2  # seconds uvicorn waits for open MCP streams at test teardown


def make_task(
    ws: Workspace,
    config: Config,
    task_id: str,
    *,
    parent: str | None = None,
    profile: str = "demo",
    phase: TaskPhase = TaskPhase.WAITING,
    title: str = "",
    result: str | None = None,
    error: str | None = None,
) -> TaskRecord:
    depth = 0
    if parent is not None:
        depth = TaskRecord.model_validate_json(ws.task(parent).record.read_bytes()).depth + 1
    record = TaskRecord(
        id=task_id,
        title=title or f"task {task_id}",
        parent=parent,
        depth=depth,
        profile=profile,
        phase=phase,
        result=result,
        error=error,
    )
    paths = ws.task(task_id)
    paths.inbox.mkdir(parents=True, exist_ok=True)
    paths.profile_snapshot.write_bytes(config.profile(profile).model_dump_json().encode())
    write_task(paths, record)
    return record


def token(ws: Workspace, task_id: str) -> str:
    return task_token(workspace_secret(ws), task_id)


def meta(ws: Workspace, task_id: str) -> dict[str, Any]:
    """The in-process stand-in for the X-Task-Token header."""
    return {TOKEN_META_KEY: token(ws, task_id)}


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def task_drops(ws: Workspace) -> list[tuple[str, TaskDrop]]:
    """Every spawn drop in `inbox/`, parsed with the supervisor's parser."""
    return [
        (p.name, parse_task_drop(p.name, p.read_bytes()))
        for p in sorted(ws.inbox.iterdir())
        if not p.name.startswith(".")
    ]


def message_drops(ws: Workspace, task_id: str) -> list[MessageDrop]:
    inbox = ws.task(task_id).inbox
    return [
        parse_message_drop(p.name, p.read_bytes())
        for p in sorted(inbox.iterdir())
        if not p.name.startswith(".")
    ]


def rejected_spawn(ws: Workspace, name: str, reason: str) -> None:
    """Move a spawn drop aside the way the supervisor's ingest rejects it."""
    ws.rejected_dir.mkdir(parents=True, exist_ok=True)
    target = ws.rejected_dir / f"20260101T000000-1-1-{name}"
    (ws.inbox / name).rename(target)
    info = {"file": f"inbox/{name}", "reason": reason, "ts": 0.0, "moved_to": str(target)}
    target.with_name(target.name + ".error").write_bytes(orjson.dumps(info))


# -- HTTP ------------------------------------------------------------------------------------


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (pytest and the supervisor own the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def mcp_app(srv: MCPServer) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with srv.session_manager.run():
            yield

    return Starlette(
        routes=[Mount("/mcp", app=srv.streamable_http_app(streamable_http_path="/"))],
        lifespan=lifespan,
    )


@contextlib.asynccontextmanager
async def serve_mcp(srv: MCPServer) -> AsyncIterator[str]:
    """Serve `srv` at http://127.0.0.1:<port>/mcp/ for the body of the block; yields the URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = QuietServer(
        uvicorn.Config(mcp_app(srv), log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"http://127.0.0.1:{port}/mcp/"
        finally:
            server.should_exit = True
    sock.close()


@contextlib.asynccontextmanager
async def http_client(
    url: str, headers: dict[str, str] | None, mode: str = "auto"
) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers or {}) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def token_headers(ws: Workspace, task_id: str) -> dict[str, str]:
    return {TOKEN_HEADER: token(ws, task_id)}


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())
