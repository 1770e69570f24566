"""Benchmark: tasks spawning tasks through `meta-harness up` (built-in MCP server, demo agents).

(a) Spawn latency, one spawn at a time: a warm parent is sent `/spawn hello N`, so its
agent calls `task_spawn` over MCP; per child, from the call (the transcript `ts` of the
parent's `tool_call` frame, which the demo agent sends just before its HTTP request) to
the child's task.json (ingest), its agent spawned (transcript note), its `session/prompt`
written (transcript `out` frame) and its first prompt at its agent (the demo agent's
receipt log). Beside it, in the same run, the demo agent's bare spawn → `initialize`
(and → `session/new`) over pipes, so "call → prompt at agent" minus the agent's own start
is the supervisor's share (goal ≤ 20 ms).
(b) Fan-out: one parent is sent one prompt of 100 `/spawn` lines (real tool path; the
demo agent runs them in order) with `max_live = 8`: time until all 100 `result:` messages
are in the parent's WAL (goal < 10 s), and until the parent has answered them all.
Prints figures; asserts nothing; ends every process it started.
Run: `/work/venv/bin/python benchmarks/spawn_fanout.py [--spawns N] [--fanout M] [--quick]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    WORKSPACE_MARKER,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    publish,
    task_record,
)

from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace

BOOT_TIMEOUT = 30.0  # `up`: imports, the MCP server, the first agent and its ACP SDK import
SPAWN_TIMEOUT = 30.0  # one spawn round trip; anything near this is a hang, not a figure
FANOUT_TIMEOUT = 60.0  # 100 children through 8 slots; the goal is 10 s
STOP_TIMEOUT = 15.0  # SIGTERM -> every runner swaps its session out and `up` exits
KILL_TIMEOUT = 5.0  # after SIGKILL the kernel reaps promptly
POLL = 0.002  # seconds between file polls while waiting (only delays noticing)
AGENT_IO_TIMEOUT = 10.0  # one JSON-RPC answer from a bare demo agent
MAX_LIVE = 8
SPAWN_TITLE = "mcp meta-harness task_spawn"  # the demo agent's tool_call title


# -- the supervisor ------------------------------------------------------------------------------


class Up:
    """`python -m meta_harness up WS` in its own session; `stop()` ends all it started."""

    def __init__(self, ws: Workspace, env: dict[str, str], log: Path) -> None:
        self.ws = ws
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "meta_harness", "up", "--log-level", "warning", str(ws.root)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=str(ws.root.parent),
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"`meta-harness up` exited with {self.proc.returncode}:\n{tail}")
            with contextlib.suppress(OSError, ValueError):
                return bool(json.loads(self.ws.supervisor_file.read_bytes()).get("endpoints"))
            return False

        wait_until("the supervisor to boot", ready, BOOT_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, bounded wait, SIGKILL; then every process of this workspace, by pid."""
        ours = self._descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  (`up` did not stop within {STOP_TIMEOUT:g} s of SIGTERM; SIGKILL)")
            self.proc.kill()
            self.proc.wait(KILL_TIMEOUT)
        leftovers = [p for p in ours + self._marked() if _running(p)]
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=KILL_TIMEOUT)

    def _descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        return []

    def _marked(self) -> list[psutil.Process]:
        mine = str(self.ws.root)
        found = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and proc.environ().get(WORKSPACE_MARKER) == mine:
                    found.append(proc)
        return found


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def wait_until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)


# -- reading the files -----------------------------------------------------------------------------


def wal_ids(ws: Workspace, task_id: str, op: str) -> dict[str, float]:
    """message id -> `ts` of its first `op` record in the task's WAL."""
    out: dict[str, float] = {}
    for record in read_records(ws.task(task_id).wal):
        if record.get("op") == op:
            out.setdefault(str(record.get("id")), float(record["ts"]))
    return out


