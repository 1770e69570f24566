"""Time the real ACP agents (Claude, Codex) through the supervisor and directly, offline.

Per agent, in one run: a supervisor with the built-in MCP server drives the agent from
files (tests/support/supervised.py), and the ACP SDK client drives the same agent with
the same mock LLM and the same two MCP servers. Compared: spawn→initialize (the first
spawn after a boot also imports the ACP SDK, lazily; later ones do not), session/new,
session/resume (a restart of the supervisor), session/load (a restart after a SIGKILL
with a message in flight), and the prompt round trip (supervisor: WAL `sent`→`ack`, and
drop file→`ack`; direct: the `session/prompt` call). Supervisor steps are read from the
transcript's frame timestamps. Figures only; nothing is asserted.

    /work/venv/bin/python benchmarks/real_agents_supervised.py [--prompts 10] [--agent claude]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _pytest.outcomes import Skipped
from acp import text_block
from acp.schema import AcpMcpServer, HttpHeader, HttpMcpServer, McpServerStdio, SseMcpServer

from meta_harness.base.layout import Workspace
from meta_harness.base.tokens import task_token, workspace_secret
from tests.support.mock_llm import MockLLM, Rule, Text
from tests.support.procs import (
    CRASH_ENV,
    events,
    marked_processes,
    transcript,
    wait_gone,
    wal,
)
from tests.support.real_agents import (
    LAUNCHERS,
    RecordingClient,
    ensure_agents_installed,
    start_agent,
    wait_session_saved,
)
from tests.support.supervised import (
    BUILTIN_SERVER,
    TESTSRV,
    TESTSRV_HEADER,
    TESTSRV_TOKEN,
    Rig,
    open_rig,
)

McpServer = HttpMcpServer | SseMcpServer | AcpMcpServer | McpServerStdio
STEP_TIMEOUT = 60.0  # one ACP step of a real agent; the slowest seen (claude load) takes ~5 s
TASK = "bench"
WARM_TASKS = ("warm-1", "warm-2", "warm-3")  # spawned once the boot's first spawn is done


@dataclass
class Side:
    """One way of driving the agent: seconds per step."""

    spawn_init: list[float] = field(default_factory=list)  # supervisor: first after a boot
    spawn_init_warm: list[float] = field(default_factory=list)  # supervisor: later spawns
    session_new: list[float] = field(default_factory=list)
    session_resume: list[float] = field(default_factory=list)
    session_load: list[float] = field(default_factory=list)
    first_prompt: list[float] = field(default_factory=list)
    prompts: list[float] = field(default_factory=list)  # supervisor: WAL sent -> ack
    prompt_frames: list[float] = field(default_factory=list)  # supervisor: frame out -> in
    drop_to_ack: list[float] = field(default_factory=list)  # supervisor only


# ---------------------------------------------------------------------------------------------
# Through the supervisor


def _round_trips(records: list[dict[str, Any]], method: str) -> list[float]:
    """Seconds from each outgoing `method` request to its response, per connection epoch."""
    sent: dict[tuple[int, Any], float] = {}
    out: list[float] = []
    for record in records:
        frame = record.get("frame")
        if not isinstance(frame, dict):
            continue
        key = (int(record.get("epoch", 0)), frame.get("id"))
        if record.get("dir") == "out" and frame.get("method") == method:
            sent[key] = float(record["ts"])
        elif record.get("dir") == "in" and "method" not in frame and key in sent:
            out.append(float(record["ts"]) - sent.pop(key))
    return out


def _spawn_to_init(
    task: str, records: list[dict[str, Any]], events: list[dict[str, Any]]
) -> list[float]:
    """Seconds from each session start (phase starting/restoring, just before the spawn) to
    the initialize response; both come once per agent process, in order."""
    starts = [
        float(e["ts"])
        for e in events
        if e.get("type") == "session.phase"
        and e.get("task") == task
        and e.get("to") in ("starting", "restoring")
    ]
    inits = [
        float(r["ts"])
        for r in records
        if r.get("dir") == "in"
        and isinstance(r.get("frame"), dict)
        and r["frame"].get("id") == 0
        and "method" not in r["frame"]
    ]
    return [init - start for start, init in zip(starts, inits, strict=False)]


def _send_and_ack(rig: Rig, message_id: str, text: str) -> float:
    """Drop a message; return seconds from the drop to its ack record."""
    dropped = time.time()
    rig.send(TASK, message_id, text)
    return float(rig.wait_ack(TASK, message_id)["ts"]) - dropped


def measure(agent: str, prompts: int, scratch: Path) -> tuple[Side, Side]:
    """(through the supervisor, direct): the direct client runs while the rig's servers do."""
    side = Side()
    with open_rig(agent, scratch) as rig:
        rig.mock.script(Rule(Text("pong"), prompt_contains="ping"))
        first = rig.submit(TASK, "ping 0")
        rig.wait_ack(TASK, first)
        for warm in WARM_TASKS:
            rig.wait_ack(warm, rig.submit(warm, f"ping {warm}"))
            side.spawn_init_warm += _spawn_to_init(warm, transcript(rig.ws, warm), events(rig.ws))
        for i in range(1, prompts + 1):
            side.drop_to_ack.append(_send_and_ack(rig, f"p{i}", f"ping {i}"))
        rig.wait_saved(rig.session_id(TASK), f"ping {prompts}")

        # a restart with nothing in doubt: session/resume (or load if not advertised)
        rig.supervisor.terminate()
        rig.supervisor.wait()
        rig.restart()
        _send_and_ack(rig, "resume", "ping after a restart")
        rig.wait_saved(rig.session_id(TASK), "ping after a restart")

        # a SIGKILL with a message stamped in flight: the next boot must session/load
        rig.supervisor.terminate()
        rig.supervisor.wait()
        rig.restart({CRASH_ENV: "deliver.after_sent"})
        rig.send(TASK, "load", "ping after a crash")
        rig.supervisor.wait()
        wait_gone(marked_processes(rig.ws))
        rig.restart()
        rig.wait_ack(TASK, "load")

        records = transcript(rig.ws, TASK)
        side.spawn_init = _spawn_to_init(TASK, records, events(rig.ws))
        side.session_new = _round_trips(records, "session/new")
        side.session_resume = _round_trips(records, "session/resume")
        side.session_load = _round_trips(records, "session/load")
        prompt_rtts = _round_trips(records, "session/prompt")
        side.first_prompt = prompt_rtts[:1]
        side.prompt_frames = prompt_rtts[1 : prompts + 1]
        stamps: dict[str, dict[str, float]] = {}
        for record in wal(rig.ws, TASK):
            stamps.setdefault(str(record["id"]), {})[str(record["op"])] = float(record["ts"])
        side.prompts = [
            stamps[f"p{i}"]["ack"] - stamps[f"p{i}"]["sent"] for i in range(1, prompts + 1)
        ]
        builtin_url = json.loads((rig.ws / "tasks" / TASK / "mcp.json").read_text())[0]["url"]
        token = task_token(workspace_secret(Workspace.at(rig.ws)), TASK)
        servers: list[McpServer] = [
            HttpMcpServer(
                type="http",
                name=BUILTIN_SERVER,
                url=builtin_url,
                headers=[HttpHeader(name="X-Task-Token", value=token)],
            ),
            HttpMcpServer(
                type="http",
                name=TESTSRV,
                url=rig.testsrv.url,
                headers=[HttpHeader(name=TESTSRV_HEADER, value=TESTSRV_TOKEN)],
            ),
        ]
        plain = asyncio.run(direct(agent, prompts, rig.mock, servers, scratch / "direct"))
    return side, plain


