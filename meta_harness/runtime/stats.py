"""Live supervisor statistics, published to `.meta-harness/stats.json` for `stats` and the web.

Counters are updated by the runtime as things happen; `publish_stats` rewrites the file
(atomically, not fsync'd: it is a view, not state) at most every `STATS_MIN_INTERVAL`
seconds, and only after something changed. `slots.profiles` counts live sessions per
profile; it is left out while no session is live.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from meta_harness.base.fs import atomic_write
from meta_harness.base.layout import Workspace

STATS_MIN_INTERVAL = 0.5  # seconds between rewrites of stats.json under load
SWAP_SAMPLES = 1000  # swap-in latencies kept for the percentiles
STATS_FILE = "stats.json"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    swaps_in: int = 0
    swaps_out: int = 0
    crashes: int = 0
    turns: int = 0
    swap_in_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=SWAP_SAMPLES))
    dirty: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        # A new supervisor publishes at once: readers must not see a dead one's file as
        # current just because nothing has changed since boot.
        self.dirty.set()

    def touch(self) -> None:
        self.dirty.set()

    def snapshot(
        self,
        *,
        max_live: int,
        live: int,
        queue_depth: int,
        profiles: Mapping[str, int] | None = None,
        session_phases: Counter[str],
        task_phases: Counter[str],
        accepted: int,
        rejected: int,
    ) -> dict[str, Any]:
        swaps = list(self.swap_in_seconds)
        slots: dict[str, Any] = {"max_live": max_live, "live": live, "queue_depth": queue_depth}
        if profiles:
            slots["profiles"] = dict(sorted(profiles.items()))
        return {
            "ts": time.time(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "slots": slots,
            "swaps": {
                "in": self.swaps_in,
                "out": self.swaps_out,
                "swap_in_p50": percentile(swaps, 0.5),
                "swap_in_p99": percentile(swaps, 0.99),
            },
            "turns": self.turns,
            "crashes": self.crashes,
            "messages": {"accepted": accepted, "rejected_files": rejected},
            "tasks": dict(task_phases),
            "sessions": dict(session_phases),
        }


def write_stats(workspace: Workspace, snapshot: dict[str, Any]) -> None:
    atomic_write(
        workspace.state_dir / STATS_FILE,
        orjson.dumps(snapshot, option=orjson.OPT_INDENT_2),
        durable=False,
    )


async def publish_stats(
    workspace: Workspace,
    stats: Stats,
    snapshot: Callable[[], dict[str, Any]],
    stop_event: asyncio.Event,
) -> None:
    """Rewrite stats.json after changes, at most every STATS_MIN_INTERVAL seconds."""
    stop = asyncio.ensure_future(stop_event.wait())
    try:
        while not stop_event.is_set():
            dirty = asyncio.ensure_future(stats.dirty.wait())
            await asyncio.wait([stop, dirty], return_when=asyncio.FIRST_COMPLETED)
            dirty.cancel()
            stats.dirty.clear()
            write_stats(workspace, snapshot())
            await asyncio.wait([stop], timeout=STATS_MIN_INTERVAL)
    finally:
        stop.cancel()
