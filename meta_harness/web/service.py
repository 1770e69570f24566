"""The HTTP surface as a supervisor service: a bound socket and uvicorn in the task group.

    service, endpoints = http_service(host, port, *, mcp=None, require_token=False,
                                      announce=None)
    run(workspace, config, services=[service], endpoints=endpoints)

`http_service` binds the socket at once (port 0 picks a free port, and the real address
is in `endpoints` — `{"http": url}` plus `{"mcp": url + "/mcp"}` with an MCP server —
before the supervisor writes supervisor.json). A bind failure raises `UsageError`. The
service builds the app from `supervisor.workspace`, serves until `supervisor.stop_event`
is set, then ends every open stream and stops uvicorn. A non-loopback host (or
`require_token`) needs the workspace token; a freshly made token is announced once
(`announce`, default: a line on stderr), with the dashboard URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn

from meta_harness.base.errors import MetaHarnessError, UsageError
from meta_harness.base.layout import Workspace
from meta_harness.web.app import create_app
from meta_harness.web.auth import is_loopback, load_or_create_token, loopback_hosts
from meta_harness.web.hub import Hub

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

SHUTDOWN_GRACE = 3  # seconds in-flight requests get after stop (open streams end at once)
LISTEN_BACKLOG = 128
WILDCARD_CONNECT = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # for local clients


class SupervisorLike(Protocol):
    """What the service needs of the supervisor (runtime.supervisor.Supervisor has it)."""

    workspace: Workspace
    stop_event: asyncio.Event


Service = Callable[[SupervisorLike], Coroutine[Any, Any, None]]


def _announce(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on `host:port` (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The URL a client on this machine uses to reach `sock`."""
    host, port = sock.getsockname()[:2]
    host = WILDCARD_CONNECT.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the supervisor owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def http_service(
    host: str,
    port: int,
    *,
    mcp: MCPServer | None = None,
    require_token: bool = False,
    announce: Callable[[str], None] | None = None,
) -> tuple[Service, dict[str, str]]:
    """Bind now; return the service coroutine factory and the endpoints to publish."""
    sock = bind(host, port)
    url = url_of(sock)
    endpoints = {"http": url}
    if mcp is not None:
        endpoints["mcp"] = f"{url}/mcp"
    needs_token = require_token or not is_loopback(host)
    say = announce or _announce

    async def http(supervisor: SupervisorLike) -> None:
        workspace = supervisor.workspace
        token: str | None = None
        if needs_token:
            token, fresh = load_or_create_token(workspace)
            if fresh:
                say(
                    f"meta-harness: dashboard at {url}/?token={token} (token saved in "
                    f"{workspace.http_token_file}; shown once)"
                )
            else:
                say(f"meta-harness: dashboard at {url}/ (token in {workspace.http_token_file})")
        else:
            say(f"meta-harness: dashboard at {url}/")
        app = create_app(
            workspace,
            token=token,
            allowed_hosts=None if token else loopback_hosts(host),
            mcp=mcp,
        )
        hub: Hub = app.state.web.hub
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_config=None,
            access_log=False,
            http="h11",
            ws="none",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        server = _Server(config)
        serving = asyncio.ensure_future(_serve(server, sock))
        stopping = asyncio.ensure_future(supervisor.stop_event.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            hub.close()  # open streams end now, so uvicorn need not wait for them
            server.should_exit = True
            await serving
            sock.close()

    http.__name__ = "http-service"
    return http, endpoints


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as e:  # uvicorn exits the process when the app's startup fails
        raise MetaHarnessError(
            f"the HTTP server could not start (exit {e.code}); see the log"
        ) from None
