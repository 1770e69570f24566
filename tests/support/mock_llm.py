"""A scriptable mock LLM server on 127.0.0.1 for driving real coding agents offline.

Owns one threaded stdlib HTTP server that speaks the Anthropic Messages API (Claude Code) and the
OpenAI Responses API (Codex), logs every request it receives, and answers each LLM request with
the first matching scripted `Rule` (or a short default text). It knows nothing about ACP or about
how agents are launched: see `tests/support/real_agents.py` for that, and docs/real-agents.md.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

HOLD_LIMIT = 60.0  # a held stream gives up after this long, so a forgotten gate cannot hang a test
DEFAULT_TEXT = "Mock reply."


class Api(StrEnum):
    """Which wire API a request used."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"


# ---------------------------------------------------------------------------------------------
# What a request looks like to a rule


@dataclass(frozen=True)
class ToolResult:
    """One tool result the agent sent back to the model."""

    name: str  # qualified tool name, e.g. "Write", "apply_patch", "mcp__test__add"
    call_id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True)
class Turn:
    """The normalised view of one LLM request (either API) that rules match on."""

    api: Api
    prompt: str  # all text of the latest user message that is not only tool results
    tool_results: tuple[ToolResult, ...]  # results of the model's latest tool calls, if any
    tools: tuple[str, ...]  # qualified names of the tools offered (namespaces flattened)
    stream: bool
    body: Mapping[str, Any] = field(repr=False)

    @property
    def is_side_request(self) -> bool:
        """True for requests offering no tools (titles, summaries, warm-ups)."""
        return not self.tools

    def result_of(self, tool: str) -> ToolResult | None:
        """The newest result of `tool` (qualified or bare name) carried by this request."""
        for result in reversed(self.tool_results):
            if tool_name_matches(result.name, tool):
                return result
        return None

    def history_text(self) -> str:
        """Every text of the conversation sent in this request, joined (for history asserts)."""
        return "\n".join(_all_texts(self.body))


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received, with the turn parsed from it and the rule that answered."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any  # parsed JSON, raw text if not JSON, None if empty
    turn: Turn | None  # set for LLM requests (messages / responses)
    answered_by: str | None  # rule name, "default", or None for non-LLM requests


def tool_name_matches(qualified: str, wanted: str) -> bool:
    """`wanted` names the tool exactly or is its bare name (the part after the last `__`)."""
    return qualified == wanted or qualified.rsplit("__", 1)[-1] == wanted


# ---------------------------------------------------------------------------------------------
# Replies


@dataclass(frozen=True)
class Text:
    """Answer with assistant text, streamed in `chunks` pieces."""

    text: str
    chunks: int = 1
    # Given: stream the first chunk, then wait (at most HOLD_LIMIT) for the event before the
    # rest; lets a test cancel a turn mid-stream without sleeping.
    hold: threading.Event | None = None

    @classmethod
    def long(cls, chunks: int, piece: str = "lorem ipsum ") -> Text:
        """A long reply of `chunks` deltas of `piece` each."""
        return cls(piece * chunks, chunks=chunks)

    def pieces(self) -> list[str]:
        n = max(1, min(self.chunks, len(self.text) or 1))
        size, extra = divmod(len(self.text), n)
        out, start = [], 0
        for i in range(n):
            end = start + size + (1 if i < extra else 0)
            out.append(self.text[start:end])
            start = end
        return out


@dataclass(frozen=True)
class ToolCall:
    """Answer with a call of tool `name` (as offered to the model) with `arguments`.

    For the OpenAI API the mock looks the name up in the request's tools: a namespaced MCP tool
    (`mcp__<server>__<tool>`) becomes a `function_call` with `namespace`, a custom (freeform) tool
    such as `apply_patch` becomes a `custom_tool_call` whose input is `arguments` (a string).
    """

    name: str
    arguments: Mapping[str, Any] | str
    text: str = ""  # optional text streamed before the call

    @classmethod
    def mcp(cls, server: str, tool: str, arguments: Mapping[str, Any]) -> ToolCall:
        """A call of MCP tool `tool` of the server named `server` in session/new."""
        return cls(f"mcp__{server}__{tool}", arguments)


