"""The `/` steering commands of a prompt: one `cmd_*` function each, and their table `COMMANDS`.

A command drives a `prompt.PromptRun` (text, updates, tool calls, requests to the client); bad
arguments raise `BadArguments`, which the run answers `bad arguments for /x: why`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from .mcp_client import McpError, find_http_server, tool_text
from .protocol import INTERNAL_ERROR, TOOL_KINDS, Json, RpcError, StopReason, ToolStatus
from .turn import TurnCancelled, TurnEnded, run_cancellable
from .wire import ConnectionGone

if TYPE_CHECKING:
    from .prompt import PromptRun

logger = logging.getLogger(__name__)

STREAM_CHUNK_CHARS = 1024  # /stream emits chunks of exactly this many ASCII characters
TERMINAL_OUTPUT_LIMIT = 65536  # outputByteLimit asked of the client for /run
CLEANUP_TIMEOUT = 5.0  # terminal/kill and release after a cancel: a client that never answers
CRASH_EXIT_CODE = 3  # /crash: distinct from 0 (EOF), 1 (a Python error) and signals

ESCAPE_RE = re.compile(r"\\(n|\\)")


def unescape(text: str) -> str:
    return ESCAPE_RE.sub(lambda m: "\n" if m.group(1) == "n" else "\\", text)


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
        f"Edit {path}",
        "edit",
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
        created = run.request(
            "terminal/create",
            {
                "command": command,
                "args": args,
                "cwd": run.session.cwd,
                "outputByteLimit": TERMINAL_OUTPUT_LIMIT,
            },
        )
    except RpcError as exc:
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say(f"run failed: {exc.message}")
        return
    terminal_id = created.get("terminalId") if isinstance(created, dict) else None
    if not isinstance(terminal_id, str):
        run.update_tool_call(call_id, ToolStatus.FAILED)
        run.say("run failed: terminal/create returned no terminalId")
        return
    run.update_tool_call(
        call_id, ToolStatus.IN_PROGRESS, content=[{"type": "terminal", "terminalId": terminal_id}]
    )
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
    run.update_tool_call(
        call_id, ToolStatus.COMPLETED, rawOutput={"exitCode": code, "signal": signal_name}
    )
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
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
        f"mcp {server} {tool}",
        "other",
        ToolStatus.IN_PROGRESS,
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
    run.update_tool_call(
        call_id, ToolStatus.FAILED if failed else ToolStatus.COMPLETED, content=content
    )
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
