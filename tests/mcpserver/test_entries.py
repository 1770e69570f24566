"""Each task's ACP `mcpServers` list: the built-in server, the profile's servers, warnings.

Entries are checked against the ACP SDK's own wire models (`acp.schema`), because an
agent silently drops an entry that does not match the schema (a stdio entry without
`env`, say) instead of failing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pytest
from acp.schema import HttpMcpServer, McpServerStdio, SseMcpServer

from meta_harness.base.config import Config, load_config
from meta_harness.base.layout import Workspace
from meta_harness.mcpserver.entries import BUILTIN_NAME, PROXY_MODULE, mcp_entries
from meta_harness.mcpserver.identity import TOKEN_HEADER
from meta_harness.mcpserver.stdio import TOKEN_ENV
from tests.mcpserver.support import make_task, token

URL = "http://127.0.0.1:9/mcp/"

SERVERS_TOML = """
[mcp_servers.files]
command = "{python}"
args = ["-m", "files_server", "{task_dir}"]
env = { FILES_KEY = "s3cret", ROOT = "{workspace}" }

[mcp_servers.search]
type = "http"
url = "http://127.0.0.1:7/search"
headers = { Authorization = "Bearer abc" }

[mcp_servers.legacy]
type = "sse"
url = "http://127.0.0.1:7/sse"

[profiles.tools]
extends = "demo"
mcp_servers = ["files", "search", "legacy"]
"""


@dataclass(frozen=True)
class Caps:
    mcp_http: bool
    mcp_sse: bool


@dataclass(frozen=True)
class FakeSession:
    caps: Caps


HTTP_ONLY = FakeSession(Caps(mcp_http=True, mcp_sse=False))
STDIO_ONLY = FakeSession(Caps(mcp_http=False, mcp_sse=False))
EVERYTHING = FakeSession(Caps(mcp_http=True, mcp_sse=True))


@pytest.fixture
def tools_config(ws: Workspace) -> Config:
    with ws.config_file.open("a") as f:
        f.write(SERVERS_TOML)
    return load_config(ws)


def _wire(entry: dict[str, Any]) -> Any:
    """Validate an entry with the ACP SDK's model for its transport."""
    model = {"http": HttpMcpServer, "sse": SseMcpServer}.get(entry.get("type", ""), McpServerStdio)
    return model.model_validate(entry)


def test_an_http_agent_gets_the_builtin_server_over_http_with_its_task_token(
    ws: Workspace, config: Config
) -> None:
    make_task(ws, config, "root")
    servers, warnings = mcp_entries(ws, URL, config=lambda: config)("root", HTTP_ONLY)
    assert warnings == []
    assert servers == [
        {
            "type": "http",
            "name": BUILTIN_NAME,
            "url": URL,
            "headers": [{"name": TOKEN_HEADER, "value": token(ws, "root")}],
        }
    ]
    _wire(servers[0])


def test_the_url_may_be_given_late_as_a_callable(ws: Workspace, config: Config) -> None:
    make_task(ws, config, "root")
    port = {"n": 0}
    entries = mcp_entries(ws, lambda: f"http://127.0.0.1:{port['n']}/mcp/", config=lambda: config)
    port["n"] = 4242
    servers, _ = entries("root", HTTP_ONLY)
    assert servers[0]["url"] == "http://127.0.0.1:4242/mcp/"


def test_an_agent_without_http_reaches_the_builtin_server_through_the_stdio_proxy(
    ws: Workspace, config: Config
) -> None:
    make_task(ws, config, "root")
    servers, warnings = mcp_entries(ws, URL, config=lambda: config)("root", STDIO_ONLY)
    [entry] = servers
    assert "type" not in entry
    assert (entry["name"], entry["command"]) == (BUILTIN_NAME, sys.executable)
    assert entry["args"] == ["-m", PROXY_MODULE, URL]
    env = {e["name"]: e["value"] for e in entry["env"]}
    assert env[TOKEN_ENV] == token(ws, "root")
    assert env["META_HARNESS_WORKSPACE"] == str(ws.root)
    assert any("stdio proxy" in w for w in warnings)
    _wire(entry)


def test_profile_servers_become_wire_entries_with_env_and_headers_as_lists(
    ws: Workspace, tools_config: Config
) -> None:
    make_task(ws, tools_config, "root", profile="tools")
    servers, warnings = mcp_entries(ws, URL, config=lambda: tools_config)("root", EVERYTHING)
    assert warnings == []
    by_name = {s["name"]: s for s in servers}
    assert list(by_name) == [BUILTIN_NAME, "files", "search", "legacy"]
    files = by_name["files"]
    assert files["command"] == sys.executable
    assert files["args"] == ["-m", "files_server", str(ws.task("root").dir)]
    assert files["env"] == [
        {"name": "FILES_KEY", "value": "s3cret"},
        {"name": "ROOT", "value": str(ws.root)},
    ]
    assert by_name["search"] == {
        "type": "http",
        "name": "search",
        "url": "http://127.0.0.1:7/search",
        "headers": [{"name": "Authorization", "value": "Bearer abc"}],
    }
    assert by_name["legacy"]["headers"] == []
    for entry in servers:
        _wire(entry)


def test_servers_the_agent_cannot_use_are_left_out_with_a_warning(
    ws: Workspace, tools_config: Config
) -> None:
    make_task(ws, tools_config, "root", profile="tools")
    entries = mcp_entries(ws, URL, config=lambda: tools_config)

    servers, warnings = entries("root", HTTP_ONLY)
    assert [s["name"] for s in servers] == [BUILTIN_NAME, "files", "search"]
    assert warnings == ["MCP server 'legacy' left out: the agent does not accept MCP over sse"]

    servers, warnings = entries("root", STDIO_ONLY)
    assert [s["name"] for s in servers] == [BUILTIN_NAME, "files"]
    assert sum("left out" in w for w in warnings) == 2


def test_a_task_keeps_the_servers_of_the_profile_it_was_created_with(
    ws: Workspace, tools_config: Config
) -> None:
    make_task(ws, tools_config, "root", profile="tools")
    ws.config_file.write_text("")  # the profile and its servers are gone from the config
    edited = load_config(ws)
    servers, warnings = mcp_entries(ws, URL, config=lambda: edited)("root", EVERYTHING)
    assert [s["name"] for s in servers] == [BUILTIN_NAME]
    assert len(warnings) == 3 and all("undefined" in w for w in warnings)
