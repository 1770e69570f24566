"""Benchmark: a prompt round trip through meta-harness vs a direct ACP client, same run.

One-line echo prompts to the demo agent, each with the same header line and `_meta`, in
series interleaved prompt by prompt (order rotating) so that machine load hits them alike:
- direct: the ACP SDK client (`acp.spawn_agent_process`, stderr to DEVNULL).
- AgentSession + transcript: our session through the byte-exact transport that appends
  every frame to transcript.jsonl (no WAL): the cost of our transport and client.
- runner loop: what the runner does per queued message: WAL `sent` (write + fdatasync),
  the AgentSession prompt, WAL `ack` (write + fdatasync).
- supervisor (`--no-supervisor` skips it): a real supervisor subprocess, one drop at a
  time; the figure is WAL `sent` ts -> `ack` ts, i.e. the sent fdatasync + BUSY event +
  prompt round trip (the ack's own fdatasync comes after its ts and is not included).
Goal: ratio to direct <= 1.1 (medians). Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/prompt_overhead.py [--quick] [--prompts N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    REPO,
    describe,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    publish,
    running_supervisor,
    wal_times,
    warm_task,
)
from acp import PROTOCOL_VERSION, spawn_agent_process, text_block
from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

from meta_harness.agent.session import AgentSession
from meta_harness.agent.spec import LaunchSpec
from meta_harness.base.layout import TaskPaths, Workspace
from meta_harness.domain.drops import MessageDrop, header_line
from meta_harness.runtime.store import TaskInbox

GOAL_RATIO = 1.1
WARMUP = 20  # prompts per series before measuring (imports, caches, page faults)
TASK = "bench-overhead"
DIRECT = "direct ACP SDK client"
SUPERVISED = "supervisor, WAL sent -> ack"


class NullClient:
    """A direct client that takes updates and offers nothing else (the echo needs nothing)."""

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        return None


class Hooks:
    """The runtime side of AgentSession, as thin as the runner's for an echo turn."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def on_update(self, session_id: str, update: dict[str, Any]) -> None:
        if update.get("sessionUpdate") == "agent_message_chunk":
            content = update.get("content") or {}
            self.text.append(str(content.get("text", "")))

    async def on_permission(
        self, session_id: str, tool_call: dict[str, Any], options: list[dict[str, Any]]
    ) -> str | None:
        return None


def agent_env(state: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "PYTHONPATH": str(REPO),
        "MH_DEMO_STATE_DIR": str(state),
    }


