"""Benchmark: how fast the demo agent starts and answers.

Measures spawn → `initialize` answered (the figure that must stay ≤ 100 ms), plus a
`session/new` and a one-line prompt round trip, over fresh `python -m meta_harness.demo_agent`
processes speaking raw JSON lines. Prints median and p95; asserts nothing.
Run: `/work/venv/bin/python benchmarks/demo_agent_startup.py [--runs 30] [--prompts 200]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<40} median {statistics.median(values):7.2f} ms   "
        f"p95 {percentile(values, 0.95):7.2f} ms   n={len(values)}"
    )


class Agent:
    def __init__(self, state: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meta_harness.demo_agent", "--state-dir", state,
             "--log-level", "WARNING"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=state, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.next_id = 0

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request and read lines until its response (notifications are skipped)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request_id = self.next_id
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            reply = json.loads(self.proc.stdout.readline())
            if reply.get("id") == request_id and "method" not in reply:
                return reply  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="fresh spawns")
    parser.add_argument("--prompts", type=int, default=200, help="prompt round trips")
    args = parser.parse_args()
    init = {"protocolVersion": 1, "clientCapabilities": {}}
    startup: list[float] = []
    new_session: list[float] = []
    with tempfile.TemporaryDirectory() as state:
        for _ in range(args.runs):
            t0 = time.perf_counter()
            agent = Agent(state)
            agent.call("initialize", init)
            t1 = time.perf_counter()
            agent.call("session/new", {"cwd": state, "mcpServers": []})
            t2 = time.perf_counter()
            agent.close()
            startup.append((t1 - t0) * 1000)
            new_session.append((t2 - t1) * 1000)

        agent = Agent(state)
        agent.call("initialize", init)
        sid = agent.call("session/new", {"cwd": state, "mcpServers": []})["result"]["sessionId"]
        prompt: list[float] = []
        for i in range(args.prompts):
            t0 = time.perf_counter()
            reply = agent.call("session/prompt", {
                "sessionId": sid, "prompt": [{"type": "text", "text": f"/say hello {i}"}],
            })
            prompt.append((time.perf_counter() - t0) * 1000)
            assert reply["result"] == {"stopReason": "end_turn"}, reply
        agent.close()

    print(f"demo agent, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    report("spawn -> initialize answered", startup)
    report("session/new (2 files + atomic meta)", new_session)
    report("prompt '/say hello N' (3 fsynced updates)", prompt)


if __name__ == "__main__":
    main()
