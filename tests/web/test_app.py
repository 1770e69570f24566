"""The app factory: an optional MCP server mounted at /mcp with its session manager run by
the app's lifespan; without one, /mcp is simply not there."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.testclient import TestClient

from meta_harness.base.layout import Workspace
from tests.web.conftest import WAIT, serve

pytestmark = pytest.mark.anyio


def toy_mcp() -> MCPServer:
    srv = MCPServer("toy")

    @srv.tool()
    def ping(text: str) -> str:
        """Answer with the text, prefixed."""
        return f"pong: {text}"

    return srv


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("require_token", [False, True])
async def test_a_mounted_mcp_server_answers_tool_calls_over_http(
    ws: Workspace, mode: str, require_token: bool
) -> None:
    async with (
        serve(ws, mcp=toy_mcp(), require_token=require_token) as running,
        httpx2.AsyncClient(timeout=WAIT) as http,
        Client(streamable_http_client(running.url + "/mcp/", http_client=http), mode=mode) as mcp,
    ):
        result = await mcp.call_tool("ping", {"text": "hi"})
        assert not result.is_error
        assert result.structured_content == {"result": "pong: hi"}
        # the web API next to it keeps its own rules
        status = (await http.get(running.url + "/api/stats")).status_code
        assert status == (401 if require_token else 200)


def test_without_an_mcp_server_there_is_no_mcp_route(client: TestClient) -> None:
    assert client.post("/mcp/", json={}).status_code == 404