def blocks_for(message_id: str, text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": f"{header_line(message_id, 'bench')}\n{text}"}]


Step = Callable[[int], Awaitable[float]]


async def measure(root: Path, prompts: int, with_supervisor: bool) -> None:
    direct_state, mh_dir = root / "direct", root / "mh" / TASK
    direct_state.mkdir(parents=True)
    mh_dir.mkdir(parents=True)
    caps = ClientCapabilities(
        fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True
    )
    info = Implementation(name="bench", version="0")
    results: dict[str, list[float]] = {}
    sup: tuple[Path, list[str]] | None = None
    async with spawn_agent_process(
        NullClient(),  # type: ignore[arg-type]
        PYTHON,
        "-m",
        "meta_harness.demo_agent",
        env=agent_env(direct_state),
        cwd=str(direct_state),
        transport_kwargs={"stderr": subprocess.DEVNULL},
    ) as (conn, _proc):
        await conn.initialize(
            protocol_version=PROTOCOL_VERSION, client_capabilities=caps, client_info=info
        )
        direct_sid = (await conn.new_session(cwd=str(direct_state), mcp_servers=[])).session_id

        paths = TaskPaths(mh_dir)
        spec = LaunchSpec(
            argv=[PYTHON, "-m", "meta_harness.demo_agent"],
            env=agent_env(mh_dir / "agent"),
            cwd=mh_dir,
            stderr_path=paths.stderr_log,
            transcript_path=paths.transcript,
            epoch=1,
        )
        session = await AgentSession.open(spec, Hooks())
        inbox = TaskInbox(paths)
        try:
            mh_sid = await session.new_session(mh_dir, [])

            async def direct(i: int) -> float:
                message_id = f"d-{i}"
                block = blocks_for(message_id, f"hello {i}")[0]["text"]
                t0 = time.perf_counter()
                await conn.prompt(
                    session_id=direct_sid,
                    prompt=[text_block(block)],
                    messageId=message_id,
                    **{"from": "bench"},
                )
                return (time.perf_counter() - t0) * 1000

            async def session_only(i: int) -> float:
                message_id = f"a-{i}"
                blocks = blocks_for(message_id, f"hello {i}")
                t0 = time.perf_counter()
                await session.prompt(mh_sid, blocks, {"messageId": message_id, "from": "bench"})
                return (time.perf_counter() - t0) * 1000

            async def runner_loop(i: int) -> float:
                message_id = f"m-{i}"
                text = f"hello {i}"
                content = [{"type": "text", "text": text}]
                inbox.accept([MessageDrop(id=message_id, sender="bench", content=content)])
                t0 = time.perf_counter()
                await inbox.mark_sent(message_id, 1, offload=False)
                stop = await session.prompt(
                    mh_sid, blocks_for(message_id, text), {"messageId": message_id, "from": "bench"}
                )
                inbox.ack(message_id, stop)
                return (time.perf_counter() - t0) * 1000

            steps: dict[str, Step] = {
                DIRECT: direct,
                "AgentSession + transcript": session_only,
                "runner loop (+ WAL sent, ack)": runner_loop,
            }
            for i in range(WARMUP):
                for step in steps.values():
                    await step(-1 - i)
            if with_supervisor:
                sup = await with_a_supervisor(root, prompts, steps, results)
            else:
                await interleave(prompts, steps, results)
        finally:
            inbox.close()
            await session.aclose()
    report(results, sup)


async def interleave(prompts: int, steps: dict[str, Step], results: dict[str, list[float]]) -> None:
    """Run each step once per prompt, rotating the order: what runs right after a
    supervisor turn shares the CPU and disk with its post-turn work (the phase write)."""
    names = list(steps)
    for name in names:
        results.setdefault(name, [])
    for i in range(prompts):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            results[name].append(await steps[name](i))


async def with_a_supervisor(
    root: Path, prompts: int, steps: dict[str, Step], results: dict[str, list[float]]
) -> tuple[Path, list[str]]:
    """Interleave the in-process steps with one supervisor message (drop, wait for its ack)."""
    ws = make_workspace(root / "sup")
    ids: list[str] = []
    with running_supervisor(ws, isolated_env(root), root / "supervisor.log") as sup:
        wal = warm_task(ws, sup, TASK, WARMUP)

        async def supervised(i: int) -> float:
            message_id = f"s-{i}"
            publish(
                ws.task(TASK).inbox,
                f"{message_id}.json",
                {"id": message_id, "from": "bench", "text": f"hello {i}"},
            )
            await asyncio.to_thread(wal.wait_for, "ack", message_id)
            ids.append(message_id)
            return 0.0  # its figure comes from the WAL afterwards

        await interleave(prompts, {**steps, SUPERVISED: supervised}, results)
    results.pop(SUPERVISED)
    return ws.root, ids


def report(results: dict[str, list[float]], sup: tuple[Path, list[str]] | None) -> None:
    rows = list(results.items())
    if sup is not None:
        root, ids = sup
        times = wal_times(Workspace(root), TASK)
        rows.append((SUPERVISED, [(times[("ack", m)] - times[("sent", m)]) * 1000 for m in ids]))
    print_rows("prompt round trip, one-line echo to the demo agent", rows)
    base = describe(results[DIRECT])
    print("ratios to direct (p50 / p95):")
    verdicts: list[str] = []
    for name, values in rows[1:]:
        d = describe(values)
        ratio = d["p50"] / base["p50"]
        verdicts.append(f"{name.strip()}: {'meets' if ratio <= GOAL_RATIO else 'MISSES'}")
        print(
            f"  {name:<32} {ratio:6.3f} / {d['p95'] / base['p95']:6.3f}"
            f"   ({d['p50'] - base['p50']:+.3f} ms at p50)"
        )
    print(f"goal: ratio <= {GOAL_RATIO} at p50 -> " + "; ".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 prompts per series")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per series (300)")
    parser.add_argument("--no-supervisor", action="store_true", help="skip the real supervisor")
    args = parser.parse_args()
    prompts = args.prompts or (100 if args.quick else 300)
    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        where = machine(Path(tmp))
        print(f"prompt overhead, {where}, {prompts} prompts per series, {WARMUP} warm-ups")
        asyncio.run(measure(Path(tmp), prompts, not args.no_supervisor))


if __name__ == "__main__":
    main()
