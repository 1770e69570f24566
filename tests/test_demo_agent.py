"""Tests of the demo ACP agent, driven as a real process over its stdin/stdout.

Most tests use `RawClient`, a tiny JSON-lines client that answers the agent's own requests
(fs/*, terminal/*, session/request_permission) from scripted handlers. One test drives the agent
with the official ACP SDK client, and the MCP tests run a real MCPServer in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

REPO = Path(__file__).resolve().parents[1]
WAIT = 10.0  # the bound of every wait on the agent
DEFER = object()  # a handler returns this to answer later with RawClient.reply()
FULL_CAPS = {"fs": {"readTextFile": True, "writeTextFile": True}, "terminal": True}


def header(message_id: str, sender: str = "user") -> str:
    return f"[meta-harness message id={message_id} from={sender}]\n"


class ClientError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RawClient:
    """Speaks JSON lines to one agent process; records every message the agent sends."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.messages: list[dict[str, Any]] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.eof = False
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- plumbing ---------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                self.messages.append(message)
                self._cond.notify_all()
            if "method" in message and "id" in message:
                self._answer(message)
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def _answer(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(message["method"])
        if handler is None:
            self.reply_error(message["id"], -32601, "Method not found")
            return
        try:
            result = handler(message["params"])
        except ClientError as exc:
            self.reply_error(message["id"], exc.code, exc.message)
            return
        if result is not DEFER:
            self.reply(message["id"], result)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def reply(self, request_id: Any, result: Any) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def reply_error(self, request_id: Any, code: int, message: str) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, WAIT), "timed out waiting on the agent"

    # -- requests ---------------------------------------------------------------------------

    def start(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = self._next_id
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return request_id

    def response(self, request_id: int) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            found[:] = [m for m in self.messages if m.get("id") == request_id and "method" not in m]
            return bool(found)

        self.wait_for(arrived)
        return found[0]

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.response(self.start(method, params))

    def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        response = self.request(method, params)
        assert "result" in response, response
        return response["result"]

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # -- ACP shortcuts ----------------------------------------------------------------------

    def initialize(self, caps: dict[str, Any] | None = None) -> dict[str, Any]:
        caps = FULL_CAPS if caps is None else caps
        return self.result(  # type: ignore[no-any-return]
            "initialize", {"protocolVersion": 1, "clientCapabilities": caps}
        )

    def new_session(self, cwd: Path, mcp_servers: list[dict[str, Any]] | None = None) -> str:
        result = self.result("session/new", {"cwd": str(cwd), "mcpServers": mcp_servers or []})
        return str(result["sessionId"])

    def start_prompt(self, session_id: str, text: str, message_id: str | None = None) -> int:
        params: dict[str, Any] = {
            "sessionId": session_id,
            "prompt": [{"type": "text", "text": text}],
        }
        if message_id is not None:
            params["_meta"] = {"messageId": message_id}
        return self.start("session/prompt", params)

    def prompt(self, session_id: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        return self.response(self.start_prompt(session_id, text, message_id))

    def cancel(self, session_id: str) -> None:
        self.notify("session/cancel", {"sessionId": session_id})

    # -- what the agent sent ----------------------------------------------------------------

    def updates(self, session_id: str) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m["params"]["update"]
                for m in self.messages
                if m.get("method") == "session/update" and m["params"]["sessionId"] == session_id
            ]

    def text(self, session_id: str, kind: str = "agent_message_chunk") -> str:
        return "".join(
            u["content"]["text"] for u in self.updates(session_id) if u["sessionUpdate"] == kind
        )

    def agent_requests(self, method: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m
                for m in self.messages
                if "method" in m and "id" in m and (method is None or m["method"] == method)
            ]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(WAIT)


def scripted(*answers: Any) -> Callable[[dict[str, Any]], Any]:
    """A handler that returns the given answers in order (an option id means 'selected')."""
    queue = list(answers)

    def handler(params: dict[str, Any]) -> Any:
        answer = queue.pop(0)
        if answer == "cancelled":
            return {"outcome": {"outcome": "cancelled"}}
        if isinstance(answer, str):
            return {"outcome": {"outcome": "selected", "optionId": answer}}
        return answer

    return handler


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def agents(tmp_path: Path, state_dir: Path) -> Iterator[Callable[..., RawClient]]:
    """Spawns agents in their own process groups; kills every group at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        *flags: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        state: Path | None = state_dir,
    ) -> RawClient:
        args = [sys.executable, "-m", "meta_harness.demo_agent", *flags]
        if state is not None:
            args += ["--state-dir", str(state)]
        with open(tmp_path / f"agent-{len(procs)}.stderr", "wb") as stderr:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=cwd or tmp_path,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            )
        procs.append(proc)
        return RawClient(proc)

    yield spawn
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def session(agents: Callable[..., RawClient], tmp_path: Path) -> tuple[RawClient, str]:
    client = agents()
    client.initialize()
    return client, client.new_session(tmp_path)


def stored(state_dir: Path, session_id: str, suffix: str) -> list[dict[str, Any]]:
    path = state_dir / "sessions" / f"{session_id}{suffix}"
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# initialize, flags, errors
# ---------------------------------------------------------------------------------------------


def test_initialize_advertises_load_resume_close_and_http_mcp(
    agents: Callable[..., RawClient],
) -> None:
    assert agents().initialize() == {
        "protocolVersion": 1,
        "agentCapabilities": {
            "loadSession": True,
            "mcpCapabilities": {"http": True, "sse": False},
            "promptCapabilities": {"image": False, "audio": False, "embeddedContext": True},
            "sessionCapabilities": {"resume": {}, "close": {}},
        },
        "agentInfo": {"name": "meta-harness-demo", "version": "0.1.0"},
        "authMethods": [],
    }


def test_flags_withdraw_load_resume_and_close(
    agents: Callable[..., RawClient], tmp_path: Path
) -> None:
    client = agents("--no-load", "--no-resume", "--no-close")
    caps = client.initialize()["agentCapabilities"]
    assert caps["loadSession"] is False
    assert caps["sessionCapabilities"] == {}
    sid = client.new_session(tmp_path)
    params = {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
    for method in ("session/load", "session/resume", "session/close"):
        assert client.request(method, params)["error"]["code"] == -32601


def test_fail_load_answers_session_not_found(
    agents: Callable[..., RawClient], tmp_path: Path
) -> None:
    client = agents("--fail-load")
    client.initialize()
    sid = client.new_session(tmp_path)
    error = client.request(
        "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
    )["error"]
    assert (error["code"], error["message"]) == (-32002, "session not found")


def test_unknown_methods_bad_params_and_bad_json_get_json_rpc_errors(
    session: tuple[RawClient, str], tmp_path: Path
) -> None:
    client, sid = session
    assert client.request("session/frobnicate", {})["error"]["code"] == -32601
    assert client.request("session/new", {"mcpServers": []})["error"]["code"] == -32602
    assert client.request("session/new", {"cwd": "relative"})["error"]["code"] == -32602
    assert client.request("initialize", {})["error"]["code"] == -32602
    bad_prompt = {"sessionId": sid, "prompt": "not a list"}
    assert client.request("session/prompt", bad_prompt)["error"]["code"] == -32602
    assert client.prompt("demo-unknown", "hi")["error"]["code"] == -32002
    unknown_load = {"sessionId": "demo-unknown", "cwd": str(tmp_path), "mcpServers": []}
    assert client.request("session/load", unknown_load)["error"]["code"] == -32002
    client.send_raw(b"{not json\n")
    client.wait_for(lambda: any(m.get("error", {}).get("code") == -32700 for m in client.messages))


def test_stdin_eof_makes_the_agent_exit_zero(agents: Callable[..., RawClient]) -> None:
    client = agents()
    client.initialize()
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    assert client.proc.wait(WAIT) == 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--state-dir", "/tmp/s", "--no-load", "--fail-load"],
        ["--state-dir=/tmp/s", "--no-resume", "--no-close", "--log-level", "debug"],
    ],
)
def test_the_fast_flag_parser_agrees_with_argparse(argv: list[str]) -> None:
    from meta_harness.demo_agent import Options

    assert Options.fast_parse(argv) == Options.slow_parse(argv)
    assert Options.fast_parse(["--state"]) is None  # abbreviations go to argparse


def test_sigterm_makes_the_agent_exit(agents: Callable[..., RawClient]) -> None:
    client = agents()
    client.initialize()
    client.proc.send_signal(signal.SIGTERM)
    assert client.proc.wait(WAIT) == -signal.SIGTERM


# ---------------------------------------------------------------------------------------------
# prompts and plain commands
# ---------------------------------------------------------------------------------------------


def test_plain_text_is_echoed_in_word_chunks_after_the_header_is_stripped(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    text = header("m-1") + "hello  world"
    assert client.prompt(sid, text, "m-1")["result"] == {"stopReason": "end_turn"}
    assert client.updates(sid) == [
        {"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": text}},
        {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "echo: "}},
        {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "hello  "}},
        {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "world\n"}},
    ]


def test_back_to_back_prompts_are_all_answered(session: tuple[RawClient, str]) -> None:
    client, sid = session
    for i in range(50):
        assert client.prompt(sid, f"/say {i}")["result"] == {"stopReason": "end_turn"}
    assert client.text(sid) == "".join(f"{i}\n" for i in range(50))


def test_say_think_plan_and_stream_emit_their_updates_in_order(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    text = "intro line\n/say hi there\n/think hmm\\nyes\n/plan read; write ;\n/stream 3\noutro"
    assert client.prompt(sid, text)["result"] == {"stopReason": "end_turn"}
    updates = client.updates(sid)
    kinds = [u["sessionUpdate"] for u in updates]
    assert kinds[0] == "user_message_chunk"
    assert client.text(sid, "agent_thought_chunk") == "hmm\nyes\n"
    plans = [u for u in updates if u["sessionUpdate"] == "plan"]
    assert plans == [
        {
            "sessionUpdate": "plan",
            "entries": [
                {"content": "read", "priority": "medium", "status": "pending"},
                {"content": "write", "priority": "medium", "status": "pending"},
            ],
        }
    ]
    streamed = [
        u["content"]["text"]
        for u in updates
        if u["sessionUpdate"] == "agent_message_chunk"
        and u["content"]["text"].startswith("stream ")
    ]
    assert [len(s) for s in streamed] == [1024, 1024, 1024]
    assert [s.split(" ")[1] for s in streamed] == ["1/3", "2/3", "3/3"]
    agent_text = client.text(sid)
    assert agent_text.startswith("echo: intro line\nhi there\n")
    assert agent_text.endswith("echo: outro\n")
    order = [k for k in kinds if k != "agent_message_chunk"]
    assert order == ["user_message_chunk", "agent_thought_chunk", "agent_thought_chunk", "plan"]


def test_refuse_fail_and_bad_commands(session: tuple[RawClient, str]) -> None:
    client, sid = session
    assert client.prompt(sid, "/refuse\n/say never")["result"] == {"stopReason": "refusal"}
    error = client.prompt(sid, "/fail")["error"]
    assert (error["code"], error["message"]) == (-32603, "demo failure")
    assert client.prompt(sid, "/nope\n/stream x\n/sleep 1")["result"]["stopReason"] == "end_turn"
    assert "never" not in client.text(sid)
    assert client.text(sid).endswith(
        "unknown command: /nope\nbad arguments for /stream: expected a number of chunks\n"
    )


def test_cancel_ends_a_hanging_prompt_as_cancelled(session: tuple[RawClient, str]) -> None:
    client, sid = session
    request_id = client.start_prompt(sid, "/say waiting\n/hang\n/say never")
    client.wait_for(lambda: "waiting\n" in client.text(sid))
    client.cancel(sid)
    assert client.response(request_id)["result"] == {"stopReason": "cancelled"}
    request_id = client.start_prompt(sid, "/say napping\n/sleep 600000")
    client.wait_for(lambda: "napping\n" in client.text(sid))
    client.cancel(sid)
    assert client.response(request_id)["result"] == {"stopReason": "cancelled"}
    assert "never" not in client.text(sid)
    assert client.prompt(sid, "after")["result"] == {"stopReason": "end_turn"}


def test_a_five_megabyte_single_line_prompt_is_answered(
    session: tuple[RawClient, str], state_dir: Path
) -> None:
    client, sid = session
    big = "x" * (5 * 1024 * 1024)
    assert client.prompt(sid, big, "big-1")["result"] == {"stopReason": "end_turn"}
    assert client.text(sid) == f"echo: {big}\n"
    assert stored(state_dir, sid, ".received.jsonl")[0]["text"] == big


# ---------------------------------------------------------------------------------------------
# persistence: load, resume, close, crash
# ---------------------------------------------------------------------------------------------


def test_a_load_after_sigkill_replays_every_update_in_order_including_the_header(
    agents: Callable[..., RawClient], tmp_path: Path, state_dir: Path
) -> None:
    first = agents()
    first.initialize()
    sid = first.new_session(tmp_path)
    first.handlers["session/request_permission"] = scripted("allow-once")
    first.handlers["fs/write_text_file"] = lambda params: {}
    first.prompt(sid, header("m-1") + "hello\n/think pondering\n/plan a; b", "m-1")
    first.prompt(sid, header("m-2", "task-7") + "/edit notes.txt new text", "m-2")
    first.start_prompt(sid, header("m-3") + "/say partial\n/hang", "m-3")
    first.wait_for(lambda: "partial\n" in first.text(sid))
    live = first.updates(sid)
    first.kill()

    second = agents()
    second.initialize()
    load = {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
    assert second.result("session/load", load) == {}
    assert second.updates(sid) == live
    user_texts = [u["content"]["text"] for u in live if u["sessionUpdate"] == "user_message_chunk"]
    assert user_texts[0].startswith("[meta-harness message id=m-1 from=user]\n")
    assert user_texts[1].startswith("[meta-harness message id=m-2 from=task-7]\n")
    received = stored(state_dir, sid, ".received.jsonl")
    assert [r["messageId"] for r in received] == ["m-1", "m-2", "m-3"]
    assert received[2]["text"] == header("m-3") + "/say partial\n/hang"
    assert isinstance(received[0]["ts"], float)
    # The loaded session goes on, and tool call ids keep counting.
    second.handlers["session/request_permission"] = scripted("reject-once")
    assert second.prompt(sid, "/edit b.txt x")["result"] == {"stopReason": "end_turn"}
    new_calls = [u for u in second.updates(sid)[len(live) :] if u["sessionUpdate"] == "tool_call"]
    assert [c["toolCallId"] for c in new_calls] == ["call-2"]


def test_a_crash_exits_with_code_3_without_answering_and_keeps_what_was_said(
    agents: Callable[..., RawClient], tmp_path: Path
) -> None:
    first = agents()
    first.initialize()
    sid = first.new_session(tmp_path)
    request_id = first.start_prompt(sid, "/say before\n/crash\n/say after", "m-1")
    assert first.proc.wait(WAIT) == 3
    first.wait_for(lambda: first.eof)
    assert not [m for m in first.messages if m.get("id") == request_id and "method" not in m]

    second = agents()
    second.initialize()
    second.result("session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
    assert second.text(sid) == "before\n"


def test_a_torn_last_line_is_skipped_on_load_and_later_appends_stay_clean(
    agents: Callable[..., RawClient], tmp_path: Path, state_dir: Path
) -> None:
    first = agents()
    first.initialize()
    sid = first.new_session(tmp_path)
    first.prompt(sid, "/say one")
    first.kill()
    log = state_dir / "sessions" / f"{sid}.jsonl"
    with log.open("ab") as f:
        f.write(b'{"sessionUpdate":"agent_mess')

    second = agents()
    second.initialize()
    second.result("session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
    assert second.text(sid) == "one\n"
    second.prompt(sid, "/say two")
    assert (
        "".join(
            u["content"]["text"]
            for u in stored(state_dir, sid, ".jsonl")
            if u["sessionUpdate"] == "agent_message_chunk"
        )
        == "one\ntwo\n"
    )


def test_resume_restores_without_replay_and_close_forgets_the_session(
    agents: Callable[..., RawClient], tmp_path: Path
) -> None:
    first = agents()
    first.initialize()
    sid = first.new_session(tmp_path)
    first.prompt(sid, "/say kept")
    first.kill()

    second = agents()
    second.initialize()
    params = {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
    assert second.result("session/resume", params) == {}
    assert second.updates(sid) == []
    assert second.prompt(sid, "/say more")["result"] == {"stopReason": "end_turn"}
    assert second.result("session/close", {"sessionId": sid}) == {}
    assert second.prompt(sid, "/say gone")["error"]["code"] == -32002
    assert second.result("session/load", params) == {}
    assert second.text(sid).endswith("kept\nmore\n")


def test_session_list_reports_stored_sessions(
    session: tuple[RawClient, str], tmp_path: Path
) -> None:
    client, sid = session
    sessions = client.result("session/list", {})["sessions"]
    assert [(s["sessionId"], s["cwd"]) for s in sessions] == [(sid, str(tmp_path))]
    assert client.result("session/list", {"cwd": "/elsewhere"}) == {"sessions": []}


def test_the_state_dir_comes_from_the_environment_or_defaults_to_dot_demo_agent(
    agents: Callable[..., RawClient], tmp_path: Path
) -> None:
    from_env = agents(env={"MH_DEMO_STATE_DIR": str(tmp_path / "env-state")}, state=None)
    from_env.initialize()
    sid = from_env.new_session(tmp_path)
    assert (tmp_path / "env-state" / "sessions" / f"{sid}.meta.json").is_file()
    workdir = tmp_path / "work"
    workdir.mkdir()
    default = agents(cwd=workdir, state=None, env={"MH_DEMO_STATE_DIR": ""})
    default.initialize()
    sid = default.new_session(tmp_path)
    meta = json.loads((workdir / ".demo-agent" / "sessions" / f"{sid}.meta.json").read_text())
    assert (meta["sessionId"], meta["cwd"], meta["mcpServers"]) == (sid, str(tmp_path), [])
    assert (workdir / ".demo-agent" / "sessions" / f"{sid}.jsonl").read_bytes() == b""


# ---------------------------------------------------------------------------------------------
# client requests: fs, permissions, terminals
# ---------------------------------------------------------------------------------------------


def test_write_and_read_go_through_the_client_and_report_its_errors(
    session: tuple[RawClient, str], tmp_path: Path
) -> None:
    client, sid = session
    files: dict[str, str] = {}

    def write(params: dict[str, Any]) -> dict[str, Any]:
        if params["path"].endswith("locked"):
            raise ClientError(-32000, "read-only file")
        files[params["path"]] = params["content"]
        return {}

    client.handlers["fs/write_text_file"] = write
    client.handlers["fs/read_text_file"] = lambda params: {"content": files[params["path"]]}
    client.prompt(sid, "/write a.txt line1\\nline2\n/read a.txt\n/write /x/locked y")
    path = str(tmp_path / "a.txt")
    assert files == {path: "line1\nline2"}
    assert client.agent_requests("fs/write_text_file")[0]["params"] == {
        "sessionId": sid,
        "path": path,
        "content": "line1\nline2",
    }
    assert client.text(sid) == f"wrote {path}\nline1\nline2\nwrite failed: read-only file\n"


def test_fs_commands_respect_missing_client_capabilities(
    agents: Callable[..., RawClient], tmp_path: Path
) -> None:
    client = agents()
    client.initialize(caps={})
    sid = client.new_session(tmp_path)
    client.prompt(sid, "/write a x\n/read a\n/run true")
    assert client.agent_requests() == []
    assert client.text(sid) == (
        "write failed: the client lacks fs.writeTextFile\n"
        "read failed: the client lacks fs.readTextFile\n"
        "run failed: the client lacks the terminal capability\n"
    )


def test_edit_asks_permission_then_writes_and_remembers_always(
    session: tuple[RawClient, str], tmp_path: Path
) -> None:
    client, sid = session
    writes: list[dict[str, Any]] = []

    def write(params: dict[str, Any]) -> dict[str, Any]:
        writes.append(params)
        return {}

    client.handlers["fs/write_text_file"] = write
    client.handlers["session/request_permission"] = scripted("allow-once", "allow-always")
    client.prompt(sid, "/edit a.txt one\n/edit b.txt two\n/edit c.txt three")
    asks = client.agent_requests("session/request_permission")
    assert len(asks) == 2  # the third edit used the remembered allow_always
    path = str(tmp_path / "a.txt")
    assert asks[0]["params"] == {
        "sessionId": sid,
        "toolCall": {
            "toolCallId": "call-1",
            "title": f"Edit {path}",
            "kind": "edit",
            "status": "pending",
            "content": [{"type": "diff", "path": path, "newText": "one"}],
            "locations": [{"path": path}],
        },
        "options": [
            {"optionId": "allow-once", "name": "Allow", "kind": "allow_once"},
            {"optionId": "allow-always", "name": "Always allow", "kind": "allow_always"},
            {"optionId": "reject-once", "name": "Reject", "kind": "reject_once"},
            {"optionId": "reject-always", "name": "Always reject", "kind": "reject_always"},
        ],
    }
    assert [w["content"] for w in writes] == ["one", "two", "three"]
    updates = client.updates(sid)
    first_call = next(u for u in updates if u["sessionUpdate"] == "tool_call")
    assert first_call == {
        "sessionUpdate": "tool_call",
        "toolCallId": "call-1",
        "title": f"Edit {path}",
        "kind": "edit",
        "status": "pending",
        "content": [{"type": "diff", "path": path, "newText": "one"}],
        "locations": [{"path": path}],
        "rawInput": {"path": path, "content": "one"},
    }
    done = [
        (u["toolCallId"], u["status"]) for u in updates if u["sessionUpdate"] == "tool_call_update"
    ]
    assert done == [("call-1", "completed"), ("call-2", "completed"), ("call-3", "completed")]
    assert client.text(sid).count("edited ") == 3


def test_a_rejected_edit_fails_its_tool_call_and_a_cancelled_one_ends_the_turn(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    client.handlers["session/request_permission"] = scripted("reject-once", "cancelled")
    assert client.prompt(sid, "/edit a.txt x")["result"] == {"stopReason": "end_turn"}
    assert client.text(sid) == "permission denied\n"
    assert client.prompt(sid, "/edit a.txt x\n/say never")["result"] == {"stopReason": "cancelled"}
    updates = client.updates(sid)
    statuses = [u["status"] for u in updates if u["sessionUpdate"] == "tool_call_update"]
    assert statuses == ["failed", "failed"]
    assert client.agent_requests("fs/write_text_file") == []
    assert "never" not in client.text(sid)


def test_a_cancel_while_permission_is_pending_ends_the_turn(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    client.handlers["session/request_permission"] = lambda params: DEFER
    request_id = client.start_prompt(sid, "/ask fetch Get the page")
    client.wait_for(lambda: bool(client.agent_requests("session/request_permission")))
    client.cancel(sid)
    assert client.response(request_id)["result"] == {"stopReason": "cancelled"}
    ask = client.agent_requests("session/request_permission")[0]
    client.reply(ask["id"], {"outcome": {"outcome": "cancelled"}})
    updates = client.updates(sid)
    assert [(u["sessionUpdate"], u.get("status")) for u in updates[1:]] == [
        ("tool_call", "pending"),
        ("tool_call_update", "failed"),
    ]


def test_ask_reports_the_chosen_kind_and_remembers_reject_always(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    client.handlers["session/request_permission"] = scripted("allow-once", "reject-always")
    client.prompt(
        sid, "/ask execute Run make\n/ask delete Remove x\n/ask delete Remove y\n/ask bogus t"
    )
    asks = client.agent_requests("session/request_permission")
    assert [a["params"]["toolCall"]["kind"] for a in asks] == ["execute", "delete"]
    assert asks[0]["params"]["toolCall"]["title"] == "Run make"
    assert client.text(sid) == (
        "permission: allow_once\npermission: reject_always\n"
        "permission: reject_always (remembered)\n"
        "bad arguments for /ask: unknown tool kind 'bogus'\n"
    )


def test_run_uses_a_client_terminal_and_reports_output_and_exit_status(
    session: tuple[RawClient, str], tmp_path: Path
) -> None:
    client, sid = session
    client.handlers.update(
        {
            "session/request_permission": scripted("allow-once"),
            "terminal/create": lambda params: {"terminalId": "term-1"},
            "terminal/wait_for_exit": lambda params: {"exitCode": 2, "signal": None},
            "terminal/output": lambda params: {"output": "hello", "truncated": True},
            "terminal/release": lambda params: {},
        }
    )
    assert client.prompt(sid, "/run sh -c 'echo hello; exit 2'")["result"]["stopReason"] == (
        "end_turn"
    )
    requests = client.agent_requests()
    assert [r["method"] for r in requests] == [
        "session/request_permission",
        "terminal/create",
        "terminal/wait_for_exit",
        "terminal/output",
        "terminal/release",
    ]
    assert requests[1]["params"] == {
        "sessionId": sid,
        "command": "sh",
        "args": ["-c", "echo hello; exit 2"],
        "cwd": str(tmp_path),
        "outputByteLimit": 65536,
    }
    assert requests[2]["params"] == {"sessionId": sid, "terminalId": "term-1"}
    calls = [u for u in client.updates(sid) if u["sessionUpdate"].startswith("tool_call")]
    assert calls[0]["kind"] == "execute"
    assert calls[1]["content"] == [{"type": "terminal", "terminalId": "term-1"}]
    assert calls[-1]["status"] == "completed"
    assert client.text(sid) == "hello\n(output truncated)\nexit status: 2\n"


def test_a_cancel_during_run_kills_and_releases_the_terminal(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    client.handlers.update(
        {
            "session/request_permission": scripted("allow-once"),
            "terminal/create": lambda params: {"terminalId": "term-9"},
            "terminal/wait_for_exit": lambda params: DEFER,
            "terminal/kill": lambda params: {},
            "terminal/release": lambda params: {},
        }
    )
    request_id = client.start_prompt(sid, "/run sleep 100")
    client.wait_for(lambda: bool(client.agent_requests("terminal/wait_for_exit")))
    client.cancel(sid)
    assert client.response(request_id)["result"] == {"stopReason": "cancelled"}
    assert [r["method"] for r in client.agent_requests()][-2:] == [
        "terminal/kill",
        "terminal/release",
    ]
    assert client.updates(sid)[-1]["status"] == "failed"


def test_spawn_grandchild_starts_a_sleep_in_the_agents_process_group(
    session: tuple[RawClient, str],
) -> None:
    client, sid = session
    client.prompt(sid, "/spawn-grandchild")
    pid = int(client.text(sid).removeprefix("grandchild pid ").strip())
    assert os.getpgid(pid) == os.getpgid(client.proc.pid)
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"3600"]


# ---------------------------------------------------------------------------------------------
# MCP over streamable HTTP
# ---------------------------------------------------------------------------------------------


class McpServerThread:
    """Two real MCPServers (SSE and JSON responses) behind one uvicorn in a thread."""

    def __init__(self) -> None:
        import uvicorn
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from starlette.applications import Starlette
        from starlette.routing import Mount

        self.seen: list[tuple[str, dict[str, str]]] = []
        servers = []
        routes = []
        for mount, json_response in (("/sse", False), ("/json", True)):
            srv = MCPServer(f"test{mount}")

            @srv.tool()
            def task_spawn(prompt: str) -> str:
                return f"spawned: {prompt}"

            @srv.tool()
            def task_complete(result: str) -> str:
                return f"completed: {result}"

            @srv.tool()
            def explode() -> str:
                raise ToolError("boom")

            app = srv.streamable_http_app(streamable_http_path="/", json_response=json_response)
            servers.append(srv)
            routes.append(Mount(mount, app=app))

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            async with servers[0].session_manager.run(), servers[1].session_manager.run():
                yield

        inner = Starlette(routes=routes, lifespan=lifespan)

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                self.seen.append((scope["path"], headers))
            await inner(scope, receive, send)

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)  # connections queue here until uvicorn has started
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(recording, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(WAIT)
        self._sock.close()


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpServerThread]:
    server = McpServerThread()
    yield server
    server.close()


def test_mcp_commands_call_tools_over_streamable_http(
    agents: Callable[..., RawClient], tmp_path: Path, mcp_server: McpServerThread
) -> None:
    client = agents()
    client.initialize()
    servers: list[dict[str, Any]] = [
        {
            "type": "http",
            "name": "meta-harness",
            "url": f"{mcp_server.url}/sse",
            "headers": [{"name": "X-Task-Token", "value": "tok-1"}],
        },
        {"type": "http", "name": "plain-json", "url": f"{mcp_server.url}/json/", "headers": []},
        {"name": "local", "command": "/bin/true", "args": [], "env": []},
    ]
    sid = client.new_session(tmp_path, servers)
    mcp_server.seen.clear()
    client.prompt(sid, "/spawn /say hi\\n/complete done\n/complete all good")
    client.prompt(
        sid,
        '/mcp plain-json task_complete {"result": "json mode"}\n'
        "/mcp meta-harness explode {}\n/mcp nowhere t {}\n/mcp local t {}",
    )
    assert client.text(sid) == (
        "tool result: spawned: /say hi\n/complete done\n"
        "tool result: completed: all good\n"
        "tool result: completed: json mode\n"
        "tool error: Error executing tool explode: boom\n"
        "tool error: no MCP server named 'nowhere' in this session\n"
        "tool error: MCP server 'local' is not an http server\n"
    )
    calls = [u for u in client.updates(sid) if u["sessionUpdate"] == "tool_call"]
    assert calls[0] == {
        "sessionUpdate": "tool_call",
        "toolCallId": "call-1",
        "title": "mcp meta-harness task_spawn",
        "kind": "other",
        "status": "in_progress",
        "rawInput": {
            "server": "meta-harness",
            "tool": "task_spawn",
            "arguments": {"prompt": "/say hi\n/complete done"},
        },
    }
    results = [u for u in client.updates(sid) if u["sessionUpdate"] == "tool_call_update"]
    assert [r["status"] for r in results] == ["completed"] * 3 + ["failed"] * 3
    assert results[0]["content"] == [
        {"type": "content", "content": {"type": "text", "text": "spawned: /say hi\n/complete done"}}
    ]
    sse = [h for path, h in mcp_server.seen if path.startswith("/sse")]
    assert all(h["x-task-token"] == "tok-1" for h in sse)
    assert all(h["accept"] == "application/json, text/event-stream" for h in sse)
    assert all("mcp-protocol-version" in h for h in sse)
    # One MCP session for three calls: only the first initialize (and its redirect) lacks an id.
    assert sum("mcp-session-id" not in h for h in sse) == 2
    assert len({h["mcp-session-id"] for h in sse if "mcp-session-id" in h}) == 1


# ---------------------------------------------------------------------------------------------
# The official SDK client
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_acp_sdk_client_can_drive_new_prompt_and_load(tmp_path: Path) -> None:
    import anyio
    from acp import PROTOCOL_VERSION, spawn_agent_process, text_block
    from acp.schema import (
        AllowedOutcome,
        ClientCapabilities,
        FileSystemCapabilities,
        RequestPermissionResponse,
        WriteTextFileResponse,
    )

    class Client:
        def __init__(self, expected: int) -> None:
            self.updates: list[Any] = []
            self.files: dict[str, str] = {}
            self.expected = expected
            self.enough = anyio.Event()

        async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
            self.updates.append(update)
            if len(self.updates) >= self.expected:
                self.enough.set()

        async def request_permission(
            self, options: list[Any], session_id: str, tool_call: Any, **kwargs: Any
        ) -> RequestPermissionResponse:
            chosen = next(o for o in options if o.kind == "allow_once")
            return RequestPermissionResponse(
                outcome=AllowedOutcome(outcome="selected", option_id=chosen.option_id)
            )

        async def write_text_file(
            self, content: str, path: str, session_id: str, **kwargs: Any
        ) -> WriteTextFileResponse:
            self.files[path] = content
            return WriteTextFileResponse()

    caps = ClientCapabilities(
        fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=False
    )
    state = str(tmp_path / "state")
    argv = ("-m", "meta_harness.demo_agent", "--state-dir", state)
    env = {"PYTHONPATH": str(REPO)}
    kwargs: dict[str, Any] = {
        "env": env,
        "cwd": str(tmp_path),
        "transport_kwargs": {"stderr": subprocess.DEVNULL},
    }

    first = Client(expected=1_000_000)
    with anyio.fail_after(WAIT):
        spawned = spawn_agent_process(cast(Any, first), sys.executable, *argv, **kwargs)
        async with spawned as (conn, _proc):
            init = await conn.initialize(
                protocol_version=PROTOCOL_VERSION, client_capabilities=caps
            )
            assert init.agent_capabilities is not None
            assert init.agent_capabilities.load_session is True
            sid = (await conn.new_session(cwd=str(tmp_path), mcp_servers=[])).session_id
            text = header("m-1") + "/say hi there\n/plan one; two\n/edit f.txt content"
            response = await conn.prompt(
                session_id=sid, prompt=[text_block(text)], **{"messageId": "m-1"}
            )
            assert response.stop_reason == "end_turn"
    kinds = [u.session_update for u in first.updates]
    assert kinds[0] == "user_message_chunk"
    assert {"agent_message_chunk", "plan", "tool_call", "tool_call_update"} <= set(kinds)
    assert first.files == {str(tmp_path / "f.txt"): "content"}
    received = stored(Path(state), sid, ".received.jsonl")
    assert received[0]["messageId"] == "m-1"

    second = Client(expected=len(first.updates))
    with anyio.fail_after(WAIT):
        spawned = spawn_agent_process(cast(Any, second), sys.executable, *argv, **kwargs)
        async with spawned as (conn, _proc):
            await conn.initialize(protocol_version=PROTOCOL_VERSION, client_capabilities=caps)
            await conn.load_session(cwd=str(tmp_path), session_id=sid, mcp_servers=[])
            await second.enough.wait()  # load_session() returns before its replay is handled
            assert [u.model_dump() for u in second.updates] == [
                u.model_dump() for u in first.updates
            ]
            assert second.updates[0].content.text.startswith("[meta-harness message id=m-1")
            response = await conn.prompt(session_id=sid, prompt=[text_block("again")])
            assert response.stop_reason == "end_turn"
