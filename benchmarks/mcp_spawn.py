"""Benchmark: tasks spawning tasks through the built-in MCP server, over real HTTP.

Starts `meta-harness up` (which serves the built-in MCP server on loopback) on
a throw-away workspace (demo agent), warms a parent task, then RUNS times sends it
`/spawn hello N` and waits until the child's result is back in the parent's WAL.
Per spawn: the parent's `tool_call` update for `task_spawn` (supervisor receive time)
→ the child's task record (ingest) → the child agent's spawn → the child's first
prompt arriving at its agent (the demo agent's receipt log). Also: the stdio proxy's
start + `initialize` against the same endpoint (the fallback for agents without http).
Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/mcp_spawn.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    REPO,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    publish,
    received_records,
    task_record,
)

from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace
from meta_harness.base.tokens import task_token, workspace_secret

PARENT = "parent"
WAIT = 30.0  # one spawn round trip; anything near this is a hang, not a figure
POLL = 0.002  # seconds between file polls while waiting
STOP_GRACE = 10.0  # SIGTERM -> the supervisor swaps every session out and exits
PROXY_RUNS = 10


def wait_until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(POLL)


def acked(ws: Workspace, task_id: str, message_id: str) -> bool:
    return any(
        r.get("op") == "ack" and r.get("id") == message_id
        for r in read_records(ws.task(task_id).wal)
    )


def children(ws: Workspace) -> list[str]:
    return [t for t in ws.task_ids() if t != PARENT]


def spawn_calls(ws: Workspace) -> list[float]:
    """Transcript `ts` of each `tool_call` update announcing a task_spawn, in order."""
    out = []
    for record in read_records(ws.task(PARENT).transcript):
        frame = record.get("frame")
        if record.get("dir") != "in" or not isinstance(frame, dict):
            continue
        update = (frame.get("params") or {}).get("update") or {}
        if update.get("sessionUpdate") == "tool_call" and "task_spawn" in str(update.get("title")):
            out.append(float(record["ts"]))
    return out


def spawn_note(ws: Workspace, task_id: str) -> float:
    for record in read_records(ws.task(task_id).transcript):
        if record.get("dir") == "note" and record.get("note") == "spawn":
            return float(record["ts"])
    raise LookupError(task_id)


def proxy_handshakes(ws: Workspace, url: str, runs: int) -> list[float]:
    """Spawn the stdio proxy and complete `initialize` through it, `runs` times (ms)."""
    env = isolated_env(ws.root.parent)
    env["META_HARNESS_TASK_TOKEN"] = task_token(workspace_secret(ws), PARENT)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-m", "meta_harness.mcpserver.stdio", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(init).encode() + b"\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        times.append((time.perf_counter() - t0) * 1000)
        assert "result" in answer, answer
        proc.stdin.close()
        proc.wait(STOP_GRACE)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mh-bench-mcp-") as tmp:
        root = Path(tmp)
        ws = make_workspace(root)
        log = open(root / "supervisor.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [PYTHON, "-m", "meta_harness", "up", str(ws.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=isolated_env(root),
            cwd=REPO,
            start_new_session=True,
        )
        try:
            info = wait_until(
                "supervisor.json",
                lambda: (
                    ws.supervisor_file.exists()
                    and json.loads(ws.supervisor_file.read_bytes()).get("endpoints")
                ),
            )
            url = info["mcp"]
            publish(ws.inbox, f"{PARENT}.json", {"id": PARENT, "prompt": "/say ready"})
            wait_until("parent warm", lambda: acked(ws, PARENT, f"prompt-{PARENT}"))
            for i in range(args.runs):
                before = set(children(ws))
                publish(
                    ws.task(PARENT).inbox,
                    f"s{i}.json",
                    {"id": f"s{i}", "text": f"/spawn hello {i}"},
                )
                child = wait_until(f"child {i}", lambda b=before: sorted(set(children(ws)) - b))[0]
                wait_until(f"result {i}", lambda c=child: acked(ws, PARENT, f"result:{c}"))
            calls = spawn_calls(ws)
            rows: dict[str, list[float]] = {
                "call -> child task.json": [],
                "call -> child agent spawned": [],
                "call -> child's first prompt at its agent": [],
            }
            for call, child in zip(calls, sorted(children(ws)), strict=True):
                created = float(task_record(ws, child)["created_at"])
                first = float(received_records(ws, child)[0]["ts"])
                rows["call -> child task.json"].append((created - call) * 1000)
                rows["call -> child agent spawned"].append((spawn_note(ws, child) - call) * 1000)
                rows["call -> child's first prompt at its agent"].append((first - call) * 1000)
            proxy = proxy_handshakes(ws, url, PROXY_RUNS)
        finally:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_GRACE)
            log.close()
    print(f"mcp_spawn: {machine()}")
    print_rows(f"task_spawn over HTTP, demo agents ({args.runs} spawns)", list(rows.items()))
    print_rows("stdio proxy: spawn + initialize through it", [("proxy handshake", proxy)])


if __name__ == "__main__":
    main()
