"""Benchmark: many SSE clients on one task while its agent streams (`/stream N`).

Starts a real supervisor subprocess with the HTTP service on a free 127.0.0.1 port (demo
agent, throw-away workspace), warms one task, then per round opens CLIENTS streams on
`/api/tasks/<id>/stream?events=none&tail=0`, sends `/stream CHUNKS` over the API and
records, for every agent_message_chunk each client receives, the latency from the
transcript record's `ts` (when the supervisor received the agent's frame) to the moment
the client parsed it. The clients share one asyncio process. Also a 1-client baseline.
Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/sse_fanout.py [--clients 20] [--chunks 200] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
from _common import (
    describe,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    running_supervisor,
    warm_task,
)

TASK = "bench-sse"
ROUND_TIMEOUT = 60.0  # one streamed turn to every client; far above anything healthy

WEB_SUPERVISOR_CODE = """
import logging, sys
from meta_harness.base.config import load_config
from meta_harness.base.layout import Workspace
from meta_harness.runtime.supervisor import run
from meta_harness.web.service import http_service
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
ws = Workspace.at(sys.argv[1])
service, endpoints = http_service("127.0.0.1", 0)
sys.exit(run(ws, load_config(ws), services=[service], endpoints=endpoints))
"""


async def client(
    url: str, chunks: int, connected: asyncio.Event, ready: list[int], out: list[float]
) -> None:
    """One SSE client: collect latencies of stream chunks until the last one arrives.

    Parses raw bytes (split on the blank line that ends each event) so that the clients,
    which share this process, cost as little as possible next to the server.
    """
    last = f"stream {chunks}/{chunks}".encode()
    buffer = b""
    async with (
        httpx2.AsyncClient(timeout=ROUND_TIMEOUT) as http,
        http.stream("GET", url) as response,
    ):
        ready[0] += 1
        connected.set()
        async for data in response.aiter_raw():
            received = time.time()
            buffer += data
            *events, buffer = buffer.split(b"\r\n\r\n")
            for raw in events:
                if not raw.startswith(b"event: transcript") or b'"text":"stream ' not in raw:
                    continue
                payload = raw[raw.index(b"data: ") + 6 :]
                record = orjson.loads(payload)["record"]
                out.append((received - float(record["ts"])) * 1000)
                if last in raw:
                    return


async def one_round(base: str, clients: int, chunks: int) -> list[float]:
    url = f"{base}/api/tasks/{TASK}/stream?events=none&tail=0"
    latencies: list[float] = []
    ready = [0]
    connected = asyncio.Event()
    async with asyncio.timeout(ROUND_TIMEOUT):
        tasks = [
            asyncio.ensure_future(client(url, chunks, connected, ready, latencies))
            for _ in range(clients)
        ]
        while ready[0] < clients:  # every client's response headers arrived
            connected.clear()
            await connected.wait()
        async with httpx2.AsyncClient() as http:
            sent = await http.post(
                f"{base}/api/tasks/{TASK}/messages", json={"text": f"/stream {chunks}"}
            )
            sent.raise_for_status()
        await asyncio.gather(*tasks)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _common.SUPERVISOR_CODE = WEB_SUPERVISOR_CODE  # the same supervisor, plus the HTTP service
    with tempfile.TemporaryDirectory(prefix="mh-bench-sse-") as tmp:
        root = Path(tmp)
        ws = make_workspace(root)
        print(f"SSE fan-out: {machine()}")
        with running_supervisor(ws, isolated_env(root), root / "supervisor.log") as sup:
            warm_task(ws, sup, TASK, warmups=2)
            info = orjson.loads(ws.supervisor_file.read_bytes())
            base = str(info["endpoints"]["http"])
            supervisor = psutil.Process(sup.proc.pid)
            rows: list[tuple[str, list[float]]] = []
            cpu: list[tuple[str, list[float]]] = []
            for clients in (1, args.clients):
                values: list[float] = []
                spent: list[float] = []
                for _ in range(args.rounds):
                    before = supervisor.cpu_times()
                    values.extend(asyncio.run(one_round(base, clients, args.chunks)))
                    after = supervisor.cpu_times()
                    spent.append((after.user + after.system - before.user - before.system) * 1000)
                name = f"{clients} client(s), /stream {args.chunks}"
                rows.append((name, values))
                cpu.append((name, spent))
            print_rows("agent frame ts -> client receives it (latency per chunk per client)", rows)
            print_rows("supervisor process CPU per round (turn + streaming to the clients)", cpu)
            for name, values in rows:
                d = describe(values)
                n = len(values)
                print(f"  {name}: p50 {d['p50']:.2f} ms, p99 {d['p99']:.2f} ms over {n} chunks")


if __name__ == "__main__":
    main()