@dataclass(frozen=True)
class HttpError:
    """Answer with an HTTP error in the API's error shape (5xx and 429 make agents retry)."""

    status: int
    message: str = "mock error"
    error_type: str = ""  # empty: derived from the status, as the real APIs do

    def kind(self) -> str:
        if self.error_type:
            return self.error_type
        known = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
        return known.get(self.status, "overloaded_error" if self.status == 529 else "api_error")


Reply = Text | ToolCall | HttpError
ReplyFactory = Callable[[Turn], Reply]


@dataclass(frozen=True)
class Rule:
    """Answer requests that match every given condition with `reply`.

    - `prompt_contains`: the latest user message text contains it.
    - `after_tool`: the request carries the result of this tool (qualified or bare name). Without
      it a rule matches only requests carrying NO tool result (the first request of a prompt).
    - `api`: only requests of this API. `when`: any extra predicate.
    - `side_requests`: also match requests that offer no tools (titles, summaries).
    - `times`: fire at most this many times (None: unlimited).
    """

    reply: Reply | ReplyFactory
    prompt_contains: str | None = None
    after_tool: str | None = None
    api: Api | None = None
    when: Callable[[Turn], bool] | None = None
    side_requests: bool = False
    times: int | None = None
    name: str = ""

    def matches(self, turn: Turn) -> bool:
        if turn.is_side_request and not self.side_requests:
            return False
        if self.api is not None and turn.api != self.api:
            return False
        if self.prompt_contains is not None and self.prompt_contains not in turn.prompt:
            return False
        if self.after_tool is None:
            if turn.tool_results:
                return False
        elif turn.result_of(self.after_tool) is None:
            return False
        return self.when is None or self.when(turn)

    def reply_for(self, turn: Turn) -> Reply:
        if isinstance(self.reply, Text | ToolCall | HttpError):
            return self.reply
        return self.reply(turn)


# ---------------------------------------------------------------------------------------------
# Parsing requests into turns


def _block_text(content: Any) -> str:
    """Text of a content value: a string or a list of text-bearing blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text", "") for b in content if isinstance(b, dict) and "text" in b]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _all_texts(body: Mapping[str, Any]) -> Iterator[str]:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if block.get("type") == "tool_result":
                    yield _block_text(block.get("content"))
                elif block.get("type") == "tool_use":
                    yield json.dumps(block.get("input"))
        yield _block_text(content)
    items = body.get("input")
    if isinstance(items, str):
        yield items
    elif isinstance(items, list):
        for item in items:
            for key in ("content", "output", "arguments", "input"):
                value = item.get(key)
                yield value if isinstance(value, str) else _block_text(value)


def parse_anthropic(body: Mapping[str, Any]) -> Turn:
    messages = list(body.get("messages") or [])
    names: dict[str, str] = {}
    for message in messages:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            for block in content:
                if block.get("type") == "tool_use":
                    names[block.get("id", "")] = block.get("name", "")

    def results_in(message: Mapping[str, Any]) -> list[dict[str, Any]]:
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]

    results: tuple[ToolResult, ...] = ()
    if messages and results_in(messages[-1]):
        results = tuple(
            ToolResult(
                name=names.get(b.get("tool_use_id", ""), ""),
                call_id=b.get("tool_use_id", ""),
                output=_block_text(b.get("content")),
                is_error=bool(b.get("is_error")),
            )
            for b in results_in(messages[-1])
        )
    prompt = ""
    for message in reversed(messages):
        if message.get("role") == "user" and not results_in(message):
            prompt = _block_text(message.get("content"))
            break
    tools = tuple(t.get("name", "") for t in body.get("tools") or [])
    return Turn(Api.ANTHROPIC, prompt, results, tools, bool(body.get("stream")), body)


def _qualified(item: Mapping[str, Any]) -> str:
    namespace = item.get("namespace")
    name = str(item.get("name", ""))
    return f"{namespace}__{name}" if namespace else name


def parse_openai(body: Mapping[str, Any]) -> Turn:
    raw = body.get("input")
    items: list[dict[str, Any]] = (
        [{"type": "message", "role": "user", "content": raw}] if isinstance(raw, str) else raw or []
    )
    names = {
        i.get("call_id", ""): _qualified(i) for i in items if i.get("type", "").endswith("_call")
    }
    trailing: list[ToolResult] = []
    for item in reversed(items):
        kind = item.get("type", "")
        if kind.endswith("_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else _block_text(output)
            call_id = item.get("call_id", "")
            trailing.append(ToolResult(names.get(call_id, ""), call_id, text))
        elif kind == "reasoning" or (kind.endswith("_call") and not trailing):
            continue
        else:
            break
    prompt = ""
    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            prompt = _block_text(item.get("content"))
            break
    tools: list[str] = []
    for tool in body.get("tools") or []:
        if tool.get("type") == "namespace":
            tools.extend(f"{tool.get('name')}__{t.get('name')}" for t in tool.get("tools") or [])
        elif tool.get("name"):
            tools.append(str(tool["name"]))
    return Turn(
        Api.OPENAI, prompt, tuple(reversed(trailing)), tuple(tools), bool(body.get("stream")), body
    )


# ---------------------------------------------------------------------------------------------
# Wire formats


def _usage_anthropic(output_tokens: int) -> dict[str, int]:
    # claude-agent-acp sums all four fields; a missing one turns usage_update.used into null.
    return {
        "input_tokens": 10,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _usage_openai(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 10 + output_tokens,
    }


class _Ids:
    """Deterministic ids: a per-server counter behind a fixed prefix."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_mock_{next(self._counter):04d}"


