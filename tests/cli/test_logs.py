"""`logs`: the human view of a transcript, the raw lines byte for byte, and following live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import orjson

from meta_harness.base.layout import Workspace
from meta_harness.cli.logs import TranscriptPrinter
from meta_harness.domain.transcript import Direction, frame_line, note_line
from tests.cli.conftest import Cli, make_task


def chunk(text: str, *, load: bool = False) -> bytes:
    update = {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}
    frame = {
        "jsonrpc": "2.0",
        "method": "session/update",
        "params": {"sessionId": "s", "update": update},
    }
    return frame_line(Direction.IN, 1, orjson.dumps(frame), load=load)


TRANSCRIPT = [
    note_line(1, "spawn", pid=42),
    frame_line(Direction.OUT, 1, b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}'),
    chunk("echo: "),
    chunk("hello\n"),
    frame_line(Direction.IN, 1, b'{"jsonrpc":"2.0","id":2,"result":{"stopReason":"end_turn"}}'),
    frame_line(Direction.IN, 1, b"not json at all"),
]


def test_logs_renders_records_and_joins_streamed_text(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-log")
    ws.task("t-log").transcript.write_bytes(b"".join(TRANSCRIPT))
    lines = [line.split(" ", 1)[1] for line in run.ok("logs", "t-log").stdout.splitlines()]
    assert lines == [
        "-- spawn pid=42",
        ">> initialize",
        "agent: echo: hello",
        "<< turn ended: end_turn",
        "?? agent printed a non-JSON line: not json at all",
    ]


def test_logs_raw_prints_the_stored_lines_byte_for_byte(run: Cli, ws: Workspace) -> None:
    make_task(ws, "t-log")
    stored = b"".join(TRANSCRIPT)
    ws.task("t-log").transcript.write_bytes(stored + b'{"torn":')
    assert run.ok("logs", "t-log", "--raw").stdout_bytes == stored
    assert run.ok("logs", "t-log", "--json").stdout_bytes == stored


def test_a_printer_ends_an_open_line_of_agent_text_before_the_next_record() -> None:
    out: list[str] = []
    printer = TranscriptPrinter(lambda text="", nl=True: out.append(text + ("\n" if nl else "")))
    for line in (chunk("no newline"), note_line(1, "crash")):
        printer.feed(orjson.loads(line))
    lines = "".join(out).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" agent: no newline") and lines[1].endswith(" -- crash")


def test_logs_follow_prints_records_as_they_are_appended_until_interrupted(ws: Workspace) -> None:
    make_task(ws, "t-live")
    transcript = ws.task("t-live").transcript
    transcript.write_bytes(TRANSCRIPT[0])
    proc = subprocess.Popen(
        [sys.executable, "-m", "meta_harness", "-w", str(ws.root), "logs", "t-live", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.rstrip().endswith("-- spawn pid=42")
        seen: list[str] = []
        got = threading.Event()

        def read_next() -> None:
            assert proc.stdout is not None
            seen.append(proc.stdout.readline())
            got.set()

        reader = threading.Thread(target=read_next, daemon=True)
        reader.start()
        with open(transcript, "ab") as f:
            f.write(note_line(1, "crash", reason="gone"))
        assert got.wait(30), "the appended record was not printed"
        assert seen[0].rstrip().endswith("-- crash reason=gone")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
