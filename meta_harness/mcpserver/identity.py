"""Who is calling: the task a tool call speaks for, from the token it presents.

Each task's agent is given `X-Task-Token: <task-id>.<HMAC>` (`base.tokens`). A tool
asks `Identity.caller(ctx)`: the token is taken from the request (by default the HTTP
header; in-process clients, which carry no headers, can present it in the request's
`_meta` when the server is built with `token_from_meta`) and verified against the
workspace secret. No token, or one that does not verify, is "unauthenticated".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from meta_harness.base.tokens import TOKEN_HEADER, task_of

TOKEN_META_KEY = "meta-harness/taskToken"

TokenReader = Callable[[Context[Any, Any]], str | None]


def token_from_headers(ctx: Context[Any, Any]) -> str | None:
    """The `X-Task-Token` header of the HTTP request carrying this call."""
    headers = ctx.headers
    if headers is None:
        return None
    value = headers.get(TOKEN_HEADER) or headers.get(TOKEN_HEADER.lower())
    if value is None:  # a plain mapping is not case-insensitive
        wanted = TOKEN_HEADER.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value.strip() if isinstance(value, str) else None


def token_from_meta(ctx: Context[Any, Any]) -> str | None:
    """The token in the request's `_meta` (for in-process clients: tests, embedding)."""
    meta = ctx.request_context.meta
    value = meta.get(TOKEN_META_KEY) if meta is not None else None
    return value if isinstance(value, str) else None


class Identity:
    def __init__(self, secret: bytes, read_token: TokenReader = token_from_headers) -> None:
        self._secret = secret
        self._read_token = read_token

    def caller(self, ctx: Context[Any, Any]) -> str:
        """The calling task's id; raises ToolError("unauthenticated: ...") otherwise."""
        token = self._read_token(ctx)
        if not token:
            raise ToolError(
                f"unauthenticated: no {TOKEN_HEADER} header. meta-harness gives each task's "
                "agent this header in its MCP server entry; call the tools through that entry"
            )
        task_id = task_of(self._secret, token)
        if task_id is None:
            raise ToolError(
                f"unauthenticated: the {TOKEN_HEADER} header is not a valid token of this "
                "workspace; use the header from this task's MCP server entry unchanged"
            )
        return task_id
