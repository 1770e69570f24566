"""Benchmark: long-lived tasks far beyond the agent slots (session swap at scale).

One real supervisor subprocess, `max_live` slots (8), N demo-agent tasks (1,000; 200
with `--quick`). Phases, all on one throw-away workspace:
  1. create: N top-level drops; each task's first turn starts a session (session/new).
  2. messages: N x `--per-task` messages to uniformly random tasks, published as a Poisson
     stream at `--rate` msgs/s (0 = all at once); ends when every one is acked. Figures:
     throughput (messages / (last ack - first publish)), swap-ins per second, swap-in
     latency p50/p99 (the `seconds` of `swap` events, `direction: in`: slot granted →
     spawn → initialize → session/resume|load → ready), each task's progress.
  3. bare: the same demo agent spawned by this process with a raw JSON-lines client:
     spawn + `initialize` + `session/load` of a copy of a real task's session. Measured
     beside phase 2 (same machine load as its 8 concurrent swap-ins), then alternating
     with single messages to random swapped-out tasks once phase 2 is over (one swap-in
     at a time), then in rounds of `max_live` at once: `max_live` bare restores started
     together (one thread each) alternating with `max_live` messages published together
     to random tasks (each swap-in evicts an idle session). Ratio = swap-in p50 / bare
     p50 for each (goal <= 1.1); the rounds compare like with like (8 restores at once on
     both sides), "beside phase 2" puts one bare restore beside 8 swap-ins plus the
     delivery of the messages.
  4. idle: supervisor RSS (its own process only) and CPU over `IDLE_WINDOW` seconds with
     N tasks on disk and `max_live` sessions live (goals < 150 MB, < 0.5 %).
  5. crash: SIGKILL the supervisor, wait for the reaper to end its agents, start a new
     one. "Reconciled" = the new process has published `stats.json` (its pid) counting
     all N tasks: written by its stats task, which first runs after boot has loaded
     every task.json, folded every WAL, expired old permission requests and scanned
     every inbox. Timed from the new process's spawn (Python imports included; goal < 2 s).
Prints figures; asserts nothing. Cleans up every process (by pid) and the workspace.
Run: `/work/venv/bin/python benchmarks/swap_scale.py [--tasks N | --quick] [--rate R]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import psutil
from _common import (
    PYTHON,
    WORKSPACE_MARKER,
    Follower,
    SupervisorProcess,
    isolated_env,
    machine,
    make_workspace,
    percentile,
    publish,
)

from meta_harness.base.config import ENV_PASSTHROUGH
from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace

GOAL_RATIO = 1.1
GOAL_RSS_MB = 150.0
GOAL_IDLE_CPU = 0.5  # percent of one CPU
GOAL_RECONCILE = 2.0  # seconds

IDLE_WINDOW = 10.0  # seconds of idle CPU measured
IDLE_SETTLE = 2.0  # after the last turn: let the stats publisher and page cache settle
POLL = 0.05  # stats.json / events.jsonl polling while a phase runs (seconds)
RECONCILE_POLL = 0.002  # finer polling while timing the rerun
PHASE_TIMEOUT_PER_TASK = 1.0  # seconds per task a phase may take before we give up
BARE_EVERY = 0.5  # seconds between bare measurements while phase 2 runs
QUIET_SAMPLES = 30  # one-at-a-time swap-ins (each beside one bare restore)
BURST_ROUNDS = 10  # rounds of `max_live` swap-ins at once vs `max_live` bare restores at once
BARE_TIMEOUT = 30.0  # one bare spawn + initialize + load
ACK_TIMEOUT = 30.0  # one message to a swapped-out task on a quiet machine
ACK_POLL = 0.002  # cheap polling: the benchmark must not compete with the supervisor for CPU
REAP_TIMEOUT = 15.0  # after SIGKILL: the reaper ends the agent groups

TOML = """
[supervisor]
max_live = {max_live}
idle_swap_after = 600.0
default_profile = "demo"
"""


# -- reading the workspace ---------------------------------------------------------------------


def stats(ws: Workspace) -> dict[str, Any]:
    try:
        value: dict[str, Any] = orjson.loads((ws.state_dir / "stats.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return value


def wait_turns(ws: Workspace, sup: SupervisorProcess, turns: int, timeout: float) -> float:
    """Until stats.json counts `turns` turns; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while True:
        if stats(ws).get("turns", 0) >= turns:
            return time.monotonic()
        if sup.proc.poll() is not None:
            raise SystemExit(f"the supervisor exited with {sup.proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {stats(ws).get('turns')} of {turns} turns")
        time.sleep(POLL)


