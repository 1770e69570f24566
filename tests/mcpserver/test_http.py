"""The built-in server over real streamable HTTP on 127.0.0.1, as agents reach it.

uvicorn serves the app mounted at `/mcp` (the way the web surface mounts it) and the
official MCP client sends the `X-Task-Token` header through its httpx2 client, in both
the 2026-07-28 envelope (`mode="auto"`) and the older session protocol (`legacy`).
"""

from __future__ import annotations

import pytest

from meta_harness.base.config import Config
from meta_harness.base.layout import Workspace
from meta_harness.mcpserver.identity import TOKEN_HEADER
from meta_harness.mcpserver.tools import build_mcp
from tests.mcpserver.support import (
    http_client,
    make_task,
    serve_mcp,
    task_drops,
    text_of,
    token,
    token_headers,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_task_calls_the_tools_over_http_with_its_token_header(
    ws: Workspace, config: Config, mode: str
) -> None:
    make_task(ws, config, "root")
    async with (
        serve_mcp(build_mcp(ws)) as url,
        http_client(url, token_headers(ws, "root"), mode) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert "task_spawn" in names and "task_complete" in names
        spawned = await client.call_tool("task_spawn", {"prompt": "hello"})
        assert not spawned.is_error, text_of(spawned)
        assert spawned.structured_content is not None
        child = spawned.structured_content["task_id"]
        status = await client.call_tool("task_status", {"task_id": child})
        assert status.structured_content is not None
        assert status.structured_content["phase"] == "queued"
    [(_, drop)] = task_drops(ws)
    assert (drop.task_id, drop.parent) == (child, "root")


async def test_http_calls_without_the_header_or_with_a_bad_token_are_unauthenticated(
    ws: Workspace, config: Config
) -> None:
    make_task(ws, config, "root")
    async with serve_mcp(build_mcp(ws)) as url:
        for headers in (None, {TOKEN_HEADER: "root.deadbeef"}, {TOKEN_HEADER: "garbage"}):
            async with http_client(url, headers) as client:
                result = await client.call_tool("task_spawn", {"prompt": "x"})
                assert result.is_error and "unauthenticated" in text_of(result), headers
    assert task_drops(ws) == []


async def test_a_token_names_one_task_only_over_http(ws: Workspace, config: Config) -> None:
    make_task(ws, config, "alice")
    make_task(ws, config, "bob")
    async with serve_mcp(build_mcp(ws)) as url:
        async with http_client(url, token_headers(ws, "alice")) as alice:
            spawned = await alice.call_tool("task_spawn", {"prompt": "mine"})
            assert spawned.structured_content is not None
            child = spawned.structured_content["task_id"]
        async with http_client(url, token_headers(ws, "bob")) as bob:
            me = await bob.call_tool("task_status", {})
            assert me.structured_content is not None
            assert me.structured_content["task_id"] == "bob"
            other = await bob.call_tool("task_cancel", {"task_id": child})
            assert other.is_error and "not yours" in text_of(other)
            # alice's token with bob's id in front does not verify
            forged = token(ws, "alice").replace("alice", "bob", 1)
        async with http_client(url, {TOKEN_HEADER: forged}) as mallory:
            result = await mallory.call_tool("task_status", {})
            assert result.is_error and "unauthenticated" in text_of(result)
