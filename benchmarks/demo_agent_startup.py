"""Benchmark: how fast the demo agent starts and answers.

Measures spawn → `initialize` answered (the figure that must stay ≤ 100 ms) next to the floor
(a bare interpreter echoing one line), with fresh `.pyc` files ("warm") and without ("cold": the
package's modules are compiled on every spawn, as under PYTHONDONTWRITEBYTECODE after an edit).
Also `session/new` and a prompt round trip. Each case runs `python -m meta_harness.demo_agent`
from a temp copy of the package, so the repo is never written. Prints median and p95.
Run: `/work/venv/bin/python benchmarks/demo_agent_startup.py [--runs 30] [--prompts 200]`.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "demo_agent"  # the meta_harness.demo_agent package, copied with meta_harness/__init__.py
INIT = {"protocolVersion": 1, "clientCapabilities": {}}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<44} median {statistics.median(values):7.2f} ms   "
        f"p95 {percentile(values, 0.95):7.2f} ms   n={len(values)}"
    )


def copy_package(root: Path, compiled: bool) -> Path:
    """A private copy of meta_harness/__init__.py and meta_harness/demo_agent/, with or without
    .pyc files."""
    package = root / "meta_harness"
    package.mkdir(parents=True)
    shutil.copy2(REPO / "meta_harness" / "__init__.py", package / "__init__.py")
    shutil.copytree(
        REPO / "meta_harness" / PACKAGE,
        package / PACKAGE,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    if compiled:
        compileall.compile_dir(str(package), quiet=1)
    return root


class Agent:
    def __init__(self, path: Path, state: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meta_harness.demo_agent",
                "--state-dir",
                state,
                "--log-level",
                "WARNING",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=state,
            env=env,
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


def floor(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.readline())"],
            input=b"{}\n",
            stdout=subprocess.PIPE,
            check=True,
        )
        times.append((time.perf_counter() - t0) * 1000)
    return times


def startup(path: Path, state: str, runs: int) -> tuple[list[float], list[float]]:
    init: list[float] = []
    new: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        agent = Agent(path, state)
        agent.call("initialize", INIT)
        t1 = time.perf_counter()
        agent.call("session/new", {"cwd": state, "mcpServers": []})
        t2 = time.perf_counter()
        agent.close()
        init.append((t1 - t0) * 1000)
        new.append((t2 - t1) * 1000)
    return init, new


def prompts(path: Path, state: str, count: int) -> list[float]:
    agent = Agent(path, state)
    agent.call("initialize", INIT)
    sid = agent.call("session/new", {"cwd": state, "mcpServers": []})["result"]["sessionId"]
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        reply = agent.call(
            "session/prompt",
            {
                "sessionId": sid,
                "prompt": [{"type": "text", "text": f"/say hello {i}"}],
            },
        )
        times.append((time.perf_counter() - t0) * 1000)
        assert reply["result"] == {"stopReason": "end_turn"}, reply
    agent.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="fresh spawns per case")
    parser.add_argument("--prompts", type=int, default=200, help="prompt round trips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = str(Path(tmp, "state"))
        Path(state).mkdir()
        warm = copy_package(Path(tmp, "warm"), compiled=True)
        cold = copy_package(Path(tmp, "cold"), compiled=False)
        bare = floor(args.runs)
        warm_init, warm_new = startup(warm, state, args.runs)
        cold_init, _ = startup(cold, state, args.runs)
        prompt = prompts(warm, state, args.prompts)

    print(f"demo agent, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    report("floor: bare python echoing one line", bare)
    report("spawn -> initialize answered (warm .pyc)", warm_init)
    report("spawn -> initialize answered (cold, no .pyc)", cold_init)
    report("session/new (2 files + atomic meta)", warm_new)
    report("prompt '/say hello N' (3 fsynced updates)", prompt)


if __name__ == "__main__":
    main()
