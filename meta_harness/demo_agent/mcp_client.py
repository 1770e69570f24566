"""A minimal MCP streamable-HTTP client (urllib, imported lazily on the first call).

Owns one initialized MCP session per server (initialized again when the server answers 404),
their cache for this process, JSON and SSE answers and same-origin redirects. It only calls
`tools/call`; the `/mcp` command in `commands` decides what to call.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from .protocol import AGENT_NAME, VERSION, Json, dumps

logger = logging.getLogger(__name__)

MCP_PROTOCOL_VERSION = "2025-11-25"
MCP_HTTP_TIMEOUT = 60.0  # one MCP HTTP exchange; task_spawn writes and fsyncs files server-side
MCP_MAX_REDIRECTS = 3  # Starlette mounts answer /mcp with a 307 to /mcp/


class McpError(Exception):
    """The MCP call failed (transport, JSON-RPC error, or a malformed answer)."""


class McpSessionExpired(McpError):
    """The server forgot our mcp-session-id (HTTP 404): initialize again."""


class McpHttpSession:
    """One initialized MCP session with one server (url + headers); calls are serialised."""

    def __init__(self, url: str, headers: list[tuple[str, str]]) -> None:
        self.url = url
        self.headers = headers
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._next_id = 1
        self._lock = threading.Lock()

    def call_tool(self, tool: str, arguments: Json) -> Json:
        with self._lock:
            for attempt in range(2):
                try:
                    if self.protocol_version is None:
                        self._initialize()
                    return self._request("tools/call", {"name": tool, "arguments": arguments})
                except McpSessionExpired:
                    if attempt:
                        raise
                    logger.info("MCP session at %s expired; initializing again", self.url)
                    self.session_id = self.protocol_version = None
        raise McpError("unreachable")

    def _initialize(self) -> None:
        result = self._request(
            "initialize",
            {
                "protocolVersion": MCP_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": AGENT_NAME, "version": VERSION},
            },
        )
        version = result.get("protocolVersion")
        self.protocol_version = version if isinstance(version, str) else MCP_PROTOCOL_VERSION
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, None)

    def _request(self, method: str, params: Json) -> Json:
        request_id = self._next_id
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        response = self._post(message, request_id)
        if response is None:
            raise McpError(f"no response to {method}")
        if "error" in response:
            error = response["error"] if isinstance(response["error"], dict) else {}
            raise McpError(str(error.get("message", "JSON-RPC error")))
        result = response.get("result")
        if not isinstance(result, dict):
            raise McpError(f"malformed result for {method}")
        return result

    def _post(self, message: Json, expect_id: int | None) -> Json | None:
        """POST one JSON-RPC message; return the response with `expect_id` (None: no reply)."""
        import http.client
        import urllib.error
        import urllib.parse
        import urllib.request

        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "mcp-protocol-version": self.protocol_version or MCP_PROTOCOL_VERSION,
        }
        headers.update(self.headers)
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        # No proxies: the MCP servers handed to agents live on loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = self.url
        for _hop in range(MCP_MAX_REDIRECTS + 1):
            request = urllib.request.Request(url, data=dumps(message), headers=headers)
            try:
                with opener.open(request, timeout=MCP_HTTP_TIMEOUT) as response:
                    self.url = url
                    session_id = response.headers.get("mcp-session-id")
                    if session_id:
                        self.session_id = session_id
                    if expect_id is None:
                        return None
                    content_type = (response.headers.get("content-type") or "").lower()
                    if content_type.startswith("text/event-stream"):
                        return self._from_sse(response, expect_id)
                    return self._from_json(response.read(), expect_id)
            except urllib.error.HTTPError as exc:
                location = exc.headers.get("location") if exc.headers else None
                if exc.code in (307, 308) and location:
                    url = self._same_origin(url, urllib.parse.urljoin(url, location))
                    continue
                try:
                    body = exc.read(2000).decode("utf-8", "replace").strip()
                except (OSError, http.client.HTTPException):
                    body = ""
                if exc.code == 404 and self.session_id:
                    raise McpSessionExpired(f"HTTP 404: {body}") from exc
                raise McpError(f"HTTP {exc.code} {exc.reason} {body}".strip()) from exc
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise McpError(f"{url}: {exc}") from exc
        raise McpError(f"too many redirects from {self.url}")

    @staticmethod
    def _same_origin(old: str, new: str) -> str:
        import urllib.parse

        a, b = urllib.parse.urlsplit(old), urllib.parse.urlsplit(new)
        if (a.scheme, a.netloc) != (b.scheme, b.netloc):
            raise McpError(f"refusing a cross-origin redirect to {new}")
        return new

    @staticmethod
    def _matching(message: Any, expect_id: int) -> Json | None:
        candidates = message if isinstance(message, list) else [message]
        for item in candidates:
            if (
                isinstance(item, dict)
                and item.get("id") == expect_id
                and ("result" in item or "error" in item)
            ):
                return item
        return None

    def _from_json(self, body: bytes, expect_id: int) -> Json:
        try:
            found = self._matching(json.loads(body), expect_id)
        except ValueError as exc:
            raise McpError("response body is not JSON") from exc
        if found is None:
            raise McpError("no matching JSON-RPC response in the body")
        return found

    def _from_sse(self, response: Any, expect_id: int) -> Json:
        data: list[str] = []
        while True:
            raw = response.readline()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line:
                if data:
                    try:
                        found = self._matching(json.loads("\n".join(data)), expect_id)
                    except ValueError:
                        found = None  # a priming or keep-alive event
                    if found is not None:
                        return found
                    data = []
                if not raw:
                    raise McpError("event stream ended without the response")


class McpClients:
    """The MCP sessions of this agent process, cached per server (name, url, headers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str, tuple[tuple[str, str], ...]], McpHttpSession] = {}

    def get(self, entry: Json) -> McpHttpSession:
        url = entry.get("url")
        if not isinstance(url, str):
            raise McpError("the server entry has no url")
        headers = [
            (str(h.get("name")), str(h.get("value")))
            for h in entry.get("headers") or []
            if isinstance(h, dict) and h.get("name")
        ]
        key = (str(entry.get("name")), url, tuple(headers))
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = McpHttpSession(url, headers)
            return session


def find_http_server(servers: list[Json], name: str) -> Json:
    entry = next((s for s in servers if s.get("name") == name), None)
    if entry is None:
        raise McpError(f"no MCP server named {name!r} in this session")
    if entry.get("type") != "http":
        raise McpError(f"MCP server {name!r} is not an http server")
    return entry


def tool_text(result: Json) -> str:
    texts = [
        str(item.get("text", ""))
        for item in result.get("content") or []
        if isinstance(item, dict) and item.get("type") == "text"
    ]
    if texts:
        return "\n".join(texts)
    if "structuredContent" in result:
        return json.dumps(result["structuredContent"])
    return ""
