"""The stdio proxy: an MCP stdio server for agents without http, forwarding to the endpoint.

The official MCP client launches `python -m meta_harness.mcpserver.stdio URL` (the entry
an agent without `mcpCapabilities.http` receives) against the real HTTP endpoint, in the
2026-07-28 envelope (`auto`) and the older session protocol (`legacy`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from mcp import Client, StdioServerParameters

from meta_harness.base.config import Config
from meta_harness.base.layout import Workspace
from meta_harness.mcpserver.entries import PROXY_MODULE
from meta_harness.mcpserver.stdio import TOKEN_ENV, header_value
from meta_harness.mcpserver.tools import build_mcp
from tests.mcpserver.support import make_task, serve_mcp, task_drops, text_of, token

pytestmark = pytest.mark.anyio


def _proxy(url: str, task_token: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", PROXY_MODULE, url], env={TOKEN_ENV: task_token}
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_proxy_carries_tool_calls_to_the_endpoint_with_the_task_token(
    ws: Workspace, config: Config, mode: str
) -> None:
    make_task(ws, config, "root")
    async with (
        serve_mcp(build_mcp(ws)) as url,
        Client(_proxy(url, token(ws, "root")), mode=mode) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"task_spawn", "task_status"} <= names
        spawned = await client.call_tool("task_spawn", {"prompt": "via stdio"})
        assert not spawned.is_error, text_of(spawned)
        assert spawned.structured_content is not None
        me = await client.call_tool("task_status", {})
        assert me.structured_content is not None and me.structured_content["task_id"] == "root"
    [(_, drop)] = task_drops(ws)
    assert (drop.task_id, drop.parent) == (spawned.structured_content["task_id"], "root")


async def test_the_proxy_with_a_wrong_token_is_unauthenticated(
    ws: Workspace, config: Config
) -> None:
    make_task(ws, config, "root")
    async with (
        serve_mcp(build_mcp(ws)) as url,
        Client(_proxy(url, "root.forged"), mode="legacy") as client,
    ):
        result = await client.call_tool("task_status", {})
        assert result.is_error and "unauthenticated" in text_of(result)


def test_the_proxy_imports_only_the_stdlib() -> None:
    code = (
        f"import sys, {PROXY_MODULE}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('mcp', 'pydantic', 'httpx2', 'anyio', 'orjson', 'acp')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_routing_header_values_are_encoded_like_the_sdk_does() -> None:
    assert header_value("task_spawn") == "task_spawn"
    assert header_value("naïve").startswith("=?base64?")
    assert header_value(" padded") != " padded"
