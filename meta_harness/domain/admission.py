"""Admission and eviction (pure): who gets an agent slot, and whose idle session gives one up.

Sessions are like pages of virtual memory: `max_live` slots per workspace. A runnable
task without a live session needs a slot; if none is free the least-recently-used idle,
evictable session is swapped out; if none is evictable the task queues (priority, then
FIFO). Never evicted: a session mid-turn, one waiting on a permission answer, one with
undelivered messages, one pinned (its agent cannot `session/load`), one still starting,
and one already stopping (it is giving its slot up anyway: wait for the release).

A profile may also cap its own live sessions (`limits.max_live`). A waiter whose profile
is at its cap gets a slot only by evicting an evictable session of its own profile (LRU
among those), never one of another profile; with none it waits, and does not hold up
waiters of other profiles behind it: `admit` serves the first waiter, in (priority, FIFO)
order, that can proceed. A waiter under its cap is served as if there were no caps. A cap
lowered below the live count evicts nothing on its own; it admits no more until the count
is below the cap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    task_id: str
    last_used: float  # monotonic time the session last finished a turn or was restored
    busy: bool = False
    awaiting_permission: bool = False
    has_pending: bool = False
    pinned: bool = False
    starting: bool = False
    stopping: bool = False  # swapping out, ending or crashed: the slot is on its way back
    profile: str = ""

    @property
    def evictable(self) -> bool:
        return not (
            self.busy
            or self.awaiting_permission
            or self.has_pending
            or self.pinned
            or self.starting
            or self.stopping
        )


def choose_victim(live: list[Candidate]) -> str | None:
    """The least-recently-used evictable session, or None if every live session must stay."""
    evictable = [c for c in live if c.evictable]
    if not evictable:
        return None
    return min(evictable, key=lambda c: (c.last_used, c.task_id)).task_id


@dataclass(frozen=True, order=True)
class Waiter:
    priority: int  # lower runs first
    seq: int  # FIFO among equals
    task_id: str
    profile: str = ""


def next_waiter(waiters: list[Waiter]) -> Waiter | None:
    return min(waiters) if waiters else None


@dataclass(frozen=True)
class Admission:
    """`waiter` may take a slot: a free one, or the one `victim` gives up by swapping out."""

    waiter: str
    victim: str | None = None


def admit(
    live: list[Candidate],
    waiters: list[Waiter],
    max_live: int,
    caps: Mapping[str, int] | None = None,
) -> Admission | None:
    """Which waiter proceeds now, and whom it must evict first; None if nobody can.

    `caps` maps a profile name to its cap on live sessions; a profile not in it has none.
    """
    caps = caps or {}
    per_profile = Counter(c.profile for c in live)
    for waiter in sorted(waiters):
        cap = caps.get(waiter.profile)
        if cap is not None and per_profile[waiter.profile] >= cap:
            own = choose_victim([c for c in live if c.profile == waiter.profile])
            if own is not None:
                return Admission(waiter.task_id, own)
            continue  # capped: waiters of other profiles may go past it
        if len(live) < max_live:
            return Admission(waiter.task_id)
        # The workspace is full. Nobody behind can do better: any session a capped waiter
        # could evict is evictable for this one too.
        victim = choose_victim(live)
        return Admission(waiter.task_id, victim) if victim is not None else None
    return None
