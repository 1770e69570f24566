"""One agent connection: spawn, `initialize`, and the session calls the runtime needs.

`AgentSession.open` starts the process (own group, stderr to a file), wires the
byte-exact transport into the SDK's connection and answers `initialize`. Then:
`new_session`, `load_session` (returns the replayed updates, for the in-doubt check),
`resume_session`, `prompt`, `cancel`, `close_session`, and `aclose` (the shutdown
ladder; SIGTERM never lands within `TURN_SETTLE` of a turn's end, and comes sooner for
agents known to ignore EOF). SDK errors are mapped into our tree: a dead agent is
`AgentBroken`, a JSON-RPC error is `AgentRequestFailed`, a connection we closed is
`AgentClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from acp import PROTOCOL_VERSION, RequestError, connect_to_agent
from acp.client.connection import ClientSideConnection
from acp.schema import (
    ClientCapabilities,
    FileSystemCapabilities,
    Implementation,
    InitializeResponse,
)

from meta_harness import __version__
from meta_harness.agent.client import ClientHooks, SupervisorClient
from meta_harness.agent.process import AGENT_STOP_GRACE, AgentProcess, StopHabits, spawn_agent
from meta_harness.agent.spec import LaunchSpec
from meta_harness.agent.transcript import TranscriptWriter
from meta_harness.agent.transport import StdioTransport
from meta_harness.base.errors import (
    AgentBroken,
    AgentClosed,
    AgentRequestFailed,
    AgentStartError,
    SessionLoadFailed,
)

logger = logging.getLogger(__name__)

INITIALIZE_TIMEOUT = 120.0  # `npx -y pkg` may download the agent on first start
SESSION_SETUP_TIMEOUT = 120.0  # session/new, load (replays whole histories) and resume
CLOSE_TIMEOUT = 5.0  # session/close is a courtesy before the process ends
# Agents may write a turn to their session files after answering it (claude-agent-acp:
# 10-300 ms later); an agent stopped within this long of a turn's end gets until then.
TURN_SETTLE = 0.5

_T = TypeVar("_T")


@dataclass(frozen=True)
class Capabilities:
    load_session: bool
    resume: bool
    close: bool
    mcp_http: bool
    mcp_sse: bool
    raw: dict[str, Any]

    @classmethod
    def of(cls, init: InitializeResponse) -> Capabilities:
        caps = init.agent_capabilities
        raw = caps.model_dump(mode="json", by_alias=True, exclude_none=True) if caps else {}
        session = raw.get("sessionCapabilities") or {}
        mcp = raw.get("mcpCapabilities") or {}
        return cls(
            load_session=bool(raw.get("loadSession")),
            resume=session.get("resume") is not None,
            close=session.get("close") is not None,
            mcp_http=bool(mcp.get("http")),
            mcp_sse=bool(mcp.get("sse")),
            raw=raw,
        )


class AgentSession:
    """A live connection to one agent process."""

    def __init__(
        self,
        process: AgentProcess,
        conn: ClientSideConnection,
        client: SupervisorClient,
        transport: StdioTransport,
        transcript: TranscriptWriter,
        *,
        agent: str = "",
        stop_habits: StopHabits | None = None,
    ) -> None:
        self.process = process
        self._conn = conn
        self._client = client
        self._transport = transport
        self.transcript = transcript
        self.capabilities: Capabilities | None = None
        self.agent_info: dict[str, Any] = {}
        self._agent = agent
        self._stop_habits = stop_habits
        self._turn_ended_at: float | None = None  # monotonic
        self._closing = False
        self._closed = False
        self.on_exit: Callable[[int], None] | None = None

    @classmethod
    async def open(cls, spec: LaunchSpec, hooks: ClientHooks) -> AgentSession:
        """Spawn the agent and complete `initialize`; raises AgentStartError."""
        transcript = TranscriptWriter(spec.transcript_path, spec.epoch)
        try:
            process = await spawn_agent(
                spec.argv, env=spec.env, cwd=spec.cwd, stderr_path=spec.stderr_path
            )
        except AgentStartError as e:
            transcript.note("spawn-failed", error=str(e))
            transcript.close()
            raise
        if spec.on_spawn is not None:
            spec.on_spawn(process.pgid)
        transcript.note("spawn", pid=process.pid, argv=spec.argv)
        client = SupervisorClient(
            hooks, roots=spec.roots or [spec.cwd], cwd=spec.cwd, terminal_env=spec.env
        )
        transport = StdioTransport(process.stdout, process.stdin, transcript)
        conn = connect_to_agent(client, transport)  # type: ignore[arg-type]
        session = cls(
            process,
            conn,
            client,
            transport,
            transcript,
            agent=spec.agent,
            stop_habits=spec.stop_habits,
        )
        session.on_exit = spec.on_exit
        try:
            init = await session._call(
                "initialize",
                conn.initialize(
                    protocol_version=PROTOCOL_VERSION,
                    client_capabilities=ClientCapabilities(
                        fs=FileSystemCapabilities(read_text_file=True, write_text_file=True),
                        terminal=True,
                    ),
                    client_info=Implementation(name="meta-harness", version=__version__),
                ),
                INITIALIZE_TIMEOUT,
            )
        except BaseException as e:
            await session.aclose(reason="initialize failed")
            if isinstance(e, (AgentBroken, AgentRequestFailed, TimeoutError)):
                raise AgentStartError(
                    f"agent {spec.argv[0]!r} did not complete initialize: {e or 'timed out'}; "
                    f"see {spec.stderr_path}"
                ) from None
            raise
        session.capabilities = Capabilities.of(init)
        if init.agent_info is not None:
            session.agent_info = init.agent_info.model_dump(mode="json", exclude_none=True)
        return session

    @property
    def caps(self) -> Capabilities:
        assert self.capabilities is not None, "initialize has not completed"
        return self.capabilities

    async def _call(self, method: str, call: Awaitable[_T], timeout: float | None = None) -> _T:
        try:
            if timeout is None:
                return await call
            return await asyncio.wait_for(call, timeout)
        except RequestError as e:
            raise AgentRequestFailed(method, e.code, str(e)) from None
        except ConnectionError:
            if self._closing:
                raise AgentClosed(
                    f"{method}: the connection was closed by the supervisor"
                ) from None
            raise AgentBroken(
                f"{method}: the agent went away (exit code {self.process.returncode})"
            ) from None

    async def new_session(self, cwd: Path, mcp_servers: list[dict[str, Any]]) -> str:
        resp = await self._call(
            "session/new",
            self._conn.new_session(cwd=str(cwd), mcp_servers=mcp_servers),  # type: ignore[arg-type]
            SESSION_SETUP_TIMEOUT,
        )
        return resp.session_id

    async def load_session(
        self, session_id: str, cwd: Path, mcp_servers: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Load and return the replayed `session/update` params, in order."""
        self._transport.replay = []
        self.transcript.loading = True
        try:
            await self._call(
                "session/load",
                self._conn.load_session(
                    cwd=str(cwd),
                    session_id=session_id,
                    mcp_servers=mcp_servers,  # type: ignore[arg-type]
                ),
                SESSION_SETUP_TIMEOUT,
            )
        except AgentRequestFailed as e:
            raise SessionLoadFailed(f"session/load of {session_id} failed: {e}") from None
        finally:
            self.transcript.loading = False
            replay, self._transport.replay = self._transport.replay or [], None
        return [m.get("params") or {} for m in replay]

    async def resume_session(
        self, session_id: str, cwd: Path, mcp_servers: list[dict[str, Any]]
    ) -> None:
        try:
            await self._call(
                "session/resume",
                self._conn.resume_session(
                    cwd=str(cwd),
                    session_id=session_id,
                    mcp_servers=mcp_servers,  # type: ignore[arg-type]
                ),
                SESSION_SETUP_TIMEOUT,
            )
        except AgentRequestFailed as e:
            raise SessionLoadFailed(f"session/resume of {session_id} failed: {e}") from None

    async def prompt(
        self, session_id: str, blocks: list[dict[str, Any]], meta: Mapping[str, Any]
    ) -> str:
        """Run one turn; returns the stop reason."""
        try:
            resp = await self._call(
                "session/prompt",
                self._conn.prompt(session_id=session_id, prompt=blocks, **meta),  # type: ignore[arg-type]
            )
        finally:
            self._turn_ended_at = time.monotonic()
        return str(resp.stop_reason)

    async def cancel(self, session_id: str) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._conn.cancel(session_id=session_id)

    async def close_session(self, session_id: str) -> None:
        if not self.caps.close:
            return
        with contextlib.suppress(AgentBroken, AgentClosed, AgentRequestFailed, TimeoutError):
            await self._call(
                "session/close", self._conn.close_session(session_id=session_id), CLOSE_TIMEOUT
            )

    async def wait_exit(self) -> int:
        return await self.process.wait()

    async def aclose(self, *, reason: str = "closed") -> None:
        """End the connection and the process group (idempotent)."""
        if self._closed:
            return
        self._closing = True
        self._closed = True
        try:
            await self._client.aclose()
            with contextlib.suppress(Exception):
                await self._conn.close()
            grace = self._eof_grace()
            code = await self.process.aclose(eof_grace=grace)
            if self._stop_habits is not None and self._agent:
                self._stop_habits.observed(self._agent, grace, self.process.exited_on_eof)
            if self.on_exit is not None:
                self.on_exit(self.process.pgid)
            self.transcript.note("exit", pid=self.process.pid, code=code, reason=reason)
        finally:
            self.transcript.close()

    def _eof_grace(self) -> float:
        """How long EOF alone may take to end the agent before SIGTERM."""
        grace = AGENT_STOP_GRACE
        if self._stop_habits is not None and self._agent:
            grace = self._stop_habits.eof_grace(self._agent)
        if self._turn_ended_at is not None:
            grace = max(grace, TURN_SETTLE - (time.monotonic() - self._turn_ended_at))
        return grace
