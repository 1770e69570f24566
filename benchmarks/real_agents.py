"""Time the real ACP agents (Claude, Codex) offline against the mock LLM, with the ACP SDK client.

Per agent, one run each of: spawn→initialize, session/new, the first prompt, how long after its
answer the turn is in the agent's session file, SIGKILL then a fresh spawn→initialize and
session/load (after that one prompt), then the prompt round trip over N prompts (median, min,
max). Prints a table. Figures only; nothing is asserted.

    /work/venv/bin/python benchmarks/real_agents.py [--prompts 20] [--agent claude --agent codex]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _pytest.outcomes import Skipped
from acp import text_block

from tests.support.mock_llm import MockLLM, Rule, Text
from tests.support.real_agents import (
    LAUNCHERS,
    RecordingClient,
    ensure_agents_installed,
    start_agent,
    wait_session_saved,
)

STEP_TIMEOUT = 60.0  # one ACP step of a real agent; the slowest seen (claude load) takes ~5 s


@dataclass
class Figures:
    agent: str
    spawn_init: float = 0.0
    session_new: float = 0.0
    first_prompt: float = 0.0
    saved_after: float = 0.0
    respawn_init: float = 0.0
    session_load: float = 0.0
    replayed: int = 0
    prompts: list[float] = field(default_factory=list)
    llm_requests: int = 0


async def measure(agent: str, prompts: int, scratch: Path) -> Figures:
    figures = Figures(agent)
    with MockLLM(Rule(Text("pong"), prompt_contains="ping", name="pong")) as mock:
        launch = LAUNCHERS[agent](mock.url, scratch)
        client = RecordingClient(launch.cwd)
        stderr = scratch / "agent.stderr.log"

        start = time.perf_counter()
        async with start_agent(launch, client, stderr) as running:
            async with asyncio.timeout(STEP_TIMEOUT):
                await running.initialize()
            figures.spawn_init = time.perf_counter() - start

            start = time.perf_counter()
            async with asyncio.timeout(STEP_TIMEOUT):
                new = await running.conn.new_session(cwd=str(launch.cwd), mcp_servers=[])
            figures.session_new = time.perf_counter() - start
            session_id = new.session_id

            start = time.perf_counter()
            async with asyncio.timeout(STEP_TIMEOUT):
                await running.conn.prompt(session_id=session_id, prompt=[text_block("ping 0")])
            figures.first_prompt = time.perf_counter() - start
            start = time.perf_counter()
            await wait_session_saved(launch, session_id, "ping 0", "pong")
            figures.saved_after = time.perf_counter() - start
            await running.kill()

        loaded = RecordingClient(launch.cwd)
        start = time.perf_counter()
        async with start_agent(launch, loaded, stderr) as running:
            async with asyncio.timeout(STEP_TIMEOUT):
                await running.initialize()
            figures.respawn_init = time.perf_counter() - start

            start = time.perf_counter()
            async with asyncio.timeout(STEP_TIMEOUT):
                await running.conn.load_session(
                    cwd=str(launch.cwd), session_id=session_id, mcp_servers=[]
                )
            figures.session_load = time.perf_counter() - start
            figures.replayed = len(loaded.updates)

            for i in range(1, prompts + 1):
                start = time.perf_counter()
                async with asyncio.timeout(STEP_TIMEOUT):
                    await running.conn.prompt(
                        session_id=session_id, prompt=[text_block(f"ping {i}")]
                    )
                figures.prompts.append(time.perf_counter() - start)
        # Each prompt must have reached the model once (a stale instant answer would not).
        figures.llm_requests = sum(1 for r in mock.requests if r.answered_by == "pong")
    return figures


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def print_table(rows: list[Figures]) -> None:
    header = (
        "agent",
        "spawn→init",
        "session/new",
        "1st prompt",
        "on disk after",
        "respawn→init",
        "session/load",
        "prompt median",
        "prompt min–max",
        "n",
        "LLM requests",
    )
    lines = [header]
    for f in rows:
        lines.append(
            (
                f.agent,
                ms(f.spawn_init),
                ms(f.session_new),
                ms(f.first_prompt),
                ms(f.saved_after),
                ms(f.respawn_init),
                f"{ms(f.session_load)} ({f.replayed} upd.)",
                ms(statistics.median(f.prompts)),
                f"{ms(min(f.prompts))}–{ms(max(f.prompts))}",
                str(len(f.prompts)),
                str(f.llm_requests),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--agent", action="append", choices=sorted(LAUNCHERS))
    args = parser.parse_args()
    try:
        ensure_agents_installed()
    except Skipped as skipped:
        print(skipped.msg, file=sys.stderr)
        return 1
    rows = []
    for agent in args.agent or sorted(LAUNCHERS):
        with tempfile.TemporaryDirectory(prefix=f"bench-{agent}-") as scratch:
            rows.append(await measure(agent, args.prompts, Path(scratch)))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
