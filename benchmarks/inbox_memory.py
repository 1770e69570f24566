"""Benchmark: memory and time of folding every task's inbox WAL, compact fold vs the old one.

Builds a workspace-like tree in a temp dir: TASKS WALs, each with MESSAGES settled
messages (`msg` + `sent` + `ack`, ~SIZE bytes of text each) and PENDING unsettled ones
(the first stamped `sent`, i.e. in doubt). Then, in this one process, folds every WAL and
keeps all the states alive, as the supervisor's `TaskInbox`es do:

- memory (tracemalloc, started just before the fold): `retained` = bytes still allocated
  with all states alive and the records garbage-collected; `peak` = the high-water mark
  during the fold (one WAL's parsed records on top of the states kept so far);
- time (tracemalloc off): read + fold of all WALs, median of ROUNDS, the two folds
  interleaved; `read only` is `read_records` alone, which both pay.

`baseline` is the fold before compaction (`InboxState` as it was: every message body and
every stamp kept forever), copied here; `compact` is `meta_harness.domain.inbox.InboxState`.
Prints figures; asserts nothing. Removes its temp dir.
Run: `/work/venv/bin/python benchmarks/inbox_memory.py [--quick] [--tasks T --messages M]`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, make_workspace

from meta_harness.base.jsonl import read_records
from meta_harness.domain.drops import Control, MessageDrop
from meta_harness.domain.inbox import InboxState, Message, ack_record, msg_record, sent_record

MiB = 1024 * 1024


@dataclass
class BaselineFold:
    """The fold before compaction (tests/domain/test_inbox.py `ReferenceFold`, minus its
    test-only `resent` bookkeeping): every message, every id, every stamp kept forever."""

    messages: dict[str, Message] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    acked: dict[str, str] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    duplicates: int = 0
    last_epoch: int = 0

    @classmethod
    def fold(cls, records: list[dict[str, Any]]) -> BaselineFold:
        state = cls()
        for record in records:
            state.apply(record)
        return state

    def apply(self, record: dict[str, Any]) -> None:
        op, mid = record.get("op"), record.get("id")
        if not isinstance(mid, str):
            return
        if op == "msg":
            if mid in self.messages:
                self.duplicates += 1
                return
            control = record.get("control")
            self.messages[mid] = Message(
                id=mid,
                sender=str(record.get("from", "")),
                content=list(record.get("content") or []),
                ts=float(record.get("ts", 0.0)),
                control=Control(control) if control else None,
                result=record.get("result"),
                meta=dict(record.get("meta") or {}),
            )
            self.order.append(mid)
        elif op == "sent":
            self.sent[mid] = self.sent.get(mid, 0) + 1
            epoch = record.get("epoch")
            if isinstance(epoch, int) and epoch > self.last_epoch:
                self.last_epoch = epoch
        elif op == "ack":
            self.acked[mid] = str(record.get("stop", ""))
        elif op == "drop":
            self.dropped.add(mid)

    def settled(self, mid: str) -> bool:
        return mid in self.acked or mid in self.dropped

    def counts(self) -> dict[str, int]:
        return {
            "accepted": len(self.order),
            "delivered": sum(1 for s in self.acked.values() if s != "error"),
            "pending": sum(1 for mid in self.order if not self.settled(mid)),
            "duplicates": self.duplicates,
        }


Fold = Callable[[list[dict[str, Any]]], Any]
FOLDS: dict[str, Fold] = {"baseline": BaselineFold.fold, "compact": InboxState.fold}


def build(root: Path, tasks: int, messages: int, pending: int, size: int) -> list[Path]:
    """One WAL per task, written as the supervisor writes them (not fsync'd: not measured)."""
    ws = make_workspace(root)
    filler = "lorem ipsum dolor sit amet, " * (size // 28 + 1)
    wals: list[Path] = []
    for t in range(tasks):
        task_id = f"task-{t:05d}"
        lines: list[bytes] = []
        for i in range(messages + pending):
            mid = f"{task_id}-msg-{i:06d}"
            text = f"[{mid}] {filler}"[:size]
            drop = MessageDrop(id=mid, sender="user", content=[{"type": "text", "text": text}])
            lines.append(orjson.dumps(msg_record(drop)))
            if i < messages:
                lines.append(orjson.dumps(sent_record(mid, 1 + i // 50)))
                lines.append(orjson.dumps(ack_record(mid, "end_turn")))
            elif i == messages:
                lines.append(orjson.dumps(sent_record(mid, 1 + i // 50)))  # in doubt
        paths = ws.task(task_id)
        paths.dir.mkdir(parents=True)
        paths.wal.write_bytes(b"\n".join(lines) + b"\n")
        wals.append(paths.wal)
    return wals


def fold_all(fold: Fold, wals: list[Path]) -> list[Any]:
    return [fold(read_records(wal)) for wal in wals]


def read_all(wals: list[Path]) -> list[int]:
    return [len(read_records(wal)) for wal in wals]


def measure_memory(fold: Fold, wals: list[Path]) -> tuple[int, int, list[dict[str, int]]]:
    """(retained, peak) bytes of folding every WAL with all states kept, and their counts."""
    gc.collect()
    tracemalloc.start()
    states = fold_all(fold, wals)
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    counts = [s.counts() for s in states]
    del states
    gc.collect()
    return retained, peak, counts


def timed(work: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - t0
    del result
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 tasks, 1 round")
    parser.add_argument("--tasks", type=int, default=None, help="WALs (1,000)")
    parser.add_argument("--messages", type=int, default=200, help="settled messages per WAL")
    parser.add_argument("--pending", type=int, default=3, help="unsettled messages per WAL")
    parser.add_argument("--size", type=int, default=2048, help="bytes of text per message")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (3)")
    args = parser.parse_args()
    tasks = args.tasks or (100 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="mh-bench-") as tmp:
        print(f"inbox fold memory, {machine()}")
        t0 = time.perf_counter()
        wals = build(Path(tmp), tasks, args.messages, args.pending, args.size)
        on_disk = sum(w.stat().st_size for w in wals)
        print(
            f"  {tasks} WALs x ({args.messages} settled + {args.pending} pending) messages of "
            f"{args.size} B: {on_disk / MiB:.1f} MiB on disk, built in "
            f"{time.perf_counter() - t0:.1f} s"
        )

        memory: dict[str, tuple[int, int]] = {}
        answers: dict[str, list[dict[str, int]]] = {}
        for name, fold in FOLDS.items():
            retained, peak, answers[name] = measure_memory(fold, wals)
            memory[name] = (retained, peak)

        seconds: dict[str, list[float]] = {name: [] for name in [*FOLDS, "read only"]}
        for r in range(rounds):
            order = list(FOLDS) if r % 2 == 0 else list(reversed(FOLDS))
            for name in order:
                seconds[name].append(timed(partial(fold_all, FOLDS[name], wals)))
            seconds["read only"].append(timed(partial(read_all, wals)))

    settled = tasks * args.messages
    print("\n  memory with every state kept (tracemalloc)")
    print(f"  {'':<10}{'retained':>14}{'per task':>12}{'per settled msg':>17}{'peak':>14}")
    for name, (retained, peak) in memory.items():
        print(
            f"  {name:<10}{retained / MiB:>10.1f} MiB{retained / tasks / 1024:>8.1f} KiB"
            f"{retained / settled:>15.0f} B{peak / MiB:>10.1f} MiB"
        )
    (base_kept, base_peak), (new_kept, new_peak) = memory["baseline"], memory["compact"]
    print(
        f"  ratio baseline / compact: retained {base_kept / new_kept:.1f}x, "
        f"peak {base_peak / new_peak:.1f}x"
    )
    same = answers["baseline"] == answers["compact"]
    print(f"  same counts() for every task: {'yes' if same else 'NO'}")

    print(f"\n  read + fold of all {tasks} WALs, median of {rounds} (tracemalloc off)")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:<10}{median:>8.2f} s  ({median / tasks * 1000:.2f} ms per task)")
    read = statistics.median(seconds["read only"])
    fold_only = {n: statistics.median(seconds[n]) - read for n in FOLDS}
    print(
        f"  fold alone (minus read only): baseline {fold_only['baseline']:.2f} s, "
        f"compact {fold_only['compact']:.2f} s"
    )


if __name__ == "__main__":
    main()