def spawn_calls(ws: Workspace, parent: str) -> dict[str, tuple[float, float]]:
    """child id -> transcript `ts` of the parent's `tool_call` frame that spawned it, and
    of the `tool_call_update` that reported the tool's answer.

    The tool call id links the `tool_call` (its start) to the `tool_call_update` whose
    content holds the tool's answer, which names the child.
    """
    started: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for record in read_records(ws.task(parent).transcript):
        frame = record.get("frame")
        if record.get("dir") != "in" or not isinstance(frame, dict) or record.get("load"):
            continue
        update = (frame.get("params") or {}).get("update") or {}
        call = update.get("toolCallId")
        if update.get("sessionUpdate") == "tool_call" and update.get("title") == SPAWN_TITLE:
            started[str(call)] = float(record["ts"])
        elif update.get("sessionUpdate") == "tool_call_update" and call in started:
            text = json.dumps(update.get("content"))
            child = _child_in(text)
            if child is not None:
                out[child] = (started[str(call)], float(record["ts"]))
    return out


def _child_in(text: str) -> str | None:
    marker = '\\"task_id\\": \\"'
    start = text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = text.find('\\"', start)
    return text[start:end] if end > start else None


def first_note(ws: Workspace, task_id: str, name: str) -> float:
    for record in read_records(ws.task(task_id).transcript):
        if record.get("dir") == "note" and record.get("note") == name:
            return float(record["ts"])
    raise LookupError(f"{task_id}: no {name} note")


def handshake(ws: Workspace, task_id: str) -> tuple[float, float]:
    """Transcript `ts` of the child's `initialize` answer and of its first `session/prompt`."""
    init_id: object = None
    answered: float | None = None
    for record in read_records(ws.task(task_id).transcript):
        frame = record.get("frame")
        if not isinstance(frame, dict):
            continue
        if record.get("dir") == "out" and frame.get("method") == "initialize":
            init_id = frame.get("id")
        elif record.get("dir") == "in" and answered is None and frame.get("id") == init_id:
            answered = float(record["ts"])
        elif record.get("dir") == "out" and frame.get("method") == "session/prompt":
            if answered is None:
                break
            return answered, float(record["ts"])
    raise LookupError(f"{task_id}: no initialize answer or session/prompt")


def first_received(ws: Workspace, task_id: str) -> float:
    sessions = ws.task(task_id).dir / "agent" / "sessions"
    stamps = [
        float(r["ts"]) for path in sessions.glob("*.received.jsonl") for r in read_records(path)
    ]
    return min(stamps)


def children_of(ws: Workspace, parent: str) -> list[str]:
    out = []
    for task_id in ws.task_ids():
        with contextlib.suppress(OSError, ValueError):
            if task_record(ws, task_id).get("parent") == parent:
                out.append(task_id)
    return sorted(out)


# -- (a) spawn latency -----------------------------------------------------------------------------


def send(ws: Workspace, task_id: str, message_id: str, text: str) -> None:
    publish(ws.task(task_id).inbox, f"{message_id}.json", {"id": message_id, "text": text})


def warm_parent(ws: Workspace, task_id: str, prompt: str = "/say ready") -> None:
    publish(ws.inbox, f"{task_id}.json", {"id": task_id, "prompt": prompt})
    wait_until(
        f"{task_id}'s first turn",
        lambda: f"prompt-{task_id}" in wal_ids(ws, task_id, "ack"),
        BOOT_TIMEOUT,
    )


