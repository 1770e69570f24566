"""Admission and eviction (pure): who gets an agent slot, and whose idle session gives one up.

Sessions are like pages of virtual memory: `max_live` slots per workspace. A runnable
task without a live session needs a slot; if none is free the least-recently-used idle,
evictable session is swapped out; if none is evictable the task queues (priority, then
FIFO). Never evicted: a session mid-turn, one waiting on a permission answer, one with
undelivered messages, one pinned (its agent cannot `session/load`), one still starting,
and one already stopping (it is giving its slot up anyway: wait for the release).
"""

from __future__ import annotations

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


def next_waiter(waiters: list[Waiter]) -> Waiter | None:
    return min(waiters) if waiters else None
