"""The built-in MCP server as a supervisor service: loopback only, on a port of its own.

    service, entries, endpoints = mcp_service(workspace, config)
    run(workspace, config, services=[service], mcp_entries=entries, endpoints=endpoints)

The socket is bound at once on 127.0.0.1 (port 0: any free port), so the URL handed to
agents is known before the supervisor starts. The MCP server always listens on loopback,
whatever address the web page uses: a task's token is its only credential. uvicorn runs
without signal handlers (the supervisor owns SIGINT/SIGTERM) and stops when the
supervisor's stop event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from meta_harness.base.config import Config
from meta_harness.base.layout import Workspace
from meta_harness.mcpserver.entries import AgentLike, McpList, mcp_entries

MCP_SHUTDOWN_GRACE = 2  # seconds open MCP streams get once the supervisor stops
LISTEN_BACKLOG = 128


class SupervisorLike(Protocol):
    workspace: Workspace
    stop_event: asyncio.Event

    def config(self) -> Config: ...


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the supervisor owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def mcp_service(
    workspace: Workspace, config: Config
) -> tuple[
    Callable[[Any], Coroutine[Any, Any, None]],
    Callable[[str, AgentLike], McpList],
    dict[str, str],
]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp/"
    running: list[SupervisorLike] = []  # the supervisor, once the service runs

    def current_config() -> Config:
        return running[0].config() if running else config  # follows hot reloads

    async def serve_mcp(supervisor: SupervisorLike) -> None:
        running.append(supervisor)
        from meta_harness.mcpserver.tools import build_mcp  # the MCP SDK: ~1 s, after boot

        srv = build_mcp(workspace, config=supervisor.config)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with srv.session_manager.run():
                yield

        app = Starlette(
            routes=[Mount("/mcp", app=srv.streamable_http_app(streamable_http_path="/"))],
            lifespan=lifespan,
        )
        server = QuietServer(
            uvicorn.Config(
                app,
                log_level="warning",
                timeout_graceful_shutdown=MCP_SHUTDOWN_GRACE,
                lifespan="on",
            )
        )
        serving = asyncio.ensure_future(server.serve([sock]))
        try:
            await supervisor.stop_event.wait()
        finally:
            server.should_exit = True
            await serving

    entries = mcp_entries(workspace, url, config=current_config)
    return serve_mcp, entries, {"mcp": url}
