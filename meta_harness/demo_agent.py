"""Deterministic demo ACP agent: a stdlib-only protocol peer for tests, demos and the default.

Owns one agent process speaking ACP v1 (JSON-RPC 2.0, one JSON object per line on stdin/stdout),
its on-disk session state (so a SIGKILLed agent can `session/load`), and a tiny MCP
streamable-HTTP client. It imports nothing from `meta_harness` and nothing outside the stdlib:
spawn → `initialize` must stay far below 100 ms. Run it as
`python -m meta_harness.demo_agent [--state-dir DIR] [--no-load] [--no-resume] [--no-close]
[--fail-load] [--log-level LEVEL]`.

Methods: initialize, session/new, session/load, session/resume, session/close, session/list
(not advertised), session/prompt, session/cancel (notification). Anything else → -32601; bad
params → -32602; an unknown session → -32002. Flags: `--no-load` (no loadSession; session/load →
-32601), `--no-resume`, `--no-close` (capability dropped, method → -32601), `--fail-load`
(session/load always → -32002 "session not found").

State (dir = `--state-dir`, else `$MH_DEMO_STATE_DIR`, else `./.demo-agent`), per session in
`<state>/sessions/`:
- `<sid>.meta.json`  {"sessionId","cwd","mcpServers","createdAt","updatedAt"}, written atomically.
- `<sid>.jsonl`      one `update` object (the `params.update` of session/update) per line, appended
                     and fsynced BEFORE the notification is sent; load replays them in order.
- `<sid>.received.jsonl`  {"messageId","text","ts"} per prompt, fsynced when the prompt arrives
                     (`text` = the prompt's text blocks joined with "\\n", header included; `ts` =
                     float Unix seconds).

Prompt handling. Each prompt block is recorded and emitted as a `user_message_chunk` (live and on
replay). The text blocks are joined with "\\n"; a leading header line matching
`^\\[meta-harness message [^\\]]*\\]\\n?` is stripped; then each line starting with `/` is a
command, run in order, and each run of other lines is answered `echo: <text>` (surrounding blank
lines trimmed; an empty prompt answers `echo: `). Every agent reply is newline-terminated and
streamed as `agent_message_chunk`s split after whitespace ("echo: ", "hello ", "world\\n").
`\\n` and `\\\\` escapes are decoded in the TEXT of /say, /think, /write, /edit, /spawn, /complete.
A bad or unknown command answers `unknown command: /x` or `bad arguments for /x: why` and the
turn goes on. Commands:
- `/say TEXT`        TEXT as agent text.          `/think TEXT`  TEXT as agent_thought_chunk.
- `/plan A; B; C`    a `plan` update, entries {content, priority "medium", status "pending"}.
- `/stream N`        N agent_message_chunks of exactly 1024 ASCII chars
                     ("stream i/N " padded with "." and ending in "\\n").
- `/sleep MS`        sleep MS milliseconds (a session/cancel ends the turn "cancelled").
- `/hang`            wait for session/cancel, then stopReason "cancelled".
- `/crash`           fsync, then `os._exit(3)` mid-turn (no response).
- `/fail`            the prompt answers JSON-RPC error -32603 "demo failure".
- `/refuse`          stopReason "refusal".
- `/write PATH TEXT` fs/write_text_file {sessionId, path, content}; says `wrote PATH` or
                     `write failed: <client error>`. Relative paths are joined to the session cwd.
- `/read PATH`       fs/read_text_file {sessionId, path}; says the content (or `read failed: …`).
- `/edit PATH TEXT`  tool_call (kind edit, status pending, title "Edit PATH", content [diff
                     {path, newText}], locations [{path}]), then session/request_permission with
                     options allow-once/allow-always/reject-once/reject-always. Allowed →
                     fs/write_text_file, tool_call_update completed, says `edited PATH`. Rejected →
                     tool_call_update failed, says `permission denied`. Outcome cancelled →
                     tool_call_update failed, stopReason "cancelled". allow_always/reject_always are
                     remembered per session and tool kind (in memory only; not asked again).
- `/ask KIND TITLE`  tool_call of that kind (status pending) + permission request; says
                     `permission: <option kind>` (`permission: allow_always (remembered)` when not
                     asked); tool_call_update completed (allowed) or failed (rejected).
- `/run CMD ARGS…`   (shlex-split) tool_call kind execute, title "Run CMD ARGS…", permission as
                     for /edit, then terminal/create {sessionId, command, args, cwd, outputByteLimit
                     65536}, tool_call_update in_progress with content [{type terminal,
                     terminalId}], terminal/wait_for_exit, terminal/output, terminal/release,
                     tool_call_update completed; says
                     `<output>[(output truncated)\\n]exit status: N` (or `exit status: signal
                     SIG`). A cancel sends terminal/kill + terminal/release.
- `/spawn-grandchild` starts `sleep 3600` in the agent's own process group; says `grandchild pid N`.
- `/mcp SERVER TOOL JSON` tools/call on the session's http MCP server named SERVER (cached MCP
                     session per server per process); tool_call (kind other, title "mcp SERVER
                     TOOL", status in_progress) and tool_call_update completed|failed around it;
                     says `tool result: TEXT` or `tool error: TEXT`.
- `/spawn PROMPT`    = `/mcp meta-harness task_spawn {"prompt": PROMPT}`.
- `/complete TEXT`   = `/mcp meta-harness task_complete {"result": TEXT}`.
Tool call ids are `call-<n>`, counted per session across restarts. fs/terminal commands check the
client's advertised capabilities first. A session/cancel ends the turn "cancelled" after closing
open tool calls with status failed. stdin EOF → running turns are cancelled, in-flight requests
get up to 1 s to answer, exit 0; SIGTERM → the default action (immediate exit). Logging goes to
stderr only; fd 1 is re-pointed at stderr at startup so only protocol frames reach stdout.
"""

