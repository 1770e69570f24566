"""One task's runner: delivers its inbox to its agent, one turn at a time.

The loop: apply controls first (cancel, complete); take the next undelivered message;
make sure a session is live (`runtime/session_life.py`: slot, spawn, new/resume/load,
restarts); stamp the message in flight (fsync), send it as `session/prompt`, ack when
the turn ends. A runner ends once its task has no live session and nothing to deliver
(swapped-out tasks cost no runner); the supervisor starts a new one when work arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from meta_harness.base.config import Profile
from meta_harness.base.errors import AgentBroken, AgentClosed, AgentRequestFailed
from meta_harness.base.faults import crash_point
from meta_harness.domain.admission import Candidate
from meta_harness.domain.drops import Control
from meta_harness.domain.inbox import Message
from meta_harness.domain.phases import SessionPhase, TaskPhase
from meta_harness.domain.replay import with_header
from meta_harness.domain.tasks import TaskMode
from meta_harness.domain.transcript import update_text
from meta_harness.runtime.gate import PermissionGate
from meta_harness.runtime.runner_context import RunnerContext
from meta_harness.runtime.session_life import SessionLife

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession

__all__ = ["RunnerContext", "TaskRunner"]

logger = logging.getLogger(__name__)

_UNFINISHED = frozenset({"pending", "in_progress"})  # ACP tool call statuses of a live call


class TaskRunner:
    def __init__(self, ctx: RunnerContext, task_id: str, profile: Profile) -> None:
        self.ctx = ctx
        self.task_id = task_id
        self.profile = profile
        self.paths = ctx.workspace.task(task_id)
        self.inbox = ctx.store.inbox(task_id)
        self.life = SessionLife(ctx, task_id, profile, holder=self, hooks=self, send=self._send)
        self.gate = PermissionGate(task_id, self.paths, profile, ctx.store.events)
        self.gate.note = self.life.note
        self._lock = asyncio.Lock()
        self._turn_text: list[str] = []
        self._turn_tools: dict[str, str] = {}  # tool call id -> last status, this turn
        self._turn: asyncio.Task[str] | None = None  # the running session/prompt

    @property
    def phase(self) -> SessionPhase:
        return self.life.phase

    @property
    def session(self) -> AgentSession | None:
        return self.life.session

    # -- pool protocol -----------------------------------------------------------------------

    @property
    def profile_name(self) -> str:
        record = self.ctx.store.get(self.task_id)
        return record.profile if record is not None else self.profile.name

    def candidate(self) -> Candidate:
        record = self.ctx.store.get(self.task_id)
        return Candidate(
            task_id=self.task_id,
            last_used=self.life.last_used,
            busy=self.phase is SessionPhase.BUSY,
            awaiting_permission=self.gate.waiting,
            has_pending=self.inbox.state.next_pending() is not None,
            pinned=bool(record and record.pinned_reason),
            starting=self.phase in (SessionPhase.STARTING, SessionPhase.RESTORING),
            stopping=self.phase in (SessionPhase.STOPPING, SessionPhase.CRASHED),
            profile=self.profile_name,
        )

    async def evict(self) -> bool:
        if self._lock.locked() or not self.candidate().evictable or self.session is None:
            return False
        async with self._lock:
            if not self.candidate().evictable or self.session is None:
                return False
            await self.life.swap_out("evicted for another task")
            return True

    # -- client hooks --------------------------------------------------------------------------

    def on_update(self, session_id: str, update: dict[str, Any]) -> None:
        if self.phase is not SessionPhase.BUSY:
            return
        kind = update.get("sessionUpdate")
        if kind == "agent_message_chunk":
            self._turn_text.append(update_text(update))
        elif kind in ("tool_call", "tool_call_update"):
            call, status = update.get("toolCallId"), update.get("status")
            if isinstance(call, str):
                self._turn_tools[call] = str(status or self._turn_tools.get(call, "pending"))

    async def on_permission(
        self, session_id: str, tool_call: dict[str, Any], options: list[dict[str, Any]]
    ) -> str | None:
        note = self.session.transcript.note if self.session is not None else None
        return await self.gate.decide(session_id, tool_call, options, note)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.life.stopping:
                record = self.ctx.store.get(self.task_id)
                if record is None:
                    return
                if record.phase.terminal:
                    await self._finish_ended()
                    return
                pending = self.inbox.state.pending()
                control = next((m for m in pending if m.control is not None), None)
                if control is not None:
                    await self._apply_control(control)
                    continue
                message = self._next_message(pending)
                if message is None:
                    if not await self._idle():
                        return
                    continue
                await self._deliver(message)
        finally:
            async with self._lock:
                if self.session is not None:
                    await self.life.swap_out("supervisor stopping")

    def _next_message(self, pending: list[Message]) -> Message | None:
        """The oldest pending message, but a "continue" follow-up goes first: it resumes
        work that came before everything still queued."""
        follow_up = self.life.in_doubt.take_follow_up()
        for message in pending:
            if message.id == follow_up:
                return message
        return pending[0] if pending else None

    async def _idle(self) -> bool:
        """Wait for work beside a live session; False when there is no session to keep."""
        record = self.ctx.store.get(self.task_id)
        if record is not None and record.phase is TaskPhase.ACTIVE:
            self.ctx.store.set_phase(self.task_id, TaskPhase.WAITING)
        self.inbox.changed.clear()
        if self.inbox.state.next_pending() is not None:
            return True
        session = self.session
        if session is None:
            return False
        self.ctx.pool.poke()
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.inbox.changed.wait()),
            asyncio.ensure_future(session.wait_exit()),
        ]
        idle_after = self.ctx.config().settings.supervisor.idle_swap_after
        timeout = idle_after if idle_after > 0 else None
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if session is self.session:
            if session.process.returncode is not None:
                async with self._lock:
                    await self.life.crashed("agent exited while idle")
            elif not done and self.candidate().evictable:
                async with self._lock:
                    await self.life.swap_out(f"idle for {idle_after:g} s")
        return True

    def stop(self) -> None:
        """End the loop; a running turn (it may run for hours) is abandoned, in doubt."""
        self.life.stop()
        self.inbox.changed.set()
        if self._turn is not None:
            self._turn.cancel()

    # -- controls -------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """A control arrived: cancel the running turn and pending permission requests."""
        if self.session is not None and self.phase is SessionPhase.BUSY:
            record = self.ctx.store.get(self.task_id)
            if record is not None and record.session_id:
                self.ctx.background(self.session.cancel(record.session_id))
        self.gate.cancel_all("the task was cancelled")
        self.inbox.changed.set()

    async def _apply_control(self, message: Message) -> None:
        store = self.ctx.store
        record = store.get(self.task_id)
        assert record is not None
        if message.control is Control.CANCEL:
            store.set_phase(self.task_id, TaskPhase.CANCELLED, finished_by=message.sender or "user")
        elif message.control is Control.COMPLETE:
            store.set_phase(
                self.task_id,
                TaskPhase.DONE,
                result=message.result or "",
                finished_by=message.sender or "user",
            )
        self.inbox.ack(message.id, "applied")
        self.ctx.on_task_ended(self.task_id)

    async def _finish_ended(self) -> None:
        for message in self.inbox.state.pending():
            self.inbox.drop(message.id, f"task {self.ctx.store.records[self.task_id].phase}")
        async with self._lock:
            if self.session is not None:
                await self.life.swap_out("task ended")

    # -- delivery ------------------------------------------------------------------------------

    async def _deliver(self, message: Message) -> None:
        async with self._lock:
            if not await self.life.ensure():
                return
            if self.inbox.state.settled(message.id):
                return  # acked as recovered by the restore
            await self._send(message)

    async def _send(self, message: Message) -> bool:
        """One turn on the live session (the lock is held); False if the session is gone."""
        session = self.session
        assert session is not None
        record = self.ctx.store.get(self.task_id)
        assert record is not None and record.session_id is not None
        if record.phase in (TaskPhase.PENDING, TaskPhase.WAITING):
            self.ctx.store.set_phase(self.task_id, TaskPhase.ACTIVE)
        offload = self.ctx.pool.others_working(self.task_id)
        await self.inbox.mark_sent(message.id, record.epoch, offload=offload)
        crash_point("deliver.after_sent")
        self.life.set_phase(SessionPhase.BUSY)
        self._turn_text = []
        blocks = with_header(message)
        blocks.extend(self.life.take_preamble(session))
        self._turn = asyncio.ensure_future(
            session.prompt(
                record.session_id, blocks, {"messageId": message.id, "from": message.sender}
            )
        )
        try:
            stop = await self._turn
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            # stop() abandoned the turn: no ack, so the message stays in doubt and the
            # next boot's session/load replay decides whether it is sent again.
            return False
        except AgentRequestFailed as e:
            self.inbox.ack(message.id, "error", error=str(e))
            self.life.set_phase(SessionPhase.IDLE)
            self._turn_ended("error", str(e))
            return True
        except AgentClosed:
            return False
        except AgentBroken as e:
            await self.life.crashed(str(e))
            return False
        finally:
            self._turn = None
        self.ctx.stats.turns += 1
        record = self.ctx.store.get(self.task_id)
        if record is not None and not record.session_answered:
            # before the ack: the session is on the agent's disk now; a crash after the
            # ack must not let a later failed load pass for "nothing was lost"
            self.ctx.store.update(self.task_id, session_answered=True)
        crash_point("deliver.before_ack")
        self.inbox.ack(message.id, stop)
        self.life.last_used = time.monotonic()
        self.life.set_phase(SessionPhase.IDLE)
        self._turn_ended(stop, None)
        return True

    def _turn_ended(self, stop: str, error: str | None) -> None:
        self._note_unfinished_tools(stop)
        record = self.ctx.store.get(self.task_id)
        if record is None or record.phase.terminal or record.mode is not TaskMode.ONESHOT:
            return
        if any(m.control is not None for m in self.inbox.state.pending()):
            return  # a cancel or complete cut this turn short: it decides how the task ends
        text = "".join(self._turn_text)
        if stop == "end_turn" or stop == "max_tokens" or stop == "max_turn_requests":
            self.ctx.store.set_phase(
                self.task_id, TaskPhase.DONE, result=text, finished_by="oneshot"
            )
        else:
            self.ctx.store.set_phase(
                self.task_id,
                TaskPhase.FAILED,
                error=error or f"turn ended with {stop}",
                result=text,
            )
        self.ctx.on_task_ended(self.task_id)

    def _note_unfinished_tools(self, stop: str) -> None:
        """The turn is over: a tool call the agent left pending or in progress has ended too.

        Agents do not always finish their tool calls (codex-acp leaves a rejected write
        `in_progress` when it aborts the turn); the note tells readers of the transcript.
        """
        unfinished = sorted(
            call for call, status in self._turn_tools.items() if status in _UNFINISHED
        )
        self._turn_tools = {}
        if unfinished:
            self.life.note("tool-calls-unfinished", stop=stop, tool_calls=unfinished)
