"""Who may talk to the HTTP surface, and how much: the token, the guards and the limits.

Loopback binds need no token but accept only loopback `Host` names (no DNS rebinding);
any other bind requires the workspace's HTTP token (`.meta-harness/http-token`, 0600,
made on first use) as `Authorization: Bearer` or `?token=` (EventSource cannot send
headers). For every request: a foreign `Origin` is refused, a POST must be JSON (so a
cross-site form cannot post), bodies are capped, and responses carry no CORS headers.
The `/mcp` mount is left to the MCP server, which authenticates each task's token itself.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import secrets
import stat

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meta_harness.base.errors import WorkspaceError
from meta_harness.base.layout import Workspace

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a request body is a prompt or an answer, not a file transfer
MAX_STREAMS = 256  # open SSE streams at once; each holds a connection and a subscription
MCP_PREFIX = "/mcp"  # mounted MCP server: authenticates per-task tokens on its own
TOKEN_BYTES = 32
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_TOKEN_SHAPE = re.compile(r"^[0-9a-f]{32,128}$")

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine (no token needed)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public address


def load_or_create_token(workspace: Workspace) -> tuple[str, bool]:
    """The workspace's HTTP token and whether it was made just now (mode 0600)."""
    path = workspace.http_token_file
    try:
        token = path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    else:
        if not _TOKEN_SHAPE.fullmatch(token):
            raise WorkspaceError(f"{path} does not hold a token; delete it to make a new one")
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            logger.warning("%s was readable by others (mode %o); setting 0600", path, mode)
            os.chmod(path, 0o600)
        return token, False
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(TOKEN_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_token(workspace)[0], False  # another process made it first
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return token, True


def host_name(host_header: str) -> str:
    """`Host` header without its port: `[::1]:8080` -> `::1`, `a:80` -> `a`."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class Guard:
    """ASGI middleware applying the rules in the module docstring to every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: frozenset[str] | None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == MCP_PREFIX or path.startswith(MCP_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message, extra = refusal
            await _send_error(send, status, message, extra)
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _send_error(send, 413, f"request body larger than {self.max_body} bytes")
            return
        await self.app(scope, self._limited(receive), _with_security_headers(send))

    def _refusal(
        self, scope: Scope, headers: Headers
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        host = host_name(headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return 421, f"host {host!r} is not served here (loopback only)", []
        if self.token is not None and not self._token_ok(scope, headers):
            return (
                401,
                "missing or wrong token: send 'Authorization: Bearer <token>' (or ?token= "
                "for EventSource); the token is in .meta-harness/http-token",
                [(b"www-authenticate", b"Bearer")],
            )
        origin = headers.get("origin")
        if origin is not None and origin != f"{scope['scheme']}://{headers.get('host', '')}":
            return 403, f"cross-origin requests are refused (origin {origin!r})", []
        if scope["method"] == "POST":  # the one method a cross-site form can send
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return 415, "send the request body as JSON (Content-Type: application/json)", []
        return None

    def _token_ok(self, scope: Scope, headers: Headers) -> bool:
        assert self.token is not None
        offered = ""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            offered = auth[7:].strip()
        if not offered:
            offered = QueryParams(scope.get("query_string", b"")).get("token", "")
        return hmac.compare_digest(offered.encode("utf-8", "replace"), self.token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return receive_limited


def _with_security_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            if b"cache-control" not in present:
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


async def _send_error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"error": message})
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def loopback_hosts(bind_host: str) -> frozenset[str]:
    """`Host` names a loopback-bound server answers to."""
    return LOOPBACK_NAMES | {bind_host.strip("[]").lower()}