# pathlib alone costs ~6 ms of the 100 ms startup budget: os.path is used on purpose.

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import subprocess

# Named explicitly: under `python -m` the module's __name__ is "__main__".
logger = logging.getLogger("meta_harness.demo_agent")

VERSION = "0.1.0"
AGENT_NAME = "meta-harness-demo"
PROTOCOL_VERSION = 1
MCP_PROTOCOL_VERSION = "2025-11-25"
STATE_DIR_ENV = "MH_DEMO_STATE_DIR"
DEFAULT_STATE_DIR = ".demo-agent"

READ_SIZE = 1 << 20  # stdin read size; lines of any length are reassembled from these reads
STREAM_CHUNK_CHARS = 1024  # /stream emits chunks of exactly this many ASCII characters
TERMINAL_OUTPUT_LIMIT = 65536  # outputByteLimit asked of the client for /run
CLEANUP_TIMEOUT = 5.0  # terminal/kill and release after a cancel: a client that never answers
MCP_HTTP_TIMEOUT = 60.0  # one MCP HTTP exchange; task_spawn writes and fsyncs files server-side
MCP_MAX_REDIRECTS = 3  # Starlette mounts answer /mcp with a 307 to /mcp/
CRASH_EXIT_CODE = 3  # /crash: distinct from 0 (EOF), 1 (a Python error) and signals
EOF_DRAIN_TIMEOUT = 1.0  # after stdin EOF, in-flight requests get this long to answer, then exit

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RESOURCE_NOT_FOUND = -32002

HEADER_RE = re.compile(r"^\[meta-harness message [^\]]*\]\n?")
CHUNK_SPLIT_RE = re.compile(r"(?<=\s)(?=\S)")
ESCAPE_RE = re.compile(r"\\(n|\\)")
SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
TOOL_KINDS = frozenset({
    "read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other",
})

Json = dict[str, Any]


class StopReason(StrEnum):
    END_TURN = "end_turn"
    CANCELLED = "cancelled"
    REFUSAL = "refusal"


class PermissionKind(StrEnum):
    ALLOW_ONCE = "allow_once"
    ALLOW_ALWAYS = "allow_always"
    REJECT_ONCE = "reject_once"
    REJECT_ALWAYS = "reject_always"

    @property
    def allows(self) -> bool:
        return self in (PermissionKind.ALLOW_ONCE, PermissionKind.ALLOW_ALWAYS)


class ToolStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


PERMISSION_OPTIONS: list[Json] = [
    {"optionId": "allow-once", "name": "Allow", "kind": "allow_once"},
    {"optionId": "allow-always", "name": "Always allow", "kind": "allow_always"},
    {"optionId": "reject-once", "name": "Reject", "kind": "reject_once"},
    {"optionId": "reject-always", "name": "Always reject", "kind": "reject_always"},
]
OPTION_KINDS = {o["optionId"]: PermissionKind(o["kind"]) for o in PERMISSION_OPTIONS}


# ---------------------------------------------------------------------------------------------
# Errors and control flow
# ---------------------------------------------------------------------------------------------


class RpcError(Exception):
    """A JSON-RPC error: raised by handlers (sent to the client) or received from the client."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> Json:
        error: Json = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class TurnCancelled(Exception):
    """The running turn was cancelled (session/cancel, session/close or a cancelled permission)."""


class TurnEnded(Exception):
    """A command ends the turn early with a stop reason."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class ConnectionGone(Exception):
    """stdin closed while the agent waited for a client response."""


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}")