def spawn_latency(ws: Workspace, runs: int) -> dict[str, list[float]]:
    parent = "parent"
    warm_parent(ws, parent)
    for i in range(runs):
        message_id = f"s{i}"
        send(ws, parent, message_id, f"/spawn hello {i}")
        kids = wait_until(
            f"child {i}",
            lambda n=i + 1: (found := children_of(ws, parent)) and len(found) == n and found,
            SPAWN_TIMEOUT,
        )
        wait_until(  # its result answered: the next spawn starts on a quiet supervisor
            f"result {i}",
            lambda k=kids[-1]: f"result:{k}" in wal_ids(ws, parent, "ack"),
            SPAWN_TIMEOUT,
        )
    calls = spawn_calls(ws, parent)
    rows: dict[str, list[float]] = {
        "call -> task_spawn answered (tool_call_update)": [],
        "call -> child task.json (ingest)": [],
        "call -> child agent spawned": [],
        "call -> child session/prompt written": [],
        "call -> child's first prompt at its agent": [],
        "  the child agent's own start (spawned -> initialize answered)": [],
        "  supervisor's share (the line above subtracted; goal <= 20)": [],
        "    of which: call -> agent spawned (MCP, ingest, runner, fork)": [],
        "    of which: initialize answered -> prompt at agent": [],
    }
    for child in children_of(ws, parent):
        call, answered = calls[child]
        spawned = first_note(ws, child, "spawn")
        initialized, prompt_written = handshake(ws, child)
        received = first_received(ws, child)
        own_start = (initialized - spawned) * 1000
        total = (received - call) * 1000
        rows["call -> task_spawn answered (tool_call_update)"].append((answered - call) * 1000)
        rows["call -> child task.json (ingest)"].append(
            (float(task_record(ws, child)["created_at"]) - call) * 1000
        )
        rows["call -> child agent spawned"].append((spawned - call) * 1000)
        rows["call -> child session/prompt written"].append((prompt_written - call) * 1000)
        rows["call -> child's first prompt at its agent"].append(total)
        rows["  the child agent's own start (spawned -> initialize answered)"].append(own_start)
        rows["  supervisor's share (the line above subtracted; goal <= 20)"].append(
            total - own_start
        )
        rows["    of which: call -> agent spawned (MCP, ingest, runner, fork)"].append(
            (spawned - call) * 1000
        )
        rows["    of which: initialize answered -> prompt at agent"].append(
            (received - initialized) * 1000
        )
    return rows


def bare_agent_start(root: Path, runs: int) -> dict[str, list[float]]:
    """The demo agent alone over pipes: spawn -> `initialize` answered -> `session/new`."""
    rows: dict[str, list[float]] = {"spawn -> initialize answered": [], "spawn -> session/new": []}
    env = isolated_env(root)
    for i in range(runs):
        state = root / f"bare-{i}"
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-m", "meta_harness.demo_agent", "--state-dir", str(state)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(root),
            start_new_session=True,
        )
        try:
            _rpc(proc, 1, "initialize", {"protocolVersion": 1, "clientCapabilities": {}})
            rows["spawn -> initialize answered"].append((time.perf_counter() - t0) * 1000)
            _rpc(proc, 2, "session/new", {"cwd": str(root), "mcpServers": []})
            rows["spawn -> session/new"].append((time.perf_counter() - t0) * 1000)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(AGENT_IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(KILL_TIMEOUT)
    return rows


def _rpc(proc: subprocess.Popen[bytes], call_id: int, method: str, params: Any) -> Any:
    assert proc.stdin is not None and proc.stdout is not None
    line = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}
    proc.stdin.write(json.dumps(line).encode() + b"\n")
    proc.stdin.flush()
    deadline = time.monotonic() + AGENT_IO_TIMEOUT
    while time.monotonic() < deadline:
        raw = proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"the demo agent closed stdout before answering {method}")
        answer = json.loads(raw)
        if answer.get("id") == call_id:
            return answer["result"]
    raise TimeoutError(method)


# -- (b) fan-out -----------------------------------------------------------------------------------