def wait_ack(ws: Workspace, sup: SupervisorProcess, task_id: str, message_id: str) -> None:
    wal = Follower(ws.task(task_id).wal)
    deadline = time.monotonic() + ACK_TIMEOUT
    while not any(r.get("op") == "ack" and r.get("id") == message_id for r in wal.poll()):
        if sup.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{task_id}: no ack for {message_id}")
        time.sleep(ACK_POLL)


def last_ack_wall_time(ws: Workspace, task_ids: list[str]) -> tuple[float, dict[str, int]]:
    """(latest ack `ts` over the tasks, acked message count per task)."""
    latest = 0.0
    acked: dict[str, int] = {}
    for task_id in task_ids:
        count = 0
        for record in read_records(ws.task(task_id).wal):
            if record.get("op") == "ack":
                count += 1
                latest = max(latest, float(record["ts"]))
        acked[task_id] = count
    return latest, acked


def message_latencies(ws: Workspace, task_ids: list[str], ids: set[str]) -> list[float]:
    """Accept → ack seconds of the phase-2 messages (WAL timestamps)."""
    out: list[float] = []
    for task_id in task_ids:
        accepted: dict[str, float] = {}
        for record in read_records(ws.task(task_id).wal):
            mid = record.get("id")
            if mid not in ids:
                continue
            if record.get("op") == "msg":
                accepted[mid] = float(record["ts"])
            elif record.get("op") == "ack" and mid in accepted:
                out.append(float(record["ts"]) - accepted.pop(mid))
    return out


# -- the bare path: spawn + initialize + session/load, no supervisor ---------------------------


class BareAgent:
    """A demo agent driven by a raw JSON-lines client, as the supervisor would drive it."""

    def __init__(self, state_dir: Path, cwd: Path) -> None:
        self.state_dir = state_dir
        self.cwd = cwd
        self.env = {k: os.environ[k] for k in ENV_PASSTHROUGH if k in os.environ}
        self.env["MH_DEMO_STATE_DIR"] = str(state_dir)

    def restore(self, session_id: str, method: str = "session/load") -> float:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-m", "meta_harness.demo_agent"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        try:
            self._call(
                proc,
                1,
                "initialize",
                {
                    "protocolVersion": 1,
                    "clientCapabilities": {
                        "fs": {"readTextFile": True, "writeTextFile": True},
                        "terminal": True,
                    },
                    "clientInfo": {"name": "swap-scale-bench", "version": "0"},
                },
            )
            self._call(
                proc, 2, method, {"sessionId": session_id, "cwd": str(self.cwd), "mcpServers": []}
            )
            elapsed = time.perf_counter() - start
        finally:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(BARE_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        return elapsed

    @staticmethod
    def _call(proc: subprocess.Popen[bytes], rid: int, method: str, params: dict[str, Any]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(
            orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}) + b"\n"
        )
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the bare agent exited during {method}")
            message = orjson.loads(line)
            if message.get("id") == rid:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return


