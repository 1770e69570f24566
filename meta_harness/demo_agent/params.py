"""Validation of the params of incoming ACP requests.

Each `require_*` returns the checked value or raises the -32602 `RpcError` the client receives;
what the values mean is up to `agent`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .protocol import Json, invalid_params

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def require_dict(value: Any, what: str) -> Json:
    if not isinstance(value, dict):
        raise invalid_params(f"{what} must be an object")
    return value


def require_str(params: Json, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise invalid_params(f"{key} must be a string")
    return value


def require_session_id(params: Json) -> str:
    session_id = require_str(params, "sessionId")
    if not SESSION_ID_RE.fullmatch(session_id):
        raise invalid_params("sessionId has forbidden characters")
    return session_id


def require_cwd(params: Json) -> str:
    cwd = require_str(params, "cwd")
    if not os.path.isabs(cwd):
        raise invalid_params("cwd must be an absolute path")
    return cwd


def optional_mcp_servers(params: Json) -> list[Json]:
    servers = params.get("mcpServers", [])
    if not isinstance(servers, list) or not all(isinstance(s, dict) for s in servers):
        raise invalid_params("mcpServers must be a list of objects")
    return servers