def session_not_found(session_id: str) -> RpcError:
    return RpcError(RESOURCE_NOT_FOUND, "session not found", {"sessionId": session_id})


# ---------------------------------------------------------------------------------------------
# Small helpers for params and text
# ---------------------------------------------------------------------------------------------


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


def unescape(text: str) -> str:
    return ESCAPE_RE.sub(lambda m: "\n" if m.group(1) == "n" else "\\", text)


def word_chunks(text: str) -> list[str]:
    """Split after each whitespace run; the chunks concatenate back to `text` exactly."""
    return [part for part in CHUNK_SPLIT_RE.split(text) if part]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def uuid4_hex() -> str:
    """`uuid.uuid4().hex` without importing uuid (~5 ms)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------------------------


class AppendLog:
    """An append-only JSONL file; each record is written whole and fsynced before returning."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: Json) -> None:
        data = memoryview(dumps(record) + b"\n")
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)

    def sync(self) -> None:
        with self._lock:
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


class SessionStore:
    """The files of all sessions under `<state>/sessions/`."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "sessions")

    def meta_path(self, session_id: str) -> str:
        return os.path.join(self.dir, f"{session_id}.meta.json")

    def log_path(self, session_id: str) -> str:
        return os.path.join(self.dir, f"{session_id}.jsonl")

    def received_path(self, session_id: str) -> str:
        return os.path.join(self.dir, f"{session_id}.received.jsonl")

    def exists(self, session_id: str) -> bool:
        return os.path.isfile(self.meta_path(session_id)) and os.path.isfile(
            self.log_path(session_id)
        )

    def create(self, session_id: str, cwd: str, mcp_servers: list[Json]) -> None:
        os.makedirs(self.dir, exist_ok=True)
        for path in (self.log_path(session_id), self.received_path(session_id)):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        stamp = now_iso()
        self.write_meta(
            session_id,
            {"sessionId": session_id, "cwd": cwd, "mcpServers": mcp_servers,
             "createdAt": stamp, "updatedAt": stamp},
        )

    def read_meta(self, session_id: str) -> Json:
        try:
            meta = json.loads(read_bytes(self.meta_path(session_id)))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, session_id: str, meta: Json) -> None:
        """Atomic: temp file, fsync, rename, fsync the directory."""
        path = self.meta_path(session_id)
        tmp = os.path.join(self.dir, f".{session_id}.meta.json.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, dumps(meta))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_updates(self, session_id: str) -> list[Json]:
        """Every stored update in order; a torn or corrupt line is skipped and logged."""
        updates: list[Json] = []
        for number, line in enumerate(read_bytes(self.log_path(session_id)).split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                update = json.loads(line)
            except ValueError:
                logger.warning("skipping torn line %d of %s.jsonl", number, session_id)
                continue
            if isinstance(update, dict):
                updates.append(update)
        return updates

    def open_log(self, session_id: str) -> AppendLog:
        """Open the update log for appending (a torn last line is cut first)."""
        return open_clean(self.log_path(session_id))

    def open_received(self, session_id: str) -> AppendLog:
        return open_clean(self.received_path(session_id))

    def list_ids(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        suffix = ".meta.json"
        return sorted(
            name[: -len(suffix)]
            for name in os.listdir(self.dir)
            if name.endswith(suffix) and not name.startswith(".")
        )


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def open_clean(path: str) -> AppendLog:
    """Open a JSONL file for appending, cutting a torn last line so new records start clean."""
    if os.path.isfile(path):
        data = read_bytes(path)
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            logger.warning("cutting a torn tail of %d bytes from %s", len(data) - keep, path)
            os.truncate(path, keep)
    return AppendLog(path)


# ---------------------------------------------------------------------------------------------
# Wire: stdout writer, outgoing requests, cancellable waits
# ---------------------------------------------------------------------------------------------


class Turn:
    """One running prompt: its cancel flag and the waits it must wake when cancelled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cancelled = threading.Event()
        self._waiters: set[DoneEvent] = set()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            for waiter in self._waiters:
                waiter.set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise TurnCancelled

    def wait(self, event: DoneEvent, timeout: float | None = None) -> bool:
        """Wait for `event`; raise TurnCancelled if the turn is cancelled first.

        Returns False on timeout, True otherwise (also when the event was set without being
        done, which means the connection closed).
        """
        with self._lock:
            if self.cancelled.is_set():
                raise TurnCancelled
            self._waiters.add(event)
        try:
            event.wait(timeout)
        finally:
            with self._lock:
                self._waiters.discard(event)
        if event.done:
            return True
        if self.cancelled.is_set():
            raise TurnCancelled
        return event.is_set()