# ---------------------------------------------------------------------------------------------
# Directly with the ACP SDK client


async def direct(
    agent: str, prompts: int, mock: MockLLM, servers: list[McpServer], scratch: Path
) -> Side:
    side = Side()
    launch = LAUNCHERS[agent](mock.url, scratch)
    cwd = str(launch.cwd)
    stderr = scratch / "agent.stderr.log"

    async def timed(step: list[float], call: Any) -> Any:
        start = time.perf_counter()
        async with asyncio.timeout(STEP_TIMEOUT):
            result = await call
        step.append(time.perf_counter() - start)
        return result

    start = time.perf_counter()
    async with start_agent(launch, RecordingClient(launch.cwd), stderr) as running:
        init = await running.initialize()
        side.spawn_init.append(time.perf_counter() - start)
        new = await timed(side.session_new, running.conn.new_session(cwd=cwd, mcp_servers=servers))
        sid = new.session_id
        await timed(side.first_prompt, running.conn.prompt(sid, [text_block("ping 0")]))
        for i in range(1, prompts + 1):
            await timed(side.prompts, running.conn.prompt(sid, [text_block(f"ping {i}")]))
        await wait_session_saved(launch, sid, f"ping {prompts}")
    caps = init.agent_capabilities
    resumable = bool(caps and caps.session_capabilities and caps.session_capabilities.resume)
    if resumable:
        start = time.perf_counter()
        async with start_agent(launch, RecordingClient(launch.cwd), stderr) as running:
            await running.initialize()
            side.spawn_init.append(time.perf_counter() - start)
            await timed(
                side.session_resume,
                running.conn.resume_session(cwd=cwd, session_id=sid, mcp_servers=servers),
            )
    start = time.perf_counter()
    async with start_agent(launch, RecordingClient(launch.cwd), stderr) as running:
        await running.initialize()
        side.spawn_init.append(time.perf_counter() - start)
        await timed(
            side.session_load,
            running.conn.load_session(cwd=cwd, session_id=sid, mcp_servers=servers),
        )
    return side


