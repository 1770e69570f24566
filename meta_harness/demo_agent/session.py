"""One live session of this agent process: its open logs, MCP servers, permissions and turn.

The files belong to `store`, the running turn to `turn` and `prompt`; `agent` creates, replaces
and retires sessions.
"""

from __future__ import annotations

from .protocol import Json, PermissionKind
from .store import SessionStore
from .turn import Turn


class Session:
    """One live session of this process: its files, MCP servers and remembered permissions."""

    def __init__(
        self,
        session_id: str,
        cwd: str,
        mcp_servers: list[Json],
        store: SessionStore,
        tool_calls: int,
    ) -> None:
        self.id = session_id
        self.cwd = cwd
        self.mcp_servers = mcp_servers
        self.log = store.open_log(session_id)
        self.received = store.open_received(session_id)
        self.remembered: dict[str, PermissionKind] = {}
        self.tool_calls = tool_calls
        self.turn: Turn | None = None
        self.retired = False

    def next_tool_call_id(self) -> str:
        self.tool_calls += 1
        return f"call-{self.tool_calls}"

    def close_files(self) -> None:
        self.log.close()
        self.received.close()
