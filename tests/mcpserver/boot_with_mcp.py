"""Test-only composition root: a supervisor with the built-in MCP server mounted over HTTP.

What `meta-harness up` does once the web surface mounts the server, reduced to the MCP
part: uvicorn serves `build_mcp(ws)` at `http://127.0.0.1:<port>/mcp/` as a supervisor
service, and every task's agent gets `mcp_entries(ws, url)`. The port is bound before
the supervisor starts, so the URL is known up front. Used by the end-to-end test and
`benchmarks/mcp_spawn.py`. Usage: `python tests/mcpserver/boot_with_mcp.py WORKSPACE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from meta_harness.base.config import load_config
from meta_harness.base.errors import MetaHarnessError
from meta_harness.base.layout import Workspace
from meta_harness.mcpserver.entries import mcp_entries
from meta_harness.mcpserver.tools import build_mcp
from meta_harness.runtime.supervisor import Supervisor, run

SHUTDOWN_GRACE = 2  # seconds uvicorn gives open MCP streams when the supervisor stops


class QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: the supervisor owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main(root: str) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    for noisy in ("watchfiles", "mcp", "httpx2", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ws = Workspace.at(root)
    config = load_config(ws)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp/"
    srv = build_mcp(ws)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with srv.session_manager.run():
            yield

    app = Starlette(
        routes=[Mount("/mcp", app=srv.streamable_http_app(streamable_http_path="/"))],
        lifespan=lifespan,
    )

    async def http_service(supervisor: Supervisor) -> None:
        server = QuietServer(
            uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE)
        )
        serving = asyncio.ensure_future(server.serve([sock]))
        await supervisor.stop_event.wait()
        server.should_exit = True
        await serving

    return run(
        ws,
        config,
        services=[http_service],
        mcp_entries=mcp_entries(ws, url),
        endpoints={"mcp": url},
    )


if __name__ == "__main__":
    try:
        code = main(sys.argv[1])
    except MetaHarnessError as e:
        print(f"meta-harness: {e}", file=sys.stderr, flush=True)
        raise SystemExit(e.exit_code) from None
    raise SystemExit(code)
