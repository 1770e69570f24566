"""Each task's ACP `mcpServers` list: the built-in server, then the profile's own servers.

`mcp_entries(workspace, url)` returns the callable the supervisor asks on every
`session/new`, `session/load` and `session/resume`: given a task id and its live agent
session, it returns the wire entries and warnings about anything left out. The
built-in server is an `http` entry carrying the task's `X-Task-Token`; an agent without
`mcpCapabilities.http` gets a stdio entry running the stdlib proxy
(`meta_harness.mcpserver.stdio`) instead. User servers come from the task's profile
snapshot (`profile.mcp_servers`) and the config's `[mcp_servers]`; an http/sse server
the agent cannot use is left out with a warning. Values may use `{python}`,
`{workspace}`, `{task_dir}` and `{task_id}`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from meta_harness.base.config import Config, McpServerDef, Profile
from meta_harness.base.errors import ConfigError
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.base.tokens import TOKEN_HEADER, task_token, workspace_secret
from meta_harness.domain.tasks import read_task_or_none
from meta_harness.mcpserver.settings import ConfigSource, FileConfig
from meta_harness.mcpserver.stdio import TOKEN_ENV

logger = logging.getLogger(__name__)

BUILTIN_NAME = "meta-harness"
PROXY_MODULE = "meta_harness.mcpserver.stdio"
WORKSPACE_MARKER = "META_HARNESS_WORKSPACE"  # the boot sweep ends leftover proxies by it

Entry = dict[str, Any]
McpList = tuple[list[Entry], list[str]]  # (wire entries, warnings about left-out servers)


class McpCaps(Protocol):
    @property
    def mcp_http(self) -> bool: ...

    @property
    def mcp_sse(self) -> bool: ...


class AgentLike(Protocol):
    """What the entries need of a live agent session: its MCP transport capabilities."""

    @property
    def caps(self) -> McpCaps: ...


def _pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def builtin_entry(url: str, token: str, *, http: bool, python: str, workspace_root: str) -> Entry:
    """The built-in server: over http when the agent can, else through the stdio proxy."""
    if http:
        return {
            "type": "http",
            "name": BUILTIN_NAME,
            "url": url,
            "headers": _pairs({TOKEN_HEADER: token}),
        }
    return {
        "name": BUILTIN_NAME,
        "command": python,
        "args": ["-m", PROXY_MODULE, url],
        "env": _pairs({TOKEN_ENV: token, WORKSPACE_MARKER: workspace_root}),
    }


def user_entry(name: str, server: McpServerDef, expand: Callable[[str], str]) -> Entry:
    """One `[mcp_servers.<name>]` definition as an ACP wire entry; ValueError if incomplete."""
    if server.type == "stdio":
        if not server.command:
            raise ValueError("a stdio server needs `command`")
        command = expand(server.command)
        if not os.path.isabs(command):  # ACP wants an absolute path
            command = shutil.which(command) or command
        return {
            "name": name,
            "command": command,
            "args": [expand(a) for a in server.args],
            "env": _pairs({k: expand(v) for k, v in server.env.items()}),
        }
    if not server.url:
        raise ValueError(f"an {server.type} server needs `url`")
    return {
        "type": server.type,
        "name": name,
        "url": expand(server.url),
        "headers": _pairs({k: expand(v) for k, v in server.headers.items()}),
    }


def resolve(
    profile: Profile,
    servers: Mapping[str, McpServerDef],
    builtin: Entry,
    caps: McpCaps,
    expand: Callable[[str], str],
) -> McpList:
    """The built-in entry plus the profile's servers the agent can use; warnings for the rest."""
    entries: list[Entry] = [builtin]
    warnings: list[str] = []
    if builtin.get("type") is None:
        warnings.append(
            "the agent does not accept MCP over http; the meta-harness tools reach it "
            "through a stdio proxy"
        )
    allowed = {"stdio": True, "http": caps.mcp_http, "sse": caps.mcp_sse}
    for name in profile.mcp_servers:
        server = servers.get(name)
        if server is None:
            warnings.append(f"MCP server {name!r} of profile {profile.name} is undefined; left out")
            continue
        if name == BUILTIN_NAME:
            warnings.append(f"MCP server name {name!r} is reserved for the built-in one; left out")
            continue
        if not allowed[server.type]:
            warnings.append(
                f"MCP server {name!r} left out: the agent does not accept MCP over {server.type}"
            )
            continue
        try:
            entries.append(user_entry(name, server, expand))
        except ValueError as e:
            warnings.append(f"MCP server {name!r} left out: {e}")
    return entries, warnings


def _expander(workspace: Workspace, paths: TaskPaths, python: str) -> Callable[[str], str]:
    def expand(value: str) -> str:
        return (
            value.replace("{python}", python)
            .replace("{workspace}", str(workspace.root))
            .replace("{task_dir}", str(paths.dir))
            .replace("{task_id}", paths.id)
        )

    return expand


def task_profile(workspace: Workspace, config: Config, task_id: str) -> Profile:
    """The profile the task was created with (its snapshot), else its profile by name."""
    paths = workspace.task(task_id)
    with contextlib.suppress(OSError, ValueError):
        return Profile.model_validate_json(paths.profile_snapshot.read_bytes())
    record = read_task_or_none(paths)
    name = record.profile if record else config.settings.supervisor.default_profile
    try:
        return config.profile(name)
    except ConfigError:
        return config.profile(config.settings.supervisor.default_profile)


def mcp_entries(
    workspace: Workspace,
    url: str | Callable[[], str],
    *,
    config: ConfigSource | None = None,
    python: str = sys.executable,
) -> Callable[[str, AgentLike], McpList]:
    """The supervisor's `mcp_entries` hook for a built-in server reachable at `url`.

    `url` may be a callable when the HTTP server's port is known only once it listens.
    """
    secret = workspace_secret(workspace)
    current = config or FileConfig(workspace)

    def entries(task_id: str, session: AgentLike) -> McpList:
        cfg = current()
        caps = session.caps
        endpoint = url() if callable(url) else url
        builtin = builtin_entry(
            endpoint,
            task_token(secret, task_id),
            http=caps.mcp_http,
            python=python,
            workspace_root=str(workspace.root),
        )
        expand = _expander(workspace, workspace.task(task_id), python)
        profile = task_profile(workspace, cfg, task_id)
        result = resolve(profile, cfg.settings.mcp_servers, builtin, caps, expand)
        for warning in result[1]:
            logger.warning("task %s: %s", task_id, warning)
        return result

    return entries
