"""The ACP methods of the demo agent and the routing of every incoming JSON-RPC message.

Owns the live sessions of this process: initialize, session/new|load|resume|close|list,
session/prompt (each request on its own thread; the turn is run by `prompt.PromptRun`),
session/cancel, and the bounded drain when stdin closes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .flags import Options
from .mcp_client import McpClients
from .params import optional_mcp_servers, require_cwd, require_dict, require_session_id
from .prompt import PromptRun
from .protocol import (
    AGENT_NAME,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PROTOCOL_VERSION,
    VERSION,
    Json,
    RpcError,
    invalid_params,
    session_not_found,
)
from .session import Session
from .store import SessionStore, now_iso
from .turn import Turn
from .wire import ConnectionGone, Wire

if TYPE_CHECKING:
    import subprocess

logger = logging.getLogger(__name__)

EOF_DRAIN_TIMEOUT = 1.0  # after stdin EOF, in-flight requests get this long to answer, then exit


def uuid4_hex() -> str:
    """`uuid.uuid4().hex` without importing uuid (~5 ms)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


class Agent:
    """Routes incoming JSON-RPC messages; owns the live sessions of this process."""

    def __init__(self, options: Options, wire: Wire) -> None:
        self.options = options
        self.wire = wire
        self.store = SessionStore(options.state_dir)
        self.mcp = McpClients()
        self.client_capabilities: Json = {}
        self.grandchildren: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._threads: list[threading.Thread] = []
        self._handlers: dict[str, Callable[[Json], Json]] = {
            "initialize": self.initialize,
            "session/new": self.new_session,
            "session/list": self.list_sessions,
        }
        if options.load:
            self._handlers["session/load"] = self.load_session
        if options.resume:
            self._handlers["session/resume"] = self.resume_session
        if options.close:
            self._handlers["session/close"] = self.close_session

    # -- incoming ---------------------------------------------------------------------------

    def on_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            logger.warning("unparseable line of %d bytes", len(line))
            self.wire.respond_error(None, RpcError(PARSE_ERROR, "Parse error"))
            return
        if not isinstance(message, dict):
            self.wire.respond_error(None, RpcError(INVALID_REQUEST, "Invalid Request"))
            return
        method = message.get("method")
        if isinstance(method, str) and "id" in message:
            self.on_request(message["id"], method, message.get("params"))
        elif isinstance(method, str):
            self.on_notification(method, message.get("params"))
        elif "id" in message and ("result" in message or "error" in message):
            self.wire.deliver(message)
        else:
            self.wire.respond_error(message.get("id"), RpcError(INVALID_REQUEST, "Invalid Request"))

    def on_notification(self, method: str, params: Any) -> None:
        if method != "session/cancel":
            logger.debug("ignoring notification %s", method)
            return
        session_id = params.get("sessionId") if isinstance(params, dict) else None
        with self._lock:
            session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if session is not None and session.turn is not None:
            logger.info("cancelling the turn of %s", session_id)
            session.turn.cancel()

    def on_request(self, request_id: Any, method: str, params: Any) -> None:
        if params is None:
            params = {}
        if method == "session/prompt":
            try:
                session, turn, blocks = self.begin_turn(params)
            except RpcError as exc:
                self.wire.respond_error(request_id, exc)
                return
            self.start(method, self.prompt, request_id, session, turn, blocks)
            return
        handler = self._handlers.get(method)
        if handler is None:
            error = RpcError(METHOD_NOT_FOUND, "Method not found", {"method": method})
            self.wire.respond_error(request_id, error)
            return
        self.start(method, self.call, request_id, handler, params)

    def start(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Handle one request on its own thread, so a cancel or a response can reach it."""
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def drain(self) -> None:
        """stdin closed: wake every wait, cancel every turn, give answers a bounded moment."""
        self.wire.close()
        with self._lock:
            threads = list(self._threads)
            for session in self._sessions.values():
                if session.turn is not None:
                    session.turn.cancel()
        deadline = time.monotonic() + EOF_DRAIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def call(self, request_id: Any, handler: Callable[[Json], Json], params: Any) -> None:
        try:
            result = handler(require_dict(params, "params"))
        except RpcError as exc:
            self.wire.respond_error(request_id, exc)
        except Exception as exc:  # a bug must answer the request, not kill the agent
            logger.exception("handler failed")
            self.wire.respond_error(request_id, RpcError(INTERNAL_ERROR, str(exc)))
        else:
            self.wire.respond(request_id, result)

    # -- handlers ---------------------------------------------------------------------------

    def initialize(self, params: Json) -> Json:
        if not isinstance(params.get("protocolVersion"), int):
            raise invalid_params("protocolVersion must be an integer")
        caps = params.get("clientCapabilities")
        self.client_capabilities = caps if isinstance(caps, dict) else {}
        session_caps: Json = {}
        if self.options.resume:
            session_caps["resume"] = {}
        if self.options.close:
            session_caps["close"] = {}
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "agentCapabilities": {
                "loadSession": self.options.load,
                "mcpCapabilities": {"http": True, "sse": False},
                "promptCapabilities": {"image": False, "audio": False, "embeddedContext": True},
                "sessionCapabilities": session_caps,
            },
            "agentInfo": {"name": AGENT_NAME, "version": VERSION},
            "authMethods": [],
        }

    def new_session(self, params: Json) -> Json:
        cwd = require_cwd(params)
        mcp_servers = optional_mcp_servers(params)
        session_id = f"demo-{uuid4_hex()}"
        self.store.create(session_id, cwd, mcp_servers)
        self.install(Session(session_id, cwd, mcp_servers, self.store, tool_calls=0))
        logger.info("session/new %s", session_id)
        return {"sessionId": session_id}

    def restore(self, params: Json) -> tuple[Session, list[Json]]:
        """Shared by load and resume: bring a stored session back into memory."""
        session_id = require_session_id(params)
        cwd = require_cwd(params)
        mcp_servers = optional_mcp_servers(params)
        if not self.store.exists(session_id):
            raise session_not_found(session_id)
        updates = self.store.read_updates(session_id)
        tool_calls = sum(1 for u in updates if u.get("sessionUpdate") == "tool_call")
        meta = self.store.read_meta(session_id)
        meta.update(sessionId=session_id, cwd=cwd, mcpServers=mcp_servers, updatedAt=now_iso())
        self.store.write_meta(session_id, meta)
        session = Session(session_id, cwd, mcp_servers, self.store, tool_calls)
        self.install(session)
        return session, updates

    def load_session(self, params: Json) -> Json:
        if self.options.fail_load:
            raise session_not_found(str(params.get("sessionId")))
        session, updates = self.restore(params)
        for update in updates:
            self.wire.notify("session/update", {"sessionId": session.id, "update": update})
        logger.info("session/load %s replayed %d updates", session.id, len(updates))
        return {}

    def resume_session(self, params: Json) -> Json:
        session, _ = self.restore(params)
        logger.info("session/resume %s", session.id)
        return {}

    def close_session(self, params: Json) -> Json:
        session_id = require_session_id(params)
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is not None:
                self.retire(session)
        if session is None and not self.store.exists(session_id):
            raise session_not_found(session_id)
        logger.info("session/close %s", session_id)
        return {}

    def list_sessions(self, params: Json) -> Json:
        cwd = params.get("cwd")
        sessions = []
        for session_id in self.store.list_ids():
            meta = self.store.read_meta(session_id)
            if cwd is not None and meta.get("cwd") != cwd:
                continue
            info: Json = {"sessionId": session_id, "cwd": meta.get("cwd", "")}
            if isinstance(meta.get("updatedAt"), str):
                info["updatedAt"] = meta["updatedAt"]
            sessions.append(info)
        return {"sessions": sessions}

    def install(self, session: Session) -> None:
        with self._lock:
            old = self._sessions.get(session.id)
            self._sessions[session.id] = session
            if old is not None:
                self.retire(old)

    def retire(self, session: Session) -> None:
        """Forget a session (lock held): cancel its turn, which then closes its files."""
        session.retired = True
        if session.turn is not None:
            session.turn.cancel()
        else:
            session.close_files()

    # -- prompts ----------------------------------------------------------------------------

    def begin_turn(self, params: Any) -> tuple[Session, Turn, list[Json]]:
        """Validate and register the turn on the reader thread, so a cancel can reach it."""
        params = require_dict(params, "params")
        session_id = require_session_id(params)
        blocks = params.get("prompt")
        if not isinstance(blocks, list) or not all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks
        ):
            raise invalid_params("prompt must be a list of content blocks")
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise session_not_found(session_id)
            if session.turn is not None:
                raise RpcError(INTERNAL_ERROR, "a prompt is already running in this session")
            turn = session.turn = Turn()
        meta = params.get("_meta")
        message_id = meta.get("messageId") if isinstance(meta, dict) else None
        text = "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        try:
            session.received.append({"messageId": message_id, "text": text, "ts": time.time()})
        except OSError as exc:
            self.end_turn(session, turn)
            raise RpcError(INTERNAL_ERROR, f"cannot record the prompt: {exc}") from exc
        return session, turn, blocks

    def end_turn(self, session: Session, turn: Turn) -> None:
        with self._lock:
            if session.turn is turn:
                session.turn = None
                if session.retired:
                    session.close_files()

    def prompt(self, request_id: Any, session: Session, turn: Turn, blocks: list[Json]) -> None:
        """Run the turn, free the session for the next prompt, and only then answer."""
        run = PromptRun(self, session, turn)
        answer: Json | RpcError | None = None
        try:
            for block in blocks:
                run.emit({"sessionUpdate": "user_message_chunk", "content": block})
            answer = {"stopReason": run.run(blocks).value}
        except RpcError as exc:
            answer = exc
        except ConnectionGone:
            logger.info("the client went away during a turn of %s", session.id)
        except Exception as exc:  # a bug must answer the prompt, not hang it
            logger.exception("prompt failed")
            answer = RpcError(INTERNAL_ERROR, str(exc))
        finally:
            self.end_turn(session, turn)
        if isinstance(answer, RpcError):
            self.wire.respond_error(request_id, answer)
        elif answer is not None:
            self.wire.respond(request_id, answer)

    def sync_all(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.log.sync()
                session.received.sync()