def fanout(ws: Workspace, count: int) -> dict[str, float]:
    parent = "fan"
    warm_parent(ws, parent)
    prompt = "\n".join(f"/spawn fan {i}" for i in range(count))
    t0 = time.time()
    send(ws, parent, "fan-out", prompt)

    def results(op: str) -> dict[str, float]:
        return {k: v for k, v in wal_ids(ws, parent, op).items() if k.startswith("result:")}

    wait_until("every result in the WAL", lambda: len(results("msg")) >= count, FANOUT_TIMEOUT)
    wait_until("every result answered", lambda: len(results("ack")) >= count, FANOUT_TIMEOUT)
    kids = children_of(ws, parent)
    calls = spawn_calls(ws, parent)
    sent = wal_ids(ws, parent, "sent")["fan-out"]
    acked = wal_ids(ws, parent, "ack")["fan-out"]
    done = [float(task_record(ws, k)["updated_at"]) for k in kids]
    bad = [k for k in kids if task_record(ws, k)["phase"] != "done"]
    live_peak = _peak_live(ws)
    durations = [(end - start) * 1000 for start, end in calls.values()]
    return {
        "children": float(len(kids)),
        "children not done": float(len(bad)),
        "drop -> prompt sent to the parent": (sent - t0) * 1000,
        "task_spawn call -> answer, p50": statistics.median(durations),
        "task_spawn call -> answer, max": max(durations),
        "sent -> last task_spawn answered": (max(end for _, end in calls.values()) - sent) * 1000,
        "sent -> parent's spawning turn ended": (acked - sent) * 1000,
        "sent -> last child done": (max(done) - sent) * 1000,
        "sent -> all results in the parent's WAL (goal)": (max(results("msg").values()) - sent)
        * 1000,
        "drop -> all results in the parent's WAL": (max(results("msg").values()) - t0) * 1000,
        "sent -> parent answered every result": (max(results("ack").values()) - sent) * 1000,
        "peak live agents (session events)": float(live_peak),
    }


def _peak_live(ws: Workspace) -> int:
    """Most sessions holding a slot at once, from the session.phase events."""
    holding = {"starting", "restoring", "idle", "busy"}
    live: set[str] = set()
    peak = 0
    for event in read_records(ws.events_file):
        if event.get("type") != "session.phase":
            continue
        task = str(event.get("task"))
        if event.get("to") in holding:
            live.add(task)
        else:
            live.discard(task)
        peak = max(peak, len(live))
    return peak


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=30, help="(a) sequential spawns")
    parser.add_argument("--fanout", type=int, default=100, help="(b) children of one prompt")
    parser.add_argument("--bare", type=int, default=20, help="bare demo agent starts")
    parser.add_argument("--quick", action="store_true", help="10 spawns, 30 children")
    args = parser.parse_args()
    if args.quick:
        args.spawns, args.fanout, args.bare = 10, 30, 10
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mh-bench-fanout-") as tmp:
        root = Path(tmp)
        ws = make_workspace(
            root,
            f"[supervisor]\nmax_live = {MAX_LIVE}\n\n[profiles.demo.limits]\n"
            f"max_children = {max(args.fanout, args.spawns, 1)}\n",
        )
        header = machine(root)
        up = Up(ws, isolated_env(root), root / "supervisor.log")
        try:
            up.wait_ready()
            latency = spawn_latency(ws, args.spawns)
            fan = fanout(ws, args.fanout)
        finally:
            up.stop()
        bare = bare_agent_start(root, args.bare)
    print(f"spawn_fanout: {header}")
    print_rows(
        f"(a) task_spawn -> child, `meta-harness up`, demo agents ({args.spawns} spawns, one "
        "at a time)",
        list(latency.items()),
    )
    print_rows(f"    the demo agent alone, same run ({args.bare} starts)", list(bare.items()))
    total = statistics.median(latency["call -> child's first prompt at its agent"])
    for name, values in bare.items():
        print(
            f"  p50 call -> prompt at agent minus p50 bare {name}: "
            f"{total - statistics.median(values):.2f} ms"
        )
    print(f"(b) one prompt of {args.fanout} `/spawn` lines, max_live = {MAX_LIVE}")
    for name, value in fan.items():
        unit = "ms" if "->" in name else ""  # the rest are counts
        print(f"  {name:<52}{value:>10.1f} {unit}")
    print(f"(wall time of the benchmark: {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