def anthropic_events(reply: Text | ToolCall, model: str, ids: _Ids) -> Iterator[dict[str, Any]]:
    """The SSE events of one Messages API answer (also folded into a non-stream answer)."""
    yield {
        "type": "message_start",
        "message": {
            "id": ids.next("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_anthropic(1),
        },
    }
    text = reply.text
    pieces = reply.pieces() if isinstance(reply, Text) else ([text] if text else [])
    index = 0
    if pieces:
        yield {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        for i, piece in enumerate(pieces):
            yield {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            if i == 0 and isinstance(reply, Text) and reply.hold is not None:
                yield {"type": "_hold"}
        yield {"type": "content_block_stop", "index": 0}
        index = 1
    if isinstance(reply, ToolCall):
        arguments = (
            reply.arguments if isinstance(reply.arguments, Mapping) else {"input": reply.arguments}
        )
        yield {
            "type": "content_block_start",
            "index": index,
            "content_block": {
                "type": "tool_use",
                "id": ids.next("toolu"),
                "name": reply.name,
                "input": {},
            },
        }
        yield {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": json.dumps(arguments)},
        }
        yield {"type": "content_block_stop", "index": index}
    stop = "tool_use" if isinstance(reply, ToolCall) else "end_turn"
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": _usage_anthropic(max(1, len(pieces))),
    }
    yield {"type": "message_stop"}


def fold_anthropic(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Fold stream events into the non-stream Messages API response."""
    message = dict(events[0]["message"])
    blocks: list[dict[str, Any]] = []
    for event in events[1:]:
        if event["type"] == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                blocks[-1]["text"] += delta["text"]
            else:
                blocks[-1]["input"] = json.loads(delta["partial_json"])
        elif event["type"] == "message_delta":
            message.update(event["delta"])
            message["usage"] = event["usage"]
    message["content"] = blocks
    return message


def _openai_call_item(reply: ToolCall, turn: Turn, ids: _Ids) -> dict[str, Any]:
    offered = list(turn.body.get("tools") or [])
    for tool in offered:
        if tool.get("type") == "custom" and tool.get("name") == reply.name:
            text = (
                reply.arguments if isinstance(reply.arguments, str) else json.dumps(reply.arguments)
            )
            return {
                "type": "custom_tool_call",
                "id": ids.next("ctc"),
                "call_id": ids.next("call"),
                "name": reply.name,
                "input": text,
                "status": "completed",
            }
    name, namespace = reply.name, None
    for tool in offered:
        if tool.get("type") == "namespace":
            for inner in tool.get("tools") or []:
                if f"{tool.get('name')}__{inner.get('name')}" == reply.name:
                    name, namespace = str(inner.get("name")), str(tool.get("name"))
    args = reply.arguments if isinstance(reply.arguments, str) else json.dumps(reply.arguments)
    item: dict[str, Any] = {
        "type": "function_call",
        "id": ids.next("fc"),
        "call_id": ids.next("call"),
        "name": name,
        "arguments": args,
        "status": "completed",
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def openai_events(reply: Text | ToolCall, turn: Turn, ids: _Ids) -> Iterator[dict[str, Any]]:
    """The SSE events of one Responses API answer; the last one holds the whole response."""
    response_id = ids.next("resp")
    model = str(turn.body.get("model", "mock"))
    base = {"id": response_id, "object": "response", "model": model, "created_at": 0}
    yield {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}}
    output: list[dict[str, Any]] = []
    pieces = reply.pieces() if isinstance(reply, Text) else ([reply.text] if reply.text else [])
    if pieces:
        msg_id = ids.next("msg")
        item = {
            "type": "message",
            "id": msg_id,
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        yield {"type": "response.output_item.added", "output_index": 0, "item": item}
        for i, piece in enumerate(pieces):
            yield {
                "type": "response.output_text.delta",
                "item_id": msg_id,
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
            }
            if i == 0 and isinstance(reply, Text) and reply.hold is not None:
                yield {"type": "_hold"}
        content = [{"type": "output_text", "text": "".join(pieces), "annotations": []}]
        done = {**item, "status": "completed", "content": content}
        yield {"type": "response.output_item.done", "output_index": 0, "item": done}
        output.append(done)
    if isinstance(reply, ToolCall):
        call = _openai_call_item(reply, turn, ids)
        index = len(output)
        yield {"type": "response.output_item.added", "output_index": index, "item": call}
        yield {"type": "response.output_item.done", "output_index": index, "item": call}
        output.append(call)
    yield {
        "type": "response.completed",
        "response": {
            **base,
            "status": "completed",
            "output": output,
            "usage": _usage_openai(len(pieces)),
        },
    }


def error_body(api: Api, error: HttpError) -> dict[str, Any]:
    if api is Api.ANTHROPIC:
        return {"type": "error", "error": {"type": error.kind(), "message": error.message}}
    return {"error": {"message": error.message, "type": error.kind(), "code": None}}


# ---------------------------------------------------------------------------------------------
# The server


class MockLLM:
    """The mock server. Use as a context manager; `url` is `http://127.0.0.1:<port>`."""

    def __init__(self, *rules: Rule, default_text: str = DEFAULT_TEXT) -> None:
        self.default_text = default_text
        self._lock = threading.Lock()
        self._rules: list[Rule] = list(rules)
        self._fired: list[int] = [0] * len(self._rules)
        self._requests: list[RecordedRequest] = []
        self._ids = _Ids()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mock-llm", daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        logger.debug("mock LLM listening on %s", self.url)

    def __enter__(self) -> MockLLM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # --- scripting ---

    def script(self, *rules: Rule) -> None:
        """Replace the rules (first match wins; fire counts restart)."""
        with self._lock:
            self._rules = list(rules)
            self._fired = [0] * len(self._rules)

    def reset(self) -> None:
        """Forget rules and the request log."""
        with self._lock:
            self._rules, self._fired, self._requests = [], [], []

    # --- inspection ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def turns(self, api: Api | None = None) -> list[Turn]:
        """The parsed LLM requests received so far, optionally of one API."""
        return [
            r.turn
            for r in self.requests
            if r.turn is not None and (api is None or r.turn.api is api)
        ]

    # --- used by the handler ---

    def _choose(self, turn: Turn) -> tuple[str, Reply]:
        """The first rule that matches and has fires left answers; otherwise the default."""
        with self._lock:
            chosen: tuple[str, Rule] | None = None
            for index, rule in enumerate(self._rules):
                limit_hit = rule.times is not None and self._fired[index] >= rule.times
                if not limit_hit and rule.matches(turn):
                    self._fired[index] += 1
                    chosen = (rule.name or f"rule{index}", rule)
                    break
        if chosen is None:
            return "default", Text(self.default_text)
        return chosen[0], chosen[1].reply_for(turn)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _handler_for(mock: MockLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = mock

    return Handler


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request; LLM requests go through the owner's rules."""

    protocol_version = "HTTP/1.1"
    owner: MockLLM

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("mock LLM: " + format, *args)

    # --- plumbing ---

    def _read_body(self) -> Any:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            raw = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                raw += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            data = bytes(raw)
        else:
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
        encoding = self.headers.get("content-encoding", "").lower()
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_sse(self, events: Iterator[dict[str, Any]], hold: threading.Event | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        sequence = itertools.count()
        try:
            for event in events:
                if event["type"] == "_hold":
                    if hold is not None and not hold.wait(HOLD_LIMIT):
                        logger.warning("mock LLM: held stream released by timeout")
                    continue
                if event["type"].startswith("response."):
                    event = {**event, "sequence_number": next(sequence)}
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("mock LLM: client went away mid-stream")

    def _record(self, body: Any, turn: Turn | None, answered_by: str | None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner._record(
            RecordedRequest(self.command, self.path, headers, body, turn, answered_by)
        )

    # --- routes ---

    def do_HEAD(self) -> None:
        self._record(None, None, None)
        self._send_json(200, {})

    def do_GET(self) -> None:
        self._record(None, None, None)
        path = urlsplit(self.path).path.rstrip("/")
        if path.endswith("/models"):
            self._send_json(200, self._models())
        else:
            self._send_json(200, {})

    def do_POST(self) -> None:
        body = self._read_body()
        path = urlsplit(self.path).path.rstrip("/")
        if path.endswith("/messages/count_tokens"):
            self._record(body, None, None)
            self._send_json(200, {"input_tokens": 10})
        elif path.endswith("/messages") and isinstance(body, dict):
            self._answer(body, parse_anthropic(body))
        elif path.endswith("/responses") and isinstance(body, dict):
            self._answer(body, parse_openai(body))
        else:
            self._record(body, None, None)
            logger.warning("mock LLM: unhandled %s %s", self.command, self.path)
            self._send_json(404, {"error": {"message": f"mock: no route {self.path}"}})

    def _models(self) -> dict[str, Any]:
        if "anthropic-version" in {k.lower() for k in self.headers}:
            model = {"type": "model", "id": "claude-sonnet-4-6", "display_name": "Mock"}
            return {"data": [model], "has_more": False, "first_id": None, "last_id": None}
        return {
            "object": "list",
            "data": [{"id": "gpt-5.4", "object": "model", "owned_by": "mock"}],
        }

    def _answer(self, body: dict[str, Any], turn: Turn) -> None:
        answered_by, reply = self.owner._choose(turn)
        self._record(body, turn, answered_by)
        logger.debug("mock LLM: %s answered %s request", answered_by, turn.api)
        if isinstance(reply, HttpError):
            self._send_json(reply.status, error_body(turn.api, reply))
            return
        hold = reply.hold if isinstance(reply, Text) else None
        ids = self.owner._ids
        if turn.api is Api.ANTHROPIC:
            events = anthropic_events(reply, str(body.get("model", "mock")), ids)
            if turn.stream:
                self._send_sse(events, hold)
            else:
                self._send_json(200, fold_anthropic([e for e in events if e["type"] != "_hold"]))
        else:
            events = openai_events(reply, turn, ids)
            if turn.stream:
                self._send_sse(events, hold)
            else:
                *_, completed = (e for e in events if e["type"] != "_hold")
                self._send_json(200, completed["response"])
