"""Agent slots: at most `max_live` agent processes per workspace, LRU eviction, a queue.

A runner calls `acquire` before it spawns an agent and `release` when its process is
gone. With no free slot, the least-recently-used evictable session (see
`domain.admission`) is asked to swap out; if none can go, the runner waits in the
queue (priority, then FIFO) until a slot is released.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Protocol

from meta_harness.domain.admission import Candidate, Waiter, choose_victim

logger = logging.getLogger(__name__)


class SlotHolder(Protocol):
    task_id: str

    def candidate(self) -> Candidate: ...

    async def evict(self) -> bool:
        """Swap out if still evictable; True if the slot was given up."""
        ...


class Pool:
    def __init__(self, max_live: int) -> None:
        self.max_live = max_live
        self.holders: dict[str, SlotHolder] = {}
        self._waiters: dict[str, tuple[Waiter, asyncio.Event]] = {}
        self._seq = itertools.count()
        self.swaps_out = 0
        self.queue_peak = 0

    @property
    def queue_depth(self) -> int:
        return len(self._waiters)

    def _first_in_line(self, task_id: str) -> bool:
        if not self._waiters:
            return True
        best = min(w for w, _ in self._waiters.values())
        return best.task_id == task_id

    async def acquire(self, holder: SlotHolder, priority: int = 0) -> float:
        """Wait for a slot; returns seconds spent waiting."""
        start = time.monotonic()
        if holder.task_id in self.holders:
            return 0.0
        event = asyncio.Event()
        waiter = Waiter(priority, next(self._seq), holder.task_id)
        self._waiters[holder.task_id] = (waiter, event)
        self.queue_peak = max(self.queue_peak, len(self._waiters))
        try:
            while True:
                # Cleared before looking, never after: a release or poke that lands while
                # we await an eviction below stays set and is seen on the next pass.
                event.clear()
                if len(self.holders) < self.max_live and self._first_in_line(holder.task_id):
                    self.holders[holder.task_id] = holder
                    return time.monotonic() - start
                if self._first_in_line(holder.task_id):
                    victim = choose_victim([h.candidate() for h in self.holders.values()])
                    if victim is not None and await self.holders[victim].evict():
                        self.swaps_out += 1
                        continue
                    # A declined eviction (the victim lost a race: it is already stopping
                    # or just got work) is not retried in a loop: wait for release/poke.
                await event.wait()
        finally:
            self._waiters.pop(holder.task_id, None)
            self._wake_next()

    def release(self, task_id: str) -> None:
        if self.holders.pop(task_id, None) is not None:
            self._wake_next()

    def poke(self) -> None:
        """A holder became evictable: let the first waiter try again."""
        self._wake_next()

    def _wake_next(self) -> None:
        if self._waiters:
            _, event = min(self._waiters.values(), key=lambda pair: pair[0])
            event.set()
