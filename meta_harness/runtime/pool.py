"""Agent slots: at most `max_live` agent processes per workspace and per-profile caps, a queue.

A runner calls `acquire` before it spawns an agent and `release` when its process is
gone. Who gets a slot, and which idle session swaps out to free one, is decided by the
pure `domain.admission.admit` (LRU eviction, priority-then-FIFO queue, per-profile caps
without head-of-line blocking); this module only waits, wakes and asks victims to go.
A waiter awaiting its victim's swap-out is out of the line meanwhile, so the next one
can evict another session: swap-outs run side by side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from meta_harness.domain.admission import Admission, Candidate, Waiter, admit

if TYPE_CHECKING:
    from meta_harness.base.config import Config

logger = logging.getLogger(__name__)


class SlotHolder(Protocol):
    task_id: str

    @property
    def profile_name(self) -> str: ...

    def candidate(self) -> Candidate: ...

    async def evict(self) -> bool:
        """Swap out if still evictable; True if the slot was given up."""
        ...


def profile_caps(config: Config) -> dict[str, int]:
    """The `limits.max_live` of every profile that sets one, from the live config."""
    return {
        name: profile.limits.max_live
        for name, profile in config.profiles.items()
        if profile.limits.max_live is not None
    }


class Pool:
    def __init__(self, max_live: int, caps: Mapping[str, int] | None = None) -> None:
        self.max_live = max_live
        self.caps: Mapping[str, int] = caps or {}  # profile name -> its cap; reassigned on reload
        self.holders: dict[str, SlotHolder] = {}
        self._waiters: dict[str, tuple[Waiter, asyncio.Event]] = {}
        self._evicting: set[str] = set()  # victims asked to swap out, not yet answered
        # waiters awaiting their victim's swap-out: the next waiter may evict another
        # session meanwhile (swap-outs run side by side, not one after the other)
        self._served: set[str] = set()
        self._seq = itertools.count()
        self.swaps_out = 0
        self.queue_peak = 0

    @property
    def queue_depth(self) -> int:
        return len(self._waiters)

    def others_working(self, task_id: str) -> bool:
        """Whether another live session is mid-turn or starting (the event loop is shared)."""
        for other, holder in self.holders.items():
            if other != task_id:
                candidate = holder.candidate()
                if candidate.busy or candidate.starting:
                    return True
        return False

    def live_by_profile(self) -> dict[str, int]:
        """Live sessions per profile name (profiles with none are left out)."""
        return dict(Counter(h.profile_name for h in self.holders.values()))

    def _decide(self) -> Admission | None:
        live = [
            dataclasses.replace(c, stopping=True) if c.task_id in self._evicting else c
            for c in (h.candidate() for h in self.holders.values())
        ]
        waiters = [w for w, _ in self._waiters.values() if w.task_id not in self._served]
        return admit(live, waiters, self.max_live, self.caps)

    async def acquire(self, holder: SlotHolder, priority: int = 0) -> float:
        """Wait for a slot; returns seconds spent waiting."""
        start = time.monotonic()
        if holder.task_id in self.holders:
            return 0.0
        event = asyncio.Event()
        waiter = Waiter(priority, next(self._seq), holder.task_id, holder.profile_name)
        self._waiters[holder.task_id] = (waiter, event)
        self.queue_peak = max(self.queue_peak, len(self._waiters))
        try:
            while True:
                # Cleared before looking, never after: a release or poke that lands while
                # we await an eviction below stays set and is seen on the next pass.
                event.clear()
                decision = self._decide()
                if decision is None or decision.waiter != holder.task_id:
                    if decision is not None:
                        self._wake(decision)  # woken for nothing: pass the turn on
                    await event.wait()
                    continue
                if decision.victim is None:
                    self.holders[holder.task_id] = holder
                    return time.monotonic() - start
                self._served.add(holder.task_id)
                try:
                    evicted = await self._evict(decision.victim)
                finally:
                    self._served.discard(holder.task_id)
                if evicted:
                    continue
                # A declined eviction (the victim lost a race: it is already stopping
                # or just got work) is not retried in a loop: wait for release/poke.
                await event.wait()
        finally:
            self._waiters.pop(holder.task_id, None)
            self._wake_next()

    async def _evict(self, task_id: str) -> bool:
        victim = self.holders.get(task_id)
        if victim is None:
            return True  # released meanwhile: its slot is free
        self._evicting.add(task_id)
        self._wake_next(served_too=False)  # another waiter may evict another one meanwhile
        try:
            evicted = await victim.evict()
        finally:
            self._evicting.discard(task_id)
        if evicted:
            self.swaps_out += 1
        return evicted

    def release(self, task_id: str) -> None:
        if self.holders.pop(task_id, None) is not None:
            self._wake_next()

    def poke(self) -> None:
        """A holder became evictable: let the waiter that can use it try again."""
        self._wake_next()

    def _wake_next(self, *, served_too: bool = True) -> None:
        if served_too:  # their evictions may yet fail: they must see this change
            for task_id in self._served:
                self._waiters[task_id][1].set()
        if self._waiters:
            decision = self._decide()
            if decision is not None:
                self._wake(decision)

    def _wake(self, decision: Admission) -> None:
        entry = self._waiters.get(decision.waiter)
        if entry is not None:
            entry[1].set()