def bare_burst(bare: BareAgent, session_id: str, k: int) -> list[float]:
    """`k` bare restores at once (one thread each), as `k` concurrent swap-ins would be."""
    out: list[float] = []
    threads = [
        threading.Thread(target=lambda: out.append(bare.restore(session_id))) for _ in range(k)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


class BareSampler(threading.Thread):
    """Bare restores every BARE_EVERY seconds until stopped (runs beside phase 2)."""

    def __init__(self, bare: BareAgent, session_id: str) -> None:
        super().__init__(name="bare-sampler", daemon=True)
        self.bare = bare
        self.session_id = session_id
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(BARE_EVERY):
            self.samples.append(self.bare.restore(self.session_id))


# -- processes ---------------------------------------------------------------------------------


def marked(ws: Workspace) -> list[psutil.Process]:
    mine = str(ws.root)
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(WORKSPACE_MARKER) != mine:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def wait_agents_gone(ws: Workspace, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (left := marked(ws)) and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.1)
    return len(marked(ws))


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


# -- the run -----------------------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def swap_in_seconds(records: list[dict[str, Any]]) -> list[float]:
    """The durations of the `swap` events (`direction: in`) among event records."""
    return [
        float(e["seconds"])
        for e in records
        if e.get("type") == "swap" and e.get("direction") == "in"
    ]


def print_ratio(label: str, bare: list[float], swap: list[float]) -> None:
    if not swap or not bare:
        return
    ratio = statistics.median(swap) / statistics.median(bare)
    print(
        f"  {label} bare p50 {fmt_ms(statistics.median(bare))}, "
        f"swap-in p50 {fmt_ms(statistics.median(swap))} (n={len(swap)}); "
        f"ratio {ratio:.2f} (goal <= {GOAL_RATIO}: {verdict(ratio <= GOAL_RATIO)})"
    )


def run(args: argparse.Namespace, root: Path) -> None:
    n = args.tasks
    ws = make_workspace(root, TOML.format(max_live=args.max_live))
    env = isolated_env(root)
    task_ids = [f"s{i:05d}" for i in range(n)]
    rng = random.Random(args.seed)
    print(
        f"swap_scale: {n} tasks, max_live {args.max_live}, {args.per_task} messages per task, "
        f"rate {args.rate or 'all at once'} msgs/s — {machine()}"
    )

    sup = SupervisorProcess(ws, env, root / "supervisor-1.log")
    sups = [sup]
    try:
        # 1. create --------------------------------------------------------------------------
        t0 = time.monotonic()
        for task_id in task_ids:
            publish(ws.inbox, f"{task_id}.json", {"id": task_id, "prompt": f"hello {task_id}"})
        t1 = wait_turns(ws, sup, n, PHASE_TIMEOUT_PER_TASK * n + 60)
        print(
            f"create: {n} tasks, first turn each (session/new), in {t1 - t0:.1f} s "
            f"= {n / (t1 - t0):.1f} tasks/s"
        )

        # the bare agent restores a copy of a real task's session
        sample = task_ids[0]
        record = orjson.loads(ws.task(sample).record.read_bytes())
        bare_state = root / "bare-state"
        shutil.copytree(ws.task(sample).dir / "agent", bare_state)
        bare = BareAgent(bare_state, ws.root)
        bare.restore(record["session_id"])  # warm the page cache like the tasks' files are

        # 2. messages ------------------------------------------------------------------------
        events = Follower(ws.events_file)
        events.poll()
        total = n * args.per_task
        targets = [task_ids[rng.randrange(n)] for _ in range(total)]
        phase_ids: set[str] = set()
        sampler = BareSampler(bare, record["session_id"])
        sampler.start()
        start_wall = time.time()
        t2 = time.monotonic()
        next_at = t2
        for i, task_id in enumerate(targets):
            if args.rate:
                next_at += rng.expovariate(args.rate)
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            message_id = f"r{i:06d}"
            phase_ids.add(message_id)
            publish(
                ws.task(task_id).inbox,
                f"{message_id}.json",
                {"id": message_id, "text": f"message {i} for {task_id}"},
            )
        published = time.monotonic()
        wait_turns(ws, sup, n + total, PHASE_TIMEOUT_PER_TASK * total + 60)
        sampler.stop.set()
        sampler.join()
        last_ack, acked = last_ack_wall_time(ws, task_ids)
        elapsed = last_ack - start_wall
        swap_s = swap_in_seconds(events.poll())
        expected = Counter(targets)
        progressed = sum(1 for t in task_ids if acked.get(t, 0) >= 1 + expected[t])
        latencies = message_latencies(ws, task_ids, phase_ids)
        print(
            f"messages: {total} to random tasks, published in {published - t2:.1f} s, "
            f"all acked after {elapsed:.1f} s"
        )
        print(f"  throughput            {total / elapsed:8.1f} msgs/s")
        print(f"  swap-ins              {len(swap_s):8d}  = {len(swap_s) / elapsed:.1f} /s")
        print(
            f"  swap-in latency       p50 {fmt_ms(percentile(swap_s, 0.5))}, "
            f"p99 {fmt_ms(percentile(swap_s, 0.99))}, max {fmt_ms(max(swap_s))}"
        )
        print(
            f"  accept→ack latency    p50 {fmt_ms(percentile(latencies, 0.5))}, "
            f"p99 {fmt_ms(percentile(latencies, 0.99))}"
        )
        print(f"  tasks that progressed {progressed} / {n} (every message acked)")

        # 3. bare, beside phase 2 and one at a time on a quiet machine -----------------------
        loaded = sampler.samples
        swap_p50 = statistics.median(swap_s)
        print("bare spawn + initialize + session/load of the demo agent (raw JSON-lines client)")
        if loaded:
            ratio = swap_p50 / statistics.median(loaded)
            print(
                f"  beside phase 2        bare p50 {fmt_ms(statistics.median(loaded))} "
                f"(n={len(loaded)}); swap-in p50 / bare p50 = {ratio:.2f} "
                f"(goal <= {GOAL_RATIO}: {verdict(ratio <= GOAL_RATIO)})"
            )
        quiet_bare: list[float] = []
        quiet_swap: list[float] = []
        for i in range(QUIET_SAMPLES):  # alternate, so both see the same conditions
            quiet_bare.append(bare.restore(record["session_id"]))
            task_id = task_ids[rng.randrange(n)]
            message_id = f"q{i:04d}"
            publish(ws.task(task_id).inbox, f"{message_id}.json", {"id": message_id, "text": "q"})
            wait_ack(ws, sup, task_id, message_id)
            quiet_swap.extend(swap_in_seconds(events.poll()))
        print_ratio("one at a time, quiet ", quiet_bare, quiet_swap)

        burst_bare: list[float] = []
        burst_swap: list[float] = []
        k = args.max_live
        for i in range(BURST_ROUNDS):  # alternate rounds: both see the same machine
            burst_bare.extend(bare_burst(bare, record["session_id"], k))
            chosen = rng.sample(task_ids, k)
            ids = []
            for j, task_id in enumerate(chosen):
                message_id = f"b{i:03d}-{j}"
                ids.append((task_id, message_id))
                publish(
                    ws.task(task_id).inbox, f"{message_id}.json", {"id": message_id, "text": "b"}
                )
            for task_id, message_id in ids:
                wait_ack(ws, sup, task_id, message_id)
            burst_swap.extend(swap_in_seconds(events.poll()))
        print_ratio(f"{k} at once, quiet    ", burst_bare, burst_swap)

        # 4. idle ----------------------------------------------------------------------------
        time.sleep(IDLE_SETTLE)
        proc = psutil.Process(sup.proc.pid)
        rss = proc.memory_info().rss / 2**20
        before = cpu_seconds(proc)
        time.sleep(IDLE_WINDOW)
        cpu = (cpu_seconds(proc) - before) / IDLE_WINDOW * 100
        live = stats(ws).get("slots", {}).get("live")
        print(
            f"idle with {n} tasks ({live} sessions live): supervisor RSS {rss:.1f} MB "
            f"(goal < {GOAL_RSS_MB:g}: {verdict(rss < GOAL_RSS_MB)}), "
            f"CPU {cpu:.2f} % over {IDLE_WINDOW:g} s "
            f"(goal < {GOAL_IDLE_CPU}: {verdict(cpu < GOAL_IDLE_CPU)})"
        )

        # 5. crash ---------------------------------------------------------------------------
        sup.remember_children()
        os.kill(sup.proc.pid, signal.SIGKILL)
        sup.proc.wait()
        left = wait_agents_gone(ws, REAP_TIMEOUT)
        sup.stop()  # ends the reaper and anything left, by pid
        spawned = time.monotonic()
        sup = SupervisorProcess(ws, env, root / "supervisor-2.log")
        sups.append(sup)
        started_at = reconciled_at = None
        boot_events = Follower(ws.events_file)
        boot_events.offset = events.offset
        deadline = spawned + 120
        while reconciled_at is None:
            now = time.monotonic()
            if started_at is None and any(
                e.get("type") == "supervisor"
                and e.get("status") == "started"
                and e.get("pid") == sup.proc.pid
                for e in boot_events.poll()
            ):
                started_at = now
            snap = stats(ws)
            if snap.get("pid") == sup.proc.pid and sum(snap.get("tasks", {}).values()) == n:
                reconciled_at = now
            elif now > deadline or sup.proc.poll() is not None:
                raise SystemExit("the rerun supervisor did not reconcile")
            else:
                time.sleep(RECONCILE_POLL)
        reconcile = reconciled_at - spawned
        snap = stats(ws)
        after_imports = float(snap["ts"]) - float(snap["started_at"])
        started = f"{started_at - spawned:.2f} s" if started_at is not None else "not seen"
        print(f"SIGKILL with {n} tasks ({left} agent processes outlived the reaper), rerun:")
        print(
            f"  reconciled (its stats.json counts all {n}) {reconcile:.2f} s after spawn "
            f"(goal < {GOAL_RECONCILE:g}: {verdict(reconcile < GOAL_RECONCILE)}); "
            f"'started' event after {started}"
        )
        print(
            f"  of which boot work after the imports (load, fold, scan, first stats.json) "
            f"{fmt_ms(after_imports)}; the rest is interpreter start + imports"
        )
        print(f"  after the rerun: tasks {snap.get('tasks')}, slots {snap.get('slots')}")
    finally:
        for s in sups:
            s.stop()
        leftovers = marked(ws)
        if leftovers:
            print(f"warning: {len(leftovers)} marked processes left; killing them")
            for p in leftovers:
                with contextlib.suppress(psutil.Error):
                    p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 tasks")
    parser.add_argument("--max-live", type=int, default=8)
    parser.add_argument("--per-task", type=int, default=2, help="phase-2 messages per task (mean)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="Poisson rate of phase-2 publishes, msgs/s (0 = all at once)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the workspace for inspection")
    args = parser.parse_args()
    if args.quick:
        args.tasks = 200
    root = Path(tempfile.mkdtemp(prefix="mh-swap-scale-"))
    try:
        run(args, root)
    finally:
        if args.keep:
            print(f"workspace kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
