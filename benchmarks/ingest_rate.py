"""Benchmark: durable ingest rate, drop files -> fdatasync'd WAL records, across many tasks.

In-process (the figure with the goal, >= 20,000 msgs/s): the supervisor's own `Ingest`
with a `TaskStore` and `EventLog`, as `Supervisor` wires them, on a throw-away workspace.
The tasks are created first (by top-level drops, not timed); then TASKS x MESSAGES small
message drops are published (dot-name + rename) and `Ingest.scan_all()` is timed until
every one is durable: WAL written and fdatasync'd, `accepted` event appended, drop file
unlinked. fdatasync/fsync calls are counted by wrapping `os.fdatasync`/`os.fsync`.

Live (`--live`, reported beside it, no goal): a real supervisor subprocess whose tasks'
agent never answers `initialize` (`sleep`, one slot), so no agent competes for the CPU;
one process publishes the drops as fast as it can while the watcher batches them. The
rate is messages / (last `accepted` event - first publish), so it can be no faster than
the publisher. Prints figures; asserts nothing.
Run: `/work/venv/bin/python benchmarks/ingest_rate.py [--quick] [--no-live]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Follower,
    isolate_this_process,
    isolated_env,
    machine,
    make_workspace,
    publish,
)

from meta_harness.base.config import load_config
from meta_harness.base.jsonl import read_records
from meta_harness.base.layout import Workspace
from meta_harness.runtime.ingest import Ingest
from meta_harness.runtime.store import EventLog, TaskStore

GOAL_RATE = 20_000.0
TEXT = "please look at the failing test in tests/test_x.py and fix it"
LIVE_TIMEOUT = 60.0  # every live drop must be ingested within this
LIVE_MESSAGES = 50  # per task in the live run (5,000 drops): the publisher sets its pace
LIVE_STOP_TIMEOUT = 1.0  # runners parked behind a hung initialize do not stop on SIGTERM

INERT_TOML = """
[supervisor]
max_live = 1
default_profile = "inert"

[agents.inert]
description = "never answers initialize: tasks exist, no agent uses the CPU"
command = ["sleep", "600"]