# ---------------------------------------------------------------------------------------------
# Report


def _median_ms(values: Sequence[float]) -> float | None:
    return statistics.median(values) * 1000 if values else None


def _cell(value: float | None) -> str:
    return f"{value:9.0f}" if value is not None else f"{'-':>9}"


def report(agent: str, supervised: Side, plain: Side) -> None:
    rows = [
        ("spawn→init (1st after boot)", supervised.spawn_init, plain.spawn_init),
        ("spawn→init (later)", supervised.spawn_init_warm, plain.spawn_init),
        ("session/new", supervised.session_new, plain.session_new),
        ("session/resume", supervised.session_resume, plain.session_resume),
        ("session/load", supervised.session_load, plain.session_load),
        ("first prompt", supervised.first_prompt, plain.first_prompt),
        ("prompt (sup: frame out→in)", supervised.prompt_frames, plain.prompts),
        ("prompt (sup: WAL sent→ack)", supervised.prompts, plain.prompts),
        ("prompt (sup: drop→ack)", supervised.drop_to_ack, plain.prompts),
    ]
    print(f"\n{agent}: medians in ms (n supervisor/direct; supervisor min–max)")
    print(f"  {'step':<28}{'superv.':>9}{'direct':>9}{'ratio':>8}   n      range")
    for name, sup, dir_ in rows:
        a, b = _median_ms(sup), _median_ms(dir_)
        ratio = f"{a / b:8.2f}" if a is not None and b else f"{'-':>8}"
        spread = f"{min(sup) * 1000:.0f}–{max(sup) * 1000:.0f}" if len(sup) > 1 else ""
        print(f"  {name:<28}{_cell(a)}{_cell(b)}{ratio}   {len(sup)}/{len(dir_):<5}{spread}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--agent", action="append", choices=sorted(LAUNCHERS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("mcp", "uvicorn", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        ensure_agents_installed()
    except Skipped as e:
        print(e, file=sys.stderr)
        return 0
    for agent in args.agent or sorted(LAUNCHERS):
        with tempfile.TemporaryDirectory(prefix=f"mh-bench-{agent}-") as tmp:
            report(agent, *measure(agent, args.prompts, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