class DoneEvent(threading.Event):
    """An event that says whether it fired because the awaited thing happened (`done`)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def finish(self) -> None:
        self.done = True
        self.set()


class Pending:
    """An outgoing request waiting for the client's response."""

    def __init__(self) -> None:
        self.event = DoneEvent()
        self.response: Json | None = None


class Wire:
    """Owns stdout (one line per message, under a lock) and the agent's outgoing requests."""

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd
        self._out_lock = threading.Lock()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, Pending] = {}
        self.closed = False

    def send(self, message: Json) -> None:
        data = memoryview(dumps(message) + b"\n")
        with self._out_lock:
            try:
                while data:
                    data = data[os.write(self._out_fd, data) :]
            except BrokenPipeError:
                logger.info("stdout closed by the client; exiting")
                os._exit(0)

    def notify(self, method: str, params: Json) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def respond(self, request_id: Any, result: Json) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def respond_error(self, request_id: Any, error: RpcError) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "error": error.to_json()})

    def request(
        self, method: str, params: Json, turn: Turn | None, timeout: float | None = None
    ) -> Any:
        """Send a request to the client and wait for its result.

        Raises RpcError for an error response, TurnCancelled if `turn` is cancelled first,
        TimeoutError after `timeout`, ConnectionGone if stdin closed.
        """
        if turn is not None:
            turn.check()  # never ask the client something nobody will wait for
        pending = Pending()
        with self._lock:
            if self.closed:
                raise ConnectionGone
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = pending
        try:
            self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            fired = (
                turn.wait(pending.event, timeout) if turn else pending.event.wait(timeout)
            )
            if not fired:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        response = pending.response
        if response is None:
            raise ConnectionGone
        if "error" in response:
            error = response["error"] if isinstance(response["error"], dict) else {}
            code = error.get("code")
            raise RpcError(
                code if isinstance(code, int) else INTERNAL_ERROR,
                str(error.get("message", "error")),
                error.get("data"),
            )
        return response.get("result")

    def deliver(self, message: Json) -> None:
        """Hand a client response to the request waiting for it."""
        request_id = message.get("id")
        with self._lock:
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
        if pending is None:
            logger.warning("response to unknown or abandoned request id %r", message.get("id"))
            return
        pending.response = message
        pending.event.finish()

    def close(self) -> None:
        """stdin is gone: wake every waiter with no response."""
        with self._lock:
            self.closed = True
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.event.set()


def run_cancellable(turn: Turn, fn: Callable[[], Any]) -> Any:
    """Run a blocking `fn` in a helper thread; a cancel of `turn` abandons it."""
    event = DoneEvent()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the waiting thread
            box["error"] = exc
        finally:
            event.finish()

    threading.Thread(target=target, name="cancellable", daemon=True).start()
    turn.wait(event)
    if "error" in box:
        raise box["error"]
    return box.get("result")


