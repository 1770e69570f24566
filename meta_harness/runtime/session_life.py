"""One task's agent session over its life: start, restore, crash and restart, swap-out.

`ensure` takes a pool slot, spawns the agent and opens the session (`session/new`, or
resume/load for a task with a session id; the replay settles the messages in doubt, see
`runtime/in_doubt.py`). A failed load starts anew or fails the task, per profile; crashes
spend a restart budget with backoff. The runner holds its lock around every step here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meta_harness.base.config import Profile
from meta_harness.base.errors import (
    AgentBroken,
    AgentError,
    AgentRequestFailed,
    AgentStartError,
    SessionLoadFailed,
)
from meta_harness.base.jsonl import read_records
from meta_harness.domain.drops import MessageDrop
from meta_harness.domain.events import EventType
from meta_harness.domain.inbox import Message
from meta_harness.domain.phases import SessionPhase, TaskPhase, advance_session
from meta_harness.domain.replay import transcript_context
from meta_harness.domain.tasks import LoadOutcome
from meta_harness.runtime.in_doubt import InDoubt
from meta_harness.runtime.launch import launch_spec
from meta_harness.runtime.pool import SlotHolder
from meta_harness.runtime.preamble import preamble
from meta_harness.runtime.runner_context import RunnerContext

if TYPE_CHECKING:
    from meta_harness.agent.client import ClientHooks
    from meta_harness.agent.session import AgentSession

RESTART_BACKOFF_BASE = 0.2  # seconds before the first restart; doubles per crash in the window
RESTART_BACKOFF_MAX = 30.0


class SessionLife:
    """The live session of one task (if any), its phase, and every step that changes them.

    The runner is the pool's slot holder and the agent's client hooks; `send` is its
    delivery of one message, for the context a fresh session gets before anything else.
    """

    def __init__(
        self,
        ctx: RunnerContext,
        task_id: str,
        profile: Profile,
        *,
        holder: SlotHolder,
        hooks: ClientHooks,
        send: Callable[[Message], Awaitable[bool]],
    ) -> None:
        self.ctx = ctx
        self.task_id = task_id
        self.profile = profile
        self.paths = ctx.workspace.task(task_id)
        self.inbox = ctx.store.inbox(task_id)
        self.phase = SessionPhase.ABSENT
        self.session: AgentSession | None = None
        self.last_used = time.monotonic()
        self.stopping = False
        self.in_doubt = InDoubt(ctx, task_id, profile)
        self._holder = holder
        self._hooks = hooks
        self._send = send
        self._crashes: collections.deque[float] = collections.deque()
        self._preamble_due = False  # a new session's first prompt carries the instructions
        self._stop_requested = asyncio.Event()  # cuts a restart backoff short

    def stop(self) -> None:
        """No new session from now on, and a restart backoff ends at once."""
        self.stopping = True
        self._stop_requested.set()

    # -- phases and notes -------------------------------------------------------------------------

    def set_phase(self, phase: SessionPhase, **fields: Any) -> None:
        old = self.phase
        self.phase = advance_session(old, phase)
        self.ctx.stats.touch()
        if old is not phase:
            self.ctx.store.events.emit(
                EventType.SESSION_PHASE,
                self.task_id,
                **{"from": old.value, "to": phase.value},
                **fields,
            )

    def note(self, note: str, **fields: Any) -> None:
        if self.session is not None:
            self.session.transcript.note(note, **fields)

    def take_preamble(self, session: AgentSession) -> list[dict[str, Any]]:
        """The instructions, if this is the first prompt of a new session (then never again)."""
        if not self._preamble_due:
            return []
        blocks = preamble(self.ctx, self.task_id, self.profile, session)
        self._preamble_due = False
        return blocks

    # -- start and restore ----------------------------------------------------------------------

    async def ensure(self) -> bool:
        """A live session, restoring or starting one; False if the task cannot go on now."""
        if self.session is not None and self.phase.live:
            return True
        self.ctx.stats.touch()  # stats.json shows the queue while we wait in it
        wait = await self.ctx.pool.acquire(self._holder)
        if self.stopping:  # the slot came free because the supervisor is stopping
            self.ctx.pool.release(self.task_id)
            return False
        store = self.ctx.store
        record = store.get(self.task_id)
        assert record is not None
        config = self.ctx.config()
        agent = config.agent(self.profile.agent)
        epoch = record.epoch + 1
        record = store.update(self.task_id, epoch=epoch)
        restoring = record.session_id is not None
        # Did the agent answer a message in doubt before the crash? Read the transcript
        # now, before this connection's frames (maybe a long load replay) are added.
        self.in_doubt.read_answers(self.inbox.state.in_doubt() if restoring else [])
        self.set_phase(SessionPhase.RESTORING if restoring else SessionPhase.STARTING)
        started = time.monotonic()
        spec = launch_spec(agent, self.profile, self.ctx.workspace, record, epoch)
        spec.on_spawn = self.ctx.on_spawn
        spec.agent = self.profile.agent
        spec.stop_habits = self.ctx.stop_habits
        spec.on_exit = self.ctx.on_exit
        try:
            from meta_harness.agent.session import AgentSession  # the ACP SDK: 0.5 s, once

            session = await AgentSession.open(spec, self._hooks)
        except AgentStartError as e:
            self.ctx.pool.release(self.task_id)
            self.set_phase(SessionPhase.CRASHED, reason=str(e))
            await self._backoff_or_fail(str(e))
            return False
        self.session = session
        try:
            if restoring:
                await self._restore(session)
            else:
                await self._start(session)
        except SessionLoadFailed as e:
            return await self._load_failed(session, str(e))
        except AgentBroken as e:
            await self.crashed(str(e))
            return False
        except AgentRequestFailed as e:
            await self.crashed(str(e))
            return False
        self.set_phase(SessionPhase.IDLE)
        elapsed = time.monotonic() - started
        if restoring:
            self.ctx.stats.swaps_in += 1
            self.ctx.stats.swap_in_seconds.append(elapsed)
            store.events.emit(
                EventType.SWAP, self.task_id, direction="in", seconds=elapsed, queued=wait
            )
        self.last_used = time.monotonic()
        return True

    async def _start(self, session: AgentSession, context: str | None = None) -> None:
        record = self.ctx.store.get(self.task_id)
        assert record is not None
        servers = self.ctx.mcp_servers(self.task_id, session)
        session_id = await session.new_session(self._cwd(), servers)
        pinned = None if session.caps.load_session else "the agent cannot session/load"
        self.ctx.store.update(
            self.task_id, session_id=session_id, pinned_reason=pinned, session_answered=False
        )
        session.transcript.note("session-new", session_id=session_id, pinned=pinned)
        self._preamble_due = True
        if pinned:
            self.ctx.store.events.emit(EventType.WARNING, self.task_id, message=f"pinned: {pinned}")

    async def _restore(self, session: AgentSession) -> None:
        record = self.ctx.store.get(self.task_id)
        assert record is not None and record.session_id is not None
        servers = self.ctx.mcp_servers(self.task_id, session)
        in_doubt = self.inbox.state.in_doubt()
        caps = session.caps
        if caps.resume and not in_doubt:
            await session.resume_session(record.session_id, self._cwd(), servers)
            self._record_load(LoadOutcome.RESUMED)
            session.transcript.note("session-resumed", session_id=record.session_id)
            return
        if not caps.load_session:
            raise SessionLoadFailed("the agent cannot session/load (loadSession is false)")
        replay = await session.load_session(record.session_id, self._cwd(), servers)
        self._record_load(LoadOutcome.LOADED)
        session.transcript.note(
            "session-loaded", session_id=record.session_id, replayed=len(replay)
        )
        if in_doubt:
            self.in_doubt.settle(session, replay, in_doubt)

    def _record_load(self, outcome: LoadOutcome) -> None:
        """Write `last_load` only when it changes: a swap-in should not cost two fsyncs."""
        record = self.ctx.store.get(self.task_id)
        if record is not None and record.last_load is not outcome:
            self.ctx.store.update(self.task_id, last_load=outcome)

    async def _load_failed(self, session: AgentSession, reason: str) -> bool:
        record = self.ctx.store.get(self.task_id)
        if record is not None and not record.session_answered:
            # Agents write a session to disk at its first prompt: one that never answered
            # cannot be loaded, and nothing is lost. A new session replaces it; the messages
            # in doubt are sent again (same ids).
            session.transcript.note("load-failed", reason=reason, policy="new-session")
            try:
                await self._start(session)
            except AgentError as e:
                await self.crashed(str(e))
                return False
            self.set_phase(SessionPhase.IDLE)
            return True
        policy = self.profile.on_load_failure
        session.transcript.note("load-failed", reason=reason, policy=policy)
        if policy == "fresh":
            try:
                await self._start(session)
            except AgentError as e:
                await self.crashed(str(e))
                return False
            self.ctx.store.update(self.task_id, last_load=LoadOutcome.FRESH_WITH_CONTEXT)
            self.set_phase(SessionPhase.IDLE)
            context = transcript_context(read_records(self.paths.transcript))
            if not context:
                return True
            drop = MessageDrop(
                id=f"context-{self.task_id}-{int(time.time())}",
                sender="supervisor",
                content=[{"type": "text", "text": context}],
            )
            self.inbox.accept([drop])
            # The context goes first: the messages already waiting follow it.
            message = self.inbox.state.message(drop.id)
            if message is None:  # the same id, already settled (a second failure this second)
                return True
            return await self._send(message)
        await self.swap_out("load failed")
        self.ctx.store.set_phase(
            self.task_id, TaskPhase.FAILED, error=reason, finished_by="supervisor"
        )
        self.ctx.on_task_ended(self.task_id)
        return False

    def _cwd(self) -> Path:
        record = self.ctx.store.get(self.task_id)
        return Path(record.cwd) if record and record.cwd else self.ctx.workspace.root

    # -- crash and swap-out -------------------------------------------------------------------

    async def crashed(self, reason: str) -> None:
        session = self.session
        self.session = None
        self.ctx.stats.crashes += 1
        if self.phase is not SessionPhase.CRASHED:
            self.set_phase(SessionPhase.CRASHED, reason=reason)
        if session is not None:
            session.transcript.note("crash", reason=reason)
            await session.aclose(reason="crashed")
        self.ctx.pool.release(self.task_id)
        await self._backoff_or_fail(reason)

    async def _backoff_or_fail(self, reason: str) -> None:
        limits = self.profile.limits
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > limits.restart_window:
            self._crashes.popleft()
        if len(self._crashes) > limits.restart_burst:
            self.ctx.store.set_phase(
                self.task_id,
                TaskPhase.FAILED,
                error=(
                    f"restart budget exhausted: {len(self._crashes)} failures in "
                    f"{limits.restart_window:g} s (last: {reason})"
                ),
                finished_by="supervisor",
            )
            self.ctx.on_task_ended(self.task_id)
            return
        delay = min(RESTART_BACKOFF_BASE * 2 ** (len(self._crashes) - 1), RESTART_BACKOFF_MAX)
        self.ctx.store.events.emit(
            EventType.WARNING,
            self.task_id,
            message=f"agent failed: {reason}; restarting in {delay:g} s",
        )
        with contextlib.suppress(TimeoutError):  # a stop does not wait out the backoff
            await asyncio.wait_for(self._stop_requested.wait(), delay)

    async def swap_out(self, reason: str) -> None:
        """Close the session and end the process group; the session id stays on disk."""
        session = self.session
        if session is None:
            return
        started = time.monotonic()
        self.session = None
        if self.phase.holds_slot and self.phase is not SessionPhase.STOPPING:
            self.set_phase(SessionPhase.STOPPING)
        record = self.ctx.store.get(self.task_id)
        if record is not None and record.session_id and session.process.returncode is None:
            await session.close_session(record.session_id)
        session.transcript.note("swap-out", reason=reason)
        await session.aclose(reason=reason)
        self.ctx.pool.release(self.task_id)
        if self.phase is SessionPhase.STOPPING:
            self.set_phase(SessionPhase.SWAPPED)
        self.ctx.stats.swaps_out += 1
        self.ctx.store.events.emit(
            EventType.SWAP,
            self.task_id,
            direction="out",
            seconds=time.monotonic() - started,
            reason=reason,
        )
