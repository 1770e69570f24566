"""The Starlette app: routes, the guard middleware, error rendering and the lifespan.

`create_app(workspace, token=..., mcp=...)` builds the whole HTTP surface for one
workspace: the dashboard at `/`, its static files, the JSON API and SSE streams under
`/api`, and, when given, the built-in MCP server mounted at `/mcp` (its session manager
runs in the app's lifespan, beside the shared file watcher). Every error leaves as
`{"error": "..."}`; a `MetaHarnessError` keeps its own `http_status`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from meta_harness.base.errors import MetaHarnessError
from meta_harness.base.layout import Workspace
from meta_harness.web import api, openapi, sse
from meta_harness.web.auth import LOOPBACK_NAMES, MAX_BODY_BYTES, MAX_STREAMS, MCP_PREFIX, Guard
from meta_harness.web.hub import Hub
from meta_harness.web.state import EventFold, TaskIndex, WebState

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
ASSET_QUERY = "{{asset_query}}"  # replaced in dashboard.html: carries ?token= to its assets


def create_app(
    workspace: Workspace,
    *,
    token: str | None = None,
    allowed_hosts: frozenset[str] | None = None,
    mcp: MCPServer | None = None,
    max_body: int = MAX_BODY_BYTES,
    max_streams: int = MAX_STREAMS,
) -> Starlette:
    """The HTTP surface of `workspace`.

    `token`: required on every request when given (non-loopback binds). `allowed_hosts`:
    the `Host` names served; defaults to loopback names when there is no token (DNS
    rebinding guard) and to any host with a token. `mcp`: mounted at `/mcp` if given.
    """
    if allowed_hosts is None and token is None:
        allowed_hosts = LOOPBACK_NAMES
    hub = Hub([workspace.tasks_dir, workspace.state_dir], max_subscribers=max_streams)
    web = WebState(workspace, TaskIndex(workspace), EventFold(workspace.events_file), hub)
    page = (STATIC_DIR / "dashboard.html").read_text("utf-8")

    async def dashboard(request: Request) -> Response:
        offered = request.query_params.get("token")
        query = f"?token={quote(offered, safe='')}" if token is not None and offered else ""
        return HTMLResponse(page.replace(ASSET_QUERY, query))

    async def describe(request: Request) -> Response:
        return api.JSON(openapi.document())

    routes: list[BaseRoute] = [
        Route("/", dashboard, methods=["GET"]),
        Route("/api/openapi.json", describe, methods=["GET"]),
        Route("/api/tasks", api.list_tasks, methods=["GET"]),
        Route("/api/tasks", api.create_task, methods=["POST"]),
        Route("/api/tasks/{task_id}", api.get_task, methods=["GET"]),
        Route("/api/tasks/{task_id}/transcript", api.get_transcript, methods=["GET"]),
        Route("/api/tasks/{task_id}/stream", sse.task_stream, methods=["GET"]),
        Route("/api/tasks/{task_id}/messages", api.post_message, methods=["POST"]),
        Route("/api/tasks/{task_id}/cancel", api.cancel, methods=["POST"]),
        Route("/api/tasks/{task_id}/permissions/{request_id}", api.answer, methods=["POST"]),
        Route("/api/permissions", api.list_permissions, methods=["GET"]),
        Route("/api/stats", api.stats, methods=["GET"]),
        Route("/api/events", sse.events_stream, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    if mcp is not None:
        routes.append(Mount(MCP_PREFIX, app=mcp.streamable_http_app(streamable_http_path="/")))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(hub.running())
            if mcp is not None:
                await stack.enter_async_context(mcp.session_manager.run())
            yield

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, allowed_hosts=allowed_hosts, max_body=max_body)],
        exception_handlers={
            MetaHarnessError: _on_error,
            HTTPException: _on_http_error,
            Exception: _on_crash,
        },
        lifespan=lifespan,
    )
    app.state.web = web
    return app


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MetaHarnessError)
    return api.JSON({"error": exc.message}, status_code=exc.http_status)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return api.JSON({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _on_crash(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return api.JSON({"error": "internal error; see the supervisor log"}, status_code=500)