# ---------------------------------------------------------------------------------------------
# MCP streamable-HTTP client (urllib, lazily imported)
# ---------------------------------------------------------------------------------------------


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
            if isinstance(item, dict) and item.get("id") == expect_id and (
                "result" in item or "error" in item
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


# ---------------------------------------------------------------------------------------------
# Sessions and the prompt interpreter
# ---------------------------------------------------------------------------------------------


class Session:
    """One live session of this process: its files, MCP servers and remembered permissions."""

    def __init__(
        self, session_id: str, cwd: str, mcp_servers: list[Json], store: SessionStore,
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


class PromptRun:
    """Interprets one prompt: records and emits updates, runs the steering commands."""

    def __init__(self, agent: Agent, session: Session, turn: Turn) -> None:
        self.agent = agent
        self.wire = agent.wire
        self.session = session
        self.turn = turn
        self.open_tool_calls: set[str] = set()

    # -- emission -------------------------------------------------------------------------

    def emit(self, update: Json) -> None:
        """Record (fsync) first, then send."""
        self.session.log.append(update)
        self.wire.notify("session/update", {"sessionId": self.session.id, "update": update})

    def say(self, text: str, kind: str = "agent_message_chunk") -> None:
        if not text.endswith("\n"):
            text += "\n"
        for chunk in word_chunks(text):
            self.turn.check()
            self.emit({"sessionUpdate": kind, "content": {"type": "text", "text": chunk}})

    def start_tool_call(self, title: str, kind: str, status: ToolStatus, **extra: Any) -> str:
        call_id = self.session.next_tool_call_id()
        self.open_tool_calls.add(call_id)
        self.emit({"sessionUpdate": "tool_call", "toolCallId": call_id, "title": title,
                   "kind": kind, "status": status.value, **extra})
        return call_id

    def update_tool_call(self, call_id: str, status: ToolStatus, **extra: Any) -> None:
        if status in (ToolStatus.COMPLETED, ToolStatus.FAILED):
            self.open_tool_calls.discard(call_id)
        self.emit({"sessionUpdate": "tool_call_update", "toolCallId": call_id,
                   "status": status.value, **extra})

    def fail_open_tool_calls(self) -> None:
        for call_id in sorted(self.open_tool_calls):
            self.update_tool_call(call_id, ToolStatus.FAILED)

    def request(self, method: str, params: Json) -> Any:
        return self.wire.request(method, {"sessionId": self.session.id, **params}, self.turn)

    # -- the turn -------------------------------------------------------------------------

    def run(self, blocks: list[Json]) -> StopReason:
        replied = False
        text = "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        body = HEADER_RE.sub("", text, count=1)
        try:
            run: list[str] = []
            for line in [*body.split("\n"), None]:
                if line is not None and not line.startswith("/"):
                    run.append(line)
                    continue
                echo = "\n".join(run).strip("\n")
                run = []
                if echo:
                    self.say(f"echo: {echo}")
                    replied = True
                if line is not None:
                    self.turn.check()
                    self.command(line.rstrip("\r"))
                    replied = True
            if not replied:
                self.say("echo: ")
        except TurnCancelled:
            self.fail_open_tool_calls()
            return StopReason.CANCELLED
        except TurnEnded as end:
            return end.reason
        return StopReason.END_TURN

    def command(self, line: str) -> None:
        name, _, rest = line[1:].partition(" ")
        handler = COMMANDS.get(name)
        if handler is None:
            self.say(f"unknown command: /{name}")
            return
        try:
            handler(self, rest)
        except BadArguments as exc:
            self.say(f"bad arguments for /{name}: {exc}")

    def resolve(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.session.cwd, path)

    # -- permissions ----------------------------------------------------------------------

    def permission(self, tool_call: Json) -> tuple[PermissionKind, bool]:
        """Ask (or recall) a decision. Returns (kind, remembered). Cancelled → TurnCancelled."""
        kind = str(tool_call.get("kind", "other"))
        remembered = self.session.remembered.get(kind)
        if remembered is not None:
            return remembered, True
        result = self.request(
            "session/request_permission", {"toolCall": tool_call, "options": PERMISSION_OPTIONS}
        )
        outcome = result.get("outcome") if isinstance(result, dict) else None
        if not isinstance(outcome, dict):
            raise RpcError(INVALID_PARAMS, "malformed permission response")
        if outcome.get("outcome") == "cancelled":
            raise TurnCancelled
        decision = OPTION_KINDS.get(str(outcome.get("optionId")))
        if outcome.get("outcome") != "selected" or decision is None:
            raise RpcError(INVALID_PARAMS, f"unknown permission outcome {outcome!r}")
        if decision in (PermissionKind.ALLOW_ALWAYS, PermissionKind.REJECT_ALWAYS):
            self.session.remembered[kind] = decision
        return decision, False

    def guarded_tool_call(self, title: str, kind: str, **extra: Any) -> tuple[str, bool]:
        """tool_call (pending) + permission. Returns (call id, allowed); failed if rejected."""
        call_id = self.start_tool_call(title, kind, ToolStatus.PENDING, **extra)
        tool_call = {"toolCallId": call_id, "title": title, "kind": kind,
                     "status": ToolStatus.PENDING.value,
                     **{k: v for k, v in extra.items() if k != "rawInput"}}
        try:
            decision, _ = self.permission(tool_call)
        except RpcError as exc:
            self.update_tool_call(call_id, ToolStatus.FAILED)
            self.say(f"permission error: {exc.message}")
            return call_id, False
        if not decision.allows:
            self.update_tool_call(call_id, ToolStatus.FAILED)
            self.say("permission denied")
            return call_id, False
        return call_id, True

    def client_supports(self, capability: str) -> bool:
        caps = self.agent.client_capabilities
        if capability == "terminal":
            return caps.get("terminal") is True
        fs = caps.get("fs")
        return isinstance(fs, dict) and fs.get(capability) is True


class BadArguments(Exception):
    """A steering command got arguments it cannot use."""


def split_path_text(rest: str) -> tuple[str, str]:
    path, _, text = rest.partition(" ")
    if not path:
        raise BadArguments("expected PATH TEXT")
    return path, unescape(text)


def cmd_say(run: PromptRun, rest: str) -> None:
    run.say(unescape(rest))


def cmd_think(run: PromptRun, rest: str) -> None:
    run.say(unescape(rest), kind="agent_thought_chunk")


def cmd_plan(run: PromptRun, rest: str) -> None:
    entries = [
        {"content": item.strip(), "priority": "medium", "status": "pending"}
        for item in rest.split(";")
        if item.strip()
    ]
    run.emit({"sessionUpdate": "plan", "entries": entries})


def cmd_stream(run: PromptRun, rest: str) -> None:
    try:
        count = int(rest.strip())
    except ValueError:
        raise BadArguments("expected a number of chunks") from None
    if count < 0:
        raise BadArguments("expected a number of chunks >= 0")
    for i in range(1, count + 1):
        run.turn.check()
        head = f"stream {i}/{count} "
        text = head + "." * (STREAM_CHUNK_CHARS - len(head) - 1) + "\n"
        content = {"type": "text", "text": text}
        run.emit({"sessionUpdate": "agent_message_chunk", "content": content})


def cmd_sleep(run: PromptRun, rest: str) -> None:
    try:
        millis = float(rest.strip())
    except ValueError:
        raise BadArguments("expected milliseconds") from None
    if run.turn.cancelled.wait(max(millis, 0.0) / 1000):
        raise TurnCancelled


def cmd_hang(run: PromptRun, rest: str) -> None:
    run.turn.cancelled.wait()
    raise TurnCancelled


def cmd_crash(run: PromptRun, rest: str) -> NoReturn:
    run.agent.sync_all()
    logger.warning("/crash: exiting with code %d mid-turn", CRASH_EXIT_CODE)
    os._exit(CRASH_EXIT_CODE)


def cmd_fail(run: PromptRun, rest: str) -> NoReturn:
    raise RpcError(INTERNAL_ERROR, "demo failure")


def cmd_refuse(run: PromptRun, rest: str) -> NoReturn:
    raise TurnEnded(StopReason.REFUSAL)


def cmd_write(run: PromptRun, rest: str) -> None:
    path, text = split_path_text(rest)
    path = run.resolve(path)
    if not run.client_supports("writeTextFile"):
        run.say("write failed: the client lacks fs.writeTextFile")
        return
    try:
        run.request("fs/write_text_file", {"path": path, "content": text})
    except RpcError as exc:
        run.say(f"write failed: {exc.message}")
        return
    run.say(f"wrote {path}")


def cmd_read(run: PromptRun, rest: str) -> None:
    if not rest.strip():
        raise BadArguments("expected PATH")
    path = run.resolve(rest.strip())
    if not run.client_supports("readTextFile"):
        run.say("read failed: the client lacks fs.readTextFile")
        return
    try:
        result = run.request("fs/read_text_file", {"path": path})
    except RpcError as exc:
        run.say(f"read failed: {exc.message}")
        return
    content = result.get("content") if isinstance(result, dict) else None
    run.say(content if isinstance(content, str) else "read failed: malformed response")


def cmd_edit(run: PromptRun, rest: str) -> None:
    path, text = split_path_text(rest)
    path = run.resolve(path)
    if not run.client_supports("writeTextFile"):
        run.say("edit failed: the client lacks fs.writeTextFile")
        return
    call_id, allowed = run.guarded_tool_call(
        f"Edit {path}", "edit",
        content=[{"type": "diff", "path": path, "newText": text}],
        locations=[{"path": path}],
        rawInput={"path": path, "content": text},
    )
    if not allowed:
        return
    try:
        run.request("fs/write_text_file", {"path": path, "content": text})
    except RpcError as exc:
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say(f"edit failed: {exc.message}")
        return
    run.update_tool_call(call_id, ToolStatus.COMPLETED)
    run.say(f"edited {path}")


def cmd_ask(run: PromptRun, rest: str) -> None:
    kind, _, title = rest.strip().partition(" ")
    if kind not in TOOL_KINDS:
        raise BadArguments(f"unknown tool kind {kind!r}")
    title = title.strip() or f"Ask {kind}"
    call_id = run.start_tool_call(title, kind, ToolStatus.PENDING)
    tool_call = {"toolCallId": call_id, "title": title, "kind": kind, "status": "pending"}
    try:
        decision, remembered = run.permission(tool_call)
    except RpcError as exc:
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say(f"permission error: {exc.message}")
        return
    run.update_tool_call(call_id, ToolStatus.COMPLETED if decision.allows else ToolStatus.FAILED)
    run.say(f"permission: {decision.value}" + (" (remembered)" if remembered else ""))


def cmd_run(run: PromptRun, rest: str) -> None:
    import shlex

    try:
        argv = shlex.split(rest)
    except ValueError as exc:
        raise BadArguments(str(exc)) from None
    if not argv:
        raise BadArguments("expected CMD ARGS...")
    if not run.client_supports("terminal"):
        run.say("run failed: the client lacks the terminal capability")
        return
    command, args = argv[0], argv[1:]
    call_id, allowed = run.guarded_tool_call(
        f"Run {rest.strip()}", "execute", rawInput={"command": command, "args": args}
    )
    if not allowed:
        return
    try:
        created = run.request("terminal/create", {
            "command": command, "args": args, "cwd": run.session.cwd,
            "outputByteLimit": TERMINAL_OUTPUT_LIMIT,
        })
    except RpcError as exc:
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say(f"run failed: {exc.message}")
        return
    terminal_id = created.get("terminalId") if isinstance(created, dict) else None
    if not isinstance(terminal_id, str):
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say("run failed: terminal/create returned no terminalId")
        return
    run.update_tool_call(call_id, ToolStatus.IN_PROGRESS,
                         content=[{"type": "terminal", "terminalId": terminal_id}])
    ref = {"terminalId": terminal_id}
    try:
        exited = run.request("terminal/wait_for_exit", ref)
        output = run.request("terminal/output", ref)
    except TurnCancelled:
        release_terminal(run, ref, kill=True)
        raise
    except RpcError as exc:
        release_terminal(run, ref, kill=False)
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say(f"run failed: {exc.message}")
        return
    release_terminal(run, ref, kill=False)
    exited = exited if isinstance(exited, dict) else {}
    output = output if isinstance(output, dict) else {}
    text = str(output.get("output", ""))
    if text and not text.endswith("\n"):
        text += "\n"
    if output.get("truncated"):
        text += "(output truncated)\n"
    code, signal_name = exited.get("exitCode"), exited.get("signal")
    status = f"signal {signal_name}" if code is None and signal_name else str(code)
    run.update_tool_call(call_id, ToolStatus.COMPLETED,
                         rawOutput={"exitCode": code, "signal": signal_name})
    run.say(f"{text}exit status: {status}")


def release_terminal(run: PromptRun, ref: Json, kill: bool) -> None:
    """Kill (after a cancel) and always release; bounded, never cancellable."""
    params = {"sessionId": run.session.id, **ref}
    methods = ["terminal/kill", "terminal/release"] if kill else ["terminal/release"]
    for method in methods:
        try:
            run.wire.request(method, params, None, CLEANUP_TIMEOUT)
        except (RpcError, TimeoutError, ConnectionGone) as exc:
            logger.warning("%s %s failed: %s", method, ref["terminalId"], exc)


def cmd_spawn_grandchild(run: PromptRun, rest: str) -> None:
    import subprocess

    child = subprocess.Popen(
        ["sleep", "3600"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    run.agent.grandchildren.append(child)
    run.say(f"grandchild pid {child.pid}")


def cmd_mcp(run: PromptRun, rest: str) -> None:
    server, _, rest = rest.strip().partition(" ")
    tool, _, raw_args = rest.strip().partition(" ")
    if not server or not tool:
        raise BadArguments("expected SERVER TOOL JSON")
    try:
        arguments = json.loads(raw_args) if raw_args.strip() else {}
    except ValueError as exc:
        raise BadArguments(f"JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise BadArguments("JSON arguments must be an object")
    call_mcp(run, server, tool, arguments)


def call_mcp(run: PromptRun, server: str, tool: str, arguments: Json) -> None:
    call_id = run.start_tool_call(
        f"mcp {server} {tool}", "other", ToolStatus.IN_PROGRESS,
        rawInput={"server": server, "tool": tool, "arguments": arguments},
    )
    try:
        client = run.agent.mcp.get(find_http_server(run.session.mcp_servers, server))
        result = run_cancellable(run.turn, lambda: client.call_tool(tool, arguments))
    except McpError as exc:
        text, failed = str(exc), True
    else:
        text, failed = tool_text(result), bool(result.get("isError"))
    content = [{"type": "content", "content": {"type": "text", "text": text}}]
    run.update_tool_call(call_id, ToolStatus.FAILED if failed else ToolStatus.COMPLETED,
                         content=content)
    run.say(f"tool {'error' if failed else 'result'}: {text}")


def cmd_spawn(run: PromptRun, rest: str) -> None:
    call_mcp(run, "meta-harness", "task_spawn", {"prompt": unescape(rest)})


def cmd_complete(run: PromptRun, rest: str) -> None:
    call_mcp(run, "meta-harness", "task_complete", {"result": unescape(rest)})


COMMANDS: dict[str, Callable[[PromptRun, str], None]] = {
    "say": cmd_say,
    "think": cmd_think,
    "plan": cmd_plan,
    "stream": cmd_stream,
    "sleep": cmd_sleep,
    "hang": cmd_hang,
    "crash": cmd_crash,
    "fail": cmd_fail,
    "refuse": cmd_refuse,
    "write": cmd_write,
    "read": cmd_read,
    "edit": cmd_edit,
    "ask": cmd_ask,
    "run": cmd_run,
    "spawn-grandchild": cmd_spawn_grandchild,
    "mcp": cmd_mcp,
    "spawn": cmd_spawn,
    "complete": cmd_complete,
}


# ---------------------------------------------------------------------------------------------
# The agent: dispatch of incoming messages
# ---------------------------------------------------------------------------------------------


class Options:
    """Command-line switches.

    Exact flag spellings are parsed by hand (argparse alone costs ~10 ms of startup); anything
    else (`--help`, a typo, an abbreviation) goes to argparse, which defines the interface.
    """

    SWITCHES = ("--no-load", "--no-resume", "--no-close", "--fail-load")
    VALUED = ("--state-dir", "--log-level")

    def __init__(self, argv: list[str] | None = None) -> None:
        args = sys.argv[1:] if argv is None else argv
        values = self.fast_parse(args)
        if values is None:
            values = self.slow_parse(args)
        state_dir = values.get("--state-dir") or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
        self.state_dir = os.path.abspath(str(state_dir))
        self.load = not values.get("--no-load")
        self.resume = not values.get("--no-resume")
        self.close = not values.get("--no-close")
        self.fail_load = bool(values.get("--fail-load"))
        self.log_level = str(values.get("--log-level") or "INFO").upper()

    @classmethod
    def fast_parse(cls, args: list[str]) -> dict[str, str | bool] | None:
        values: dict[str, str | bool] = {}
        rest = iter(args)
        for arg in rest:
            name, eq, value = arg.partition("=")
            if name in cls.SWITCHES and not eq:
                values[name] = True
            elif name in cls.VALUED:
                found = value if eq else next(rest, None)
                if found is None or found.startswith("-"):
                    return None
                values[name] = found
            else:
                return None
        return values

    @classmethod
    def slow_parse(cls, args: list[str]) -> dict[str, str | bool]:
        import argparse

        parser = argparse.ArgumentParser(
            prog="python -m meta_harness.demo_agent", description="Deterministic demo ACP agent."
        )
        parser.add_argument(
            "--state-dir", help=f"session state (default ${STATE_DIR_ENV} or ./{DEFAULT_STATE_DIR})"
        )
        parser.add_argument("--no-load", action="store_true", help="do not offer session/load")
        parser.add_argument("--no-resume", action="store_true", help="do not offer session/resume")
        parser.add_argument("--no-close", action="store_true", help="do not offer session/close")
        parser.add_argument(
            "--fail-load", action="store_true", help="session/load always fails with -32002"
        )
        parser.add_argument("--log-level", help="stderr log level (default INFO)")
        ns = vars(parser.parse_args(args))
        return {f"--{key.replace('_', '-')}": value for key, value in ns.items() if value}


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


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def read_lines(fd: int) -> Iterator[bytes]:
    """Yield b"\\n"-separated lines of any length from a binary fd until EOF."""
    buffer = bytearray()
    while True:
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            break
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            buffer += chunk[start:newline]
            yield bytes(buffer)
            buffer.clear()
            start = newline + 1
        buffer += chunk[start:]
    if buffer:
        yield bytes(buffer)


def main(argv: list[str] | None = None) -> NoReturn:
    options = Options(argv)
    logging.basicConfig(
        stream=sys.stderr, level=options.log_level,
        format="%(asctime)s demo-agent[%(process)d] %(levelname)s %(message)s",
    )
    # Keep the protocol stream private: fd 1 now points at stderr for anything else
    # (stray prints, grandchildren); frames go to a duplicate of the original stdout.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    wire = Wire(out_fd)
    agent = Agent(options, wire)
    logger.info("started, state dir %s", options.state_dir)
    for line in read_lines(0):
        try:
            agent.on_line(line)
        except Exception:  # one bad message must not end the connection
            logger.exception("failed to handle a message")
    logger.info("stdin closed; exiting")
    agent.drain()
    os._exit(0)


if __name__ == "__main__":
    main()
