"""`send --wait`: a test thread plays the supervisor, appending the frames it would write.

The thread waits for the message drop the command publishes, then appends (as the
supervisor does) the WAL record, the outgoing `session/prompt` frame carrying the
message id in `_meta`, the agent's updates and the response. The command must stream
the text and return on the response with the prompt's JSON-RPC id in the same epoch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from meta_harness.base.layout import Workspace
from meta_harness.domain.drops import parse_message_drop
from meta_harness.domain.transcript import Direction, frame_line, note_line
from tests.cli.conftest import Cli, append, make_task
from tests.support.procs import wait_for

TASK = "t-wait"
Script = Callable[[str], list[bytes | dict[str, Any]]]  # message id -> transcript lines / WAL


def prompt(epoch: int, rpc_id: int, message_id: str) -> bytes:
    frame = {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "method": "session/prompt",
        "params": {
            "sessionId": "s-1",
            "prompt": [
                {"type": "text", "text": f"[meta-harness message id={message_id} from=cli]\nhi"}
            ],
            "_meta": {"messageId": message_id, "from": "cli"},
        },
    }
    return frame_line(Direction.OUT, epoch, orjson.dumps(frame))


def chunk(epoch: int, text: str, *, load: bool = False) -> bytes:
    update = {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}
    frame = {
        "jsonrpc": "2.0",
        "method": "session/update",
        "params": {"sessionId": "s-1", "update": update},
    }
    return frame_line(Direction.IN, epoch, orjson.dumps(frame), load=load)


def response(epoch: int, rpc_id: int, result: Any = None, error: Any = None) -> bytes:
    frame: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id}
    frame["error" if error is not None else "result"] = error if error is not None else result
    return frame_line(Direction.IN, epoch, orjson.dumps(frame))


def play(ws: Workspace, script: Script) -> threading.Thread:
    """In a thread: wait for the command's drop file, then write what the supervisor would."""
    paths = ws.task(TASK)

    def supervisor() -> None:
        drop_file = wait_for(
            lambda: next((p for p in paths.inbox.iterdir() if not p.name.startswith(".")), None),
            watch_dir=paths.inbox,
            what="the message drop",
        )
        assert drop_file is not None
        drop = parse_message_drop(drop_file.name, drop_file.read_bytes())
        drop_file.unlink()
        for line in script(drop.id):
            if isinstance(line, dict):
                append(paths.wal, [line])
            else:
                with open(paths.transcript, "ab") as f:
                    f.write(line)

    thread = threading.Thread(target=supervisor, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def task(ws: Workspace, supervisor_running: None) -> Iterator[Path]:
    paths = ws.task(TASK)
    make_task(ws, TASK)
    # an earlier turn: the follower starts at the end, so its response (id 1) is not ours
    paths.transcript.write_bytes(prompt(1, 1, "m-old") + response(1, 1, {"stopReason": "end_turn"}))
    yield paths.dir


def test_send_wait_streams_the_reply_and_returns_at_its_response(
    run: Cli, ws: Workspace, task: Path
) -> None:
    def script(mid: str) -> list[bytes | dict[str, Any]]:
        return [
            {"op": "msg", "id": mid, "from": "cli", "ts": 1.0, "content": []},
            prompt(1, 2, mid),
            chunk(1, "Hello "),
            response(1, 99, {}),  # another request's response: not the end
            chunk(1, "world\n"),
            response(1, 2, {"stopReason": "end_turn"}),
            chunk(1, "after the turn\n"),
        ]

    thread = play(ws, script)
    result = run("send", TASK, "hi", "--wait", "--timeout", "30")
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello world\n"


def test_a_message_re_sent_after_a_crash_is_followed_into_the_new_epoch(
    run: Cli, ws: Workspace, task: Path
) -> None:
    def script(mid: str) -> list[bytes | dict[str, Any]]:
        return [
            prompt(1, 2, mid),
            chunk(1, "partial "),
            note_line(1, "crash", reason="agent exited"),
            response(2, 2, {"sessionId": "s-1"}),  # epoch 2's own id 2 (e.g. session/load)
            chunk(2, "replayed\n", load=True),
            prompt(2, 3, mid),
            chunk(2, "again\n"),
            response(2, 3, {"stopReason": "end_turn"}),
        ]

    thread = play(ws, script)
    out = orjson.loads(run.ok("send", TASK, "hi", "--wait", "--timeout", "30", "--json").stdout)
    thread.join(5)
    assert (out["stop"], out["text"], out["error"]) == ("end_turn", "again\n", None)


def test_an_error_response_exits_non_zero_with_the_agents_message(
    run: Cli, ws: Workspace, task: Path
) -> None:
    thread = play(
        ws,
        lambda mid: [prompt(1, 2, mid), response(1, 2, error={"code": -32603, "message": "boom"})],
    )
    result = run("send", TASK, "hi", "--wait", "--timeout", "30")
    thread.join(5)
    assert result.exit_code == 1
    assert result.stderr == "error: the agent answered with an error: boom (code -32603)\n"


def test_a_turn_that_ends_cancelled_exits_non_zero(run: Cli, ws: Workspace, task: Path) -> None:
    thread = play(
        ws,
        lambda mid: [
            prompt(1, 2, mid),
            chunk(1, "so"),
            response(1, 2, {"stopReason": "cancelled"}),
        ],
    )
    result = run("send", TASK, "hi", "--wait", "--timeout", "30")
    thread.join(5)
    assert result.exit_code == 1
    assert result.stdout == "so\n"
    assert "stopReason cancelled" in result.stderr


def test_a_message_recovered_from_a_load_replay_ends_the_wait(
    run: Cli, ws: Workspace, task: Path
) -> None:
    def script(mid: str) -> list[bytes | dict[str, Any]]:
        return [prompt(1, 2, mid), {"op": "ack", "id": mid, "ts": 2.0, "stop": "recovered"}]

    thread = play(ws, script)
    result = run("send", TASK, "hi", "--wait", "--timeout", "30")
    thread.join(5)
    assert result.exit_code == 0
    assert "already received this message" in result.stderr


def test_a_message_dropped_because_the_task_ended_is_a_conflict(
    run: Cli, ws: Workspace, task: Path
) -> None:
    thread = play(
        ws, lambda mid: [{"op": "drop", "id": mid, "ts": 2.0, "reason": "task cancelled"}]
    )
    result = run("send", TASK, "hi", "--wait", "--timeout", "30")
    thread.join(5)
    assert result.exit_code == 4
    assert result.stderr.endswith("was not delivered: task cancelled\n")


def test_without_a_supervisor_send_wait_says_so_and_times_out(run: Cli, ws: Workspace) -> None:
    make_task(ws, TASK)
    result = run("send", TASK, "hi", "--wait", "--timeout", "0.2")
    assert result.exit_code == 124
    lines = result.stderr.splitlines()
    assert lines[0].startswith("note: no supervisor is running")
    assert lines[1].startswith("error: timed out: message m-") and lines[1].endswith(
        "was not accepted in time"
    )
    assert len(list(ws.task(TASK).inbox.iterdir())) == 1  # the message waits as a file


def test_an_ack_in_the_wal_ends_the_wait_when_the_transcript_shows_no_response(
    run: Cli, ws: Workspace, task: Path
) -> None:
    def script(mid: str) -> list[bytes | dict[str, Any]]:
        return [
            prompt(1, 2, mid),
            chunk(1, "partial"),
            {"op": "ack", "id": mid, "ts": 2.0, "stop": "error", "error": "agent went away"},
        ]

    thread = play(ws, script)
    result = run("send", TASK, "hi", "--wait", "--timeout", "30")
    thread.join(5)
    assert result.exit_code == 1
    assert result.stdout == "partial\n"
    assert result.stderr == "error: the agent answered with an error: agent went away\n"
