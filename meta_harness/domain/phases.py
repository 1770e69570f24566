"""Task and session phases, and the tables of allowed transitions.

The task phase is durable (in `task.json`) and says what the task *is*; the session
phase is volatile (in memory, published to `events.jsonl`) and says what its agent
process is doing now. Transitions are data; `advance_*` raises on anything the table
does not allow. See docs/design.md §Phases for when each phase is entered.
"""

from __future__ import annotations

from enum import StrEnum

from meta_harness.base.errors import IllegalTransition


class TaskPhase(StrEnum):
    PENDING = "pending"  # accepted; its first message has not reached an agent yet
    ACTIVE = "active"  # a turn is running or messages are queued for the agent
    WAITING = "waiting"  # every message answered; waits for the next one
    DONE = "done"  # finished with a result
    FAILED = "failed"  # cannot go on (reason in `error`)
    CANCELLED = "cancelled"  # stopped by a user or by its parent's cancel

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK


_TERMINAL_TASK = frozenset({TaskPhase.DONE, TaskPhase.FAILED, TaskPhase.CANCELLED})
_END = frozenset({TaskPhase.DONE, TaskPhase.FAILED, TaskPhase.CANCELLED})

TASK_TRANSITIONS: dict[TaskPhase, frozenset[TaskPhase]] = {
    TaskPhase.PENDING: frozenset({TaskPhase.ACTIVE}) | _END,
    TaskPhase.ACTIVE: frozenset({TaskPhase.WAITING}) | _END,
    TaskPhase.WAITING: frozenset({TaskPhase.ACTIVE}) | _END,
    TaskPhase.DONE: frozenset(),
    TaskPhase.FAILED: frozenset(),
    TaskPhase.CANCELLED: frozenset(),
}


class SessionPhase(StrEnum):
    ABSENT = "absent"  # no process, no session to restore
    STARTING = "starting"  # spawning, initialize, session/new
    RESTORING = "restoring"  # spawning, initialize, session/load or session/resume
    IDLE = "idle"  # live, no turn running
    BUSY = "busy"  # live, a turn (session/prompt) is running
    STOPPING = "stopping"  # closing the session and ending the process group
    SWAPPED = "swapped"  # no process; the session id is on disk, restorable
    CRASHED = "crashed"  # the process went away on its own

    @property
    def live(self) -> bool:
        return self in (SessionPhase.IDLE, SessionPhase.BUSY)

    @property
    def holds_slot(self) -> bool:
        """Whether a process exists (or is being made) for this session."""
        return self in _SLOT_HOLDERS


_SLOT_HOLDERS = frozenset(
    {
        SessionPhase.STARTING,
        SessionPhase.RESTORING,
        SessionPhase.IDLE,
        SessionPhase.BUSY,
        SessionPhase.STOPPING,
    }
)

SESSION_TRANSITIONS: dict[SessionPhase, frozenset[SessionPhase]] = {
    SessionPhase.ABSENT: frozenset({SessionPhase.STARTING, SessionPhase.RESTORING}),
    SessionPhase.SWAPPED: frozenset(
        {SessionPhase.RESTORING, SessionPhase.STARTING, SessionPhase.ABSENT}
    ),
    SessionPhase.STARTING: frozenset(
        {SessionPhase.IDLE, SessionPhase.CRASHED, SessionPhase.STOPPING}
    ),
    SessionPhase.RESTORING: frozenset(
        {SessionPhase.IDLE, SessionPhase.CRASHED, SessionPhase.STOPPING}
    ),
    SessionPhase.IDLE: frozenset({SessionPhase.BUSY, SessionPhase.STOPPING, SessionPhase.CRASHED}),
    SessionPhase.BUSY: frozenset({SessionPhase.IDLE, SessionPhase.STOPPING, SessionPhase.CRASHED}),
    SessionPhase.STOPPING: frozenset(
        {SessionPhase.SWAPPED, SessionPhase.ABSENT, SessionPhase.CRASHED}
    ),
    SessionPhase.CRASHED: frozenset(
        {SessionPhase.RESTORING, SessionPhase.STARTING, SessionPhase.ABSENT, SessionPhase.SWAPPED}
    ),
}


def advance_task(current: TaskPhase, new: TaskPhase) -> TaskPhase:
    if new is current:
        return current
    if new not in TASK_TRANSITIONS[current]:
        raise IllegalTransition(f"task phase {current} -> {new} is not allowed")
    return new


def advance_session(current: SessionPhase, new: SessionPhase) -> SessionPhase:
    if new is current:
        return current
    if new not in SESSION_TRANSITIONS[current]:
        raise IllegalTransition(f"session phase {current} -> {new} is not allowed")
    return new
