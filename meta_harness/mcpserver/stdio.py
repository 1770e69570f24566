"""A stdio MCP server that forwards to the built-in streamable-HTTP endpoint (stdlib only).

For agents without MCP over http. The agent runs `python -m meta_harness.mcpserver.stdio
URL` with the task's token in `META_HARNESS_TASK_TOKEN`; every JSON-RPC line read on
stdin is POSTed to URL with the `X-Task-Token` header (plus the session id and protocol
headers the server asked for), and every JSON-RPC message of the answer, plain JSON or
an SSE stream, is written to stdout as one line. Requests run concurrently, one thread
each. It imports nothing but the stdlib (`import mcp` alone costs ~1.8 s), so it starts
in tens of milliseconds. Stdin EOF ends the MCP session (DELETE) and the process.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("meta_harness.mcpserver.stdio")  # __name__ is "__main__" under -m

TOKEN_ENV = "META_HARNESS_TASK_TOKEN"
TOKEN_HEADER = "X-Task-Token"  # the same header as identity.TOKEN_HEADER (mcp-free copy)
HTTP_TIMEOUT = 600.0  # one exchange; the tools answer in ms, but an SSE stream may idle
CLOSE_TIMEOUT = 2.0  # the DELETE that ends the MCP session at exit is a courtesy
MAX_REDIRECTS = 3  # Starlette mounts answer /mcp with a 307 to /mcp/
PROTOCOL_META_KEY = "io.modelcontextprotocol/protocolVersion"
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
INTERNAL_ERROR = -32603
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")

Json = dict[str, Any]


def header_value(value: str) -> str:
    """An HTTP header value as the MCP SDK encodes it (base64 sentinel when unsafe)."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not value.startswith("=?"):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="


class Proxy:
    def __init__(self, url: str, token: str, out: Any = None) -> None:
        self.url = url
        self.token = token
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._out = out if out is not None else sys.stdout.buffer
        self._out_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- stdin side ----------------------------------------------------------------------------

    def handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            logger.warning("stdin line is not JSON; ignored")
            return
        if not isinstance(message, dict):
            logger.warning("stdin message is not a JSON object; ignored")
            return
        if message.get("method") == "initialize" or "id" not in message:
            self.forward(message)  # in order: the session id comes from initialize
            return
        thread = threading.Thread(target=self.forward, args=(message,), daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def forward(self, message: Json) -> None:
        request_id = message.get("id") if "method" in message else None
        try:
            self._exchange(message)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            logger.warning("forwarding %s failed: %s", message.get("method"), exc)
            if request_id is not None:
                self.emit(_error(request_id, f"meta-harness MCP endpoint {self.url}: {exc}"))

    # -- HTTP side -----------------------------------------------------------------------------

    def headers_for(self, message: Json) -> dict[str, str]:
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            TOKEN_HEADER: self.token,
        }
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        method = message.get("method")
        if isinstance(meta, dict) and isinstance(meta.get(PROTOCOL_META_KEY), str):
            # 2026-07-28: each request carries its version; routing headers must match
            headers["mcp-protocol-version"] = meta[PROTOCOL_META_KEY]
            if isinstance(method, str):
                headers["mcp-method"] = method
                key = NAME_BEARING.get(method)
                name = params.get(key) if key and isinstance(params, dict) else None
                if isinstance(name, str):
                    headers["mcp-name"] = header_value(name)
            return headers
        if self.protocol_version:
            headers["mcp-protocol-version"] = self.protocol_version
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    def _exchange(self, message: Json) -> None:
        body = json.dumps(message).encode()
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            conn, path = _connect(url, HTTP_TIMEOUT)
            try:
                conn.request("POST", path, body=body, headers=self.headers_for(message))
                response = conn.getresponse()
                location = response.getheader("location")
                if response.status in (307, 308) and location:
                    response.read()
                    url = _same_origin(url, urllib.parse.urljoin(url, location))
                    continue
                self.url = url
                self._answer(message, response)
                return
            finally:
                conn.close()
        raise ValueError(f"too many redirects from {self.url}")

    def _answer(self, message: Json, response: http.client.HTTPResponse) -> None:
        request_id = message.get("id") if "method" in message else None
        session_id = response.getheader("mcp-session-id")
        if session_id:
            self.session_id = session_id
        if response.status in (202, 204):
            response.read()
            return
        kind = (response.getheader("content-type") or "").lower()
        if response.status >= 400 and not kind.startswith("application/json"):
            text = response.read(2000).decode("utf-8", "replace").strip()
            if request_id is not None:
                self.emit(_error(request_id, f"HTTP {response.status} {response.reason} {text}"))
            return
        if kind.startswith("text/event-stream"):
            for item in _sse_messages(response):
                self._deliver(message, item)
            return
        data = response.read()
        try:
            parsed = json.loads(data) if data.strip() else None
        except ValueError:
            parsed = None
        items = parsed if isinstance(parsed, list) else [parsed] if parsed is not None else []
        if not items and request_id is not None:
            self.emit(_error(request_id, f"HTTP {response.status}: no JSON-RPC answer"))
        for item in items:
            self._deliver(message, item)

    def _deliver(self, request: Json, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if request.get("method") == "initialize" and isinstance(item.get("result"), dict):
            version = item["result"].get("protocolVersion")
            if isinstance(version, str):
                self.protocol_version = version
        self.emit(item)

    def emit(self, item: Json) -> None:
        line = json.dumps(item, separators=(",", ":")).encode() + b"\n"
        with self._out_lock:
            self._out.write(line)
            self._out.flush()

    def close(self) -> None:
        """End the MCP session on the server (best effort)."""
        if not self.session_id:
            return
        try:
            conn, path = _connect(self.url, CLOSE_TIMEOUT)
            try:
                headers = {TOKEN_HEADER: self.token, "mcp-session-id": self.session_id}
                if self.protocol_version:
                    headers["mcp-protocol-version"] = self.protocol_version
                conn.request("DELETE", path, headers=headers)
                conn.getresponse().read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            pass


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return conn, path


def _same_origin(old: str, new: str) -> str:
    a, b = urllib.parse.urlsplit(old), urllib.parse.urlsplit(new)
    if (a.scheme, a.netloc) != (b.scheme, b.netloc):
        raise ValueError(f"refusing a cross-origin redirect to {new}")
    return new


def _sse_messages(response: http.client.HTTPResponse) -> Iterator[Any]:
    """Each JSON value in the `data:` fields of an event stream, as it arrives."""
    data: list[str] = []
    while True:
        raw = response.readline()
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line:
            if data:
                try:
                    value = json.loads("\n".join(data))
                except ValueError:
                    value = None  # a priming or keep-alive event
                if isinstance(value, list):
                    yield from value
                elif value is not None:
                    yield value
                data = []
            if not raw:
                return


def _error(request_id: Any, text: str) -> Json:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": INTERNAL_ERROR, "message": text}}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    token = os.environ.get(TOKEN_ENV, "")
    if len(args) != 1 or not token:
        print(
            f"usage: {TOKEN_ENV}=<token> python -m meta_harness.mcpserver.stdio URL",
            file=sys.stderr,
        )
        return 2
    proxy = Proxy(args[0], token)
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        proxy.handle_line(line)
    proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