[profiles.inert]
extends = "default"
agent = "inert"
"""


class SyncCounter:
    """Counts os.fdatasync / os.fsync calls while installed."""

    def __init__(self) -> None:
        self.fdatasync = 0
        self.fsync = 0
        self._orig: tuple[Callable[[int], None], Callable[[int], None]] | None = None

    def __enter__(self) -> SyncCounter:
        self._orig = (os.fdatasync, os.fsync)
        real_fdatasync, real_fsync = self._orig

        def fdatasync(fd: int) -> None:
            self.fdatasync += 1
            real_fdatasync(fd)

        def fsync(fd: int) -> None:
            self.fsync += 1
            real_fsync(fd)

        os.fdatasync = fdatasync  # type: ignore[assignment]
        os.fsync = fsync  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._orig is not None
        os.fdatasync, os.fsync = self._orig  # type: ignore[assignment]


def task_ids(tasks: int) -> list[str]:
    return [f"task-{t:04d}" for t in range(tasks)]


def drop_messages(ws: Workspace, ids: list[str], messages: int, tag: str) -> float:
    """Publish `messages` drops into each task's inbox, round-robin; returns seconds taken.

    Written under a dot-name and renamed into place, as `publish` does, with bare os
    calls so that the publisher is not what limits the live figure.
    """
    started = time.perf_counter()
    inboxes = [str(ws.task(t).inbox) for t in ids]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for m in range(messages):
        message_id = f"{tag}-{m}"
        data = orjson.dumps({"id": message_id, "text": TEXT})
        for inbox in inboxes:
            tmp = f"{inbox}/.{message_id}.tmp"
            fd = os.open(tmp, flags, 0o644)
            os.write(fd, data)
            os.close(fd)
            os.rename(tmp, f"{inbox}/{message_id}.json")
    return time.perf_counter() - started


def in_process(root: Path, tasks: int, messages: int, rounds: int) -> None:
    ws = make_workspace(root)
    isolate_this_process(root)
    config = load_config(ws)
    events = EventLog(ws)
    store = TaskStore(ws, events)
    ingest = Ingest(ws, store, lambda: config)
    ids = task_ids(tasks)
    for task_id in ids:
        publish(ws.inbox, f"{task_id}.json", {"id": task_id, "prompt": "start"})
    created = ingest.scan_all().created
    assert len(created) == tasks, created
    drop_bytes = len(f'{{"id":"r0-0","text":"{TEXT}"}}')
    total = tasks * messages
    print(
        f"in-process Ingest.scan_all(): {tasks} tasks x {messages} messages = {total} drops "
        f"of ~{drop_bytes} B per round, {rounds} round(s)"
    )
    print(
        f"  {'round':<7}{'publish s':>10}{'ingest s':>10}{'msgs/s':>10}{'fdatasync':>11}"
        f"{'per task':>9}{'fsync':>7}"
    )
    rates: list[float] = []
    for r in range(rounds):
        publish_s = drop_messages(ws, ids, messages, f"r{r}")
        with SyncCounter() as syncs:
            started = time.perf_counter()
            result = ingest.scan_all()
            elapsed = time.perf_counter() - started
        left = sum(len(os.listdir(ws.task(t).inbox)) for t in ids)
        if left or len(result.touched) != tasks:
            print(f"  round {r}: {left} drop files left, {len(result.touched)} tasks touched")
        rate = total / elapsed
        rates.append(rate)
        print(
            f"  {r:<7}{publish_s:>10.3f}{elapsed:>10.3f}{rate:>10.0f}{syncs.fdatasync:>11}"
            f"{syncs.fdatasync / tasks:>9.2f}{syncs.fsync:>7}"
        )
    store.close()
    events.close()
    wal_msgs = sum(
        sum(1 for rec in read_records(ws.task(t).wal) if rec.get("op") == "msg") for t in ids
    )
    expected = tasks * (messages * rounds + 1)
    print(f"  WAL msg records: {wal_msgs} (expected {expected})")
    best, median = max(rates), statistics.median(rates)
    verdict = "meets" if median >= GOAL_RATE else "MISSES"
    print(
        f"in-process ingest: median {median:,.0f} msgs/s, best {best:,.0f} msgs/s "
        f"(goal >= {GOAL_RATE:,.0f}): {verdict} the goal"
    )


def live(root: Path, tasks: int, messages: int) -> None:
    from _common import running_supervisor

    from meta_harness.domain.tasks import TaskRecord

    ws = make_workspace(root, INERT_TOML)
    isolate_this_process(root)
    config = load_config(ws)
    profile = config.profile("inert")
    events = EventLog(ws)
    store = TaskStore(ws, events)
    ids = task_ids(tasks)
    for task_id in ids:  # no first message: no runner starts until the drops arrive
        store.create(
            TaskRecord(id=task_id, profile="inert", cwd=str(ws.root)),
            profile.model_dump_json(indent=2).encode(),
        )
    store.close()
    events.close()
    total = tasks * messages
    follower = Follower(ws.events_file)
    with running_supervisor(ws, isolated_env(root), root / "supervisor.log") as sup:
        deadline = time.monotonic() + 30.0
        while not any(r.get("status") == "started" for r in follower.poll()):
            if time.monotonic() > deadline or sup.proc.poll() is not None:
                raise SystemExit("the supervisor did not start")
            time.sleep(0.01)
        time.sleep(0.2)  # the watcher starts right after the boot event; no drop may be missed
        first = time.time()
        publish_s = drop_messages(ws, ids, messages, "live")
        last_publish = time.time()
        accepted: list[float] = []
        deadline = time.monotonic() + LIVE_TIMEOUT
        while len(accepted) < total and time.monotonic() < deadline:
            for record in follower.poll():
                if record.get("type") == "message" and record.get("status") == "accepted":
                    accepted.append(float(record["ts"]))
            time.sleep(0.005)
        sup.stop_timeout = LIVE_STOP_TIMEOUT
    if len(accepted) < total:
        print(f"live: only {len(accepted)} of {total} accepted within {LIVE_TIMEOUT:g} s")
        return
    done = max(accepted)
    print(
        f"live supervisor (watcher batches, one publisher process): {tasks} x {messages} = {total}"
    )
    print(f"  publisher alone          {total / publish_s:>10,.0f} drops/s ({publish_s:.2f} s)")
    span = done - first
    print(f"  first drop -> last durable {span:>8.2f} s  = {total / span:,.0f} msgs/s")
    print(f"  last drop -> last durable  {(done - last_publish) * 1000:>8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="100 x 50, one in-process round, 100 x 5 live"
    )
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--messages", type=int, default=None, help="per task per round (200)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-live", action="store_true", help="skip the live supervisor run")
    args: Any = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    messages = args.messages or (50 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        print(f"ingest rate, {machine(Path(tmp))}")
        in_process(Path(tmp) / "a", args.tasks, messages, rounds)
    if not args.no_live:
        live_messages = 5 if args.quick else LIVE_MESSAGES
        with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
            live(Path(tmp) / "b", args.tasks, live_messages)


if __name__ == "__main__":
    main()
