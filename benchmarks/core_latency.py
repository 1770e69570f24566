"""Benchmark: drop file -> prompt at the demo agent, through a real supervisor.

Starts `meta_harness.runtime.supervisor.run` in a subprocess on a throw-away workspace
(empty meta-harness.toml, the built-in demo agent), warms one task's session, then sends
messages one at a time: t0 = `time.time()` just before the drop file is published
(dot-name + rename into `tasks/<id>/inbox/`); the next message goes only after the
previous one's `ack` is in the WAL. Two series: back-to-back (the next drop right after
the ack, while the supervisor still does its post-turn bookkeeping) and idle task (the
next drop once the task's `waiting` phase event is out, plus IDLE_PAUSE). Afterwards
the timestamps are read from the files (all `time.time()`, one clock): WAL `msg` ts
(taken before its fdatasync), WAL `sent` ts, the transcript's outgoing `session/prompt`
frame (written by the supervisor after the pipe write) and the demo agent's
`received.jsonl` (taken when the prompt arrived). Goal: drop -> received p50 <= 5 ms,
p99 <= 25 ms. Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/core_latency.py [--quick] [--messages N]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MESSAGE_TIMEOUT,
    POLL_INTERVAL,
    Follower,
    describe,
    isolated_env,
    machine,
    make_workspace,
    print_rows,
    prompt_frames,
    publish,
    received_records,
    running_supervisor,
    wal_times,
    warm_task,
)

from meta_harness.base.layout import Workspace

TASK = "bench-latency"
GOAL_P50_MS = 5.0
GOAL_P99_MS = 25.0
IDLE_PAUSE = 0.005  # after the `waiting` event: stats and other post-turn writes are done


def wait_waiting(events: Follower) -> None:
    """Until the task's phase event `-> waiting` (the runner's post-ack write) is out."""
    deadline = time.monotonic() + MESSAGE_TIMEOUT
    while time.monotonic() < deadline:
        for r in events.poll():
            if r.get("type") == "task.phase" and r.get("task") == TASK and r.get("to") == "waiting":
                return
        time.sleep(POLL_INTERVAL)
    raise TimeoutError("no waiting phase event")


def run_series(
    ws: Workspace, wal: Follower, prefix: str, count: int, idle: bool
) -> dict[str, float]:
    """Send `count` messages one at a time; returns message id -> t0."""
    inbox = ws.task(TASK).inbox
    events = Follower(ws.events_file)
    events.poll()
    t0: dict[str, float] = {}
    for i in range(count):
        message_id = f"{prefix}-{i}"
        t0[message_id] = time.time()
        publish(inbox, f"{message_id}.json", {"id": message_id, "text": f"hello {i}"})
        wal.wait_for("ack", message_id)
        if idle:
            wait_waiting(events)
            time.sleep(IDLE_PAUSE)
    return t0


def report(ws: Workspace, title: str, t0: dict[str, float]) -> list[float]:
    wal_ts = wal_times(ws, TASK)
    frames = prompt_frames(ws, TASK)
    received = {r["messageId"]: float(r["ts"]) for r in received_records(ws, TASK)}

    def pick(op: str) -> dict[str, float]:
        return {m: wal_ts[(op, m)] for m in t0 if (op, m) in wal_ts}

    def ms(a: dict[str, float], b: dict[str, float]) -> list[float]:
        return [(b[m] - a[m]) * 1000 for m in t0 if m in a and m in b]

    durable, sent, acked = pick("msg"), pick("sent"), pick("ack")
    print_rows(
        title,
        [
            ("drop -> received by agent", ms(t0, received)),
            ("drop -> prompt written", ms(t0, frames)),
            ("drop -> acked (turn over)", ms(t0, acked)),
            ("  drop -> WAL msg ts (watcher+ingest)", ms(t0, durable)),
            ("  WAL msg ts -> WAL sent ts (runner)", ms(durable, sent)),
            ("  WAL sent ts -> prompt written", ms(sent, frames)),
            ("  prompt written -> received", ms(frames, received)),
        ],
    )
    return ms(t0, received)


def verdict(name: str, values: list[float]) -> None:
    d = describe(values)
    ok = d["p50"] <= GOAL_P50_MS and d["p99"] <= GOAL_P99_MS
    print(
        f"{name}: drop -> received p50 {d['p50']:.2f} ms (goal <= {GOAL_P50_MS:g}), "
        f"p99 {d['p99']:.2f} ms (goal <= {GOAL_P99_MS:g}): {'meets' if ok else 'MISSES'} the goal"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 messages per series")
    parser.add_argument("--messages", type=int, default=None, help="per series (500)")
    parser.add_argument("--warmups", type=int, default=None, help="unmeasured messages first")
    args = parser.parse_args()
    count = args.messages or (200 if args.quick else 500)
    warmups = args.warmups if args.warmups is not None else (5 if args.quick else 20)

    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        root = Path(tmp)
        where = machine(root)
        ws = make_workspace(root)
        with running_supervisor(ws, isolated_env(root), root / "supervisor.log") as sup:
            wal = warm_task(ws, sup, TASK, warmups)
            back = run_series(ws, wal, "b", count, idle=False)
            idle = run_series(ws, wal, "i", count, idle=True)
        print(f"core latency, {where}, {count} messages per series, {warmups} warm-ups")
        print("t0 = time.time() just before the drop file is published")
        back_ms = report(ws, "back-to-back (next drop right after the ack)", back)
        idle_ms = report(ws, "idle task (next drop after the `waiting` phase event)", idle)
    verdict("back-to-back", back_ms)
    verdict("idle task", idle_ms)


if __name__ == "__main__":
    main()
