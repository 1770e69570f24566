"""One task's runner: delivers its inbox to its agent, one turn at a time.

The loop: apply controls first (cancel, complete); take the next undelivered message;
make sure a session is live (a slot from the pool, spawn, `initialize`, then
`session/new`, or `session/resume`/`session/load` for a task that has a session id);
stamp the message in flight (fsync) and send it as `session/prompt`; ack when the turn
ends. A crash mid-turn leaves the message in doubt; the restore's replay decides whether
it is acked as `recovered` or sent again with the same id. Restarts are budgeted
(burst per window, with backoff); a spent budget fails the task with the reason. A
runner ends once its task has no live session and nothing to deliver (thousands of
swapped-out tasks cost no runner); the supervisor starts a new one when work arrives.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meta_harness.agent.process import StopHabits
from meta_harness.base.config import Config, Profile
from meta_harness.base.errors import (
    AgentBroken,
    AgentClosed,
    AgentError,
    AgentRequestFailed,
    AgentStartError,
    SessionLoadFailed,
)
from meta_harness.base.faults import crash_point
from meta_harness.base.jsonl import read_records, read_reversed
from meta_harness.base.layout import Workspace
from meta_harness.domain.admission import Candidate
from meta_harness.domain.drops import Control, MessageDrop, header_line, header_marker
from meta_harness.domain.events import EventType
from meta_harness.domain.inbox import Message
from meta_harness.domain.instructions import Skill, instruction_blocks, parse_skill
from meta_harness.domain.interrupted import continuation
from meta_harness.domain.phases import SessionPhase, TaskPhase, advance_session
from meta_harness.domain.tasks import LoadOutcome, TaskMode
from meta_harness.domain.transcript import session_update, turn_stop, update_text
from meta_harness.runtime.gate import PermissionGate
from meta_harness.runtime.launch import launch_spec
from meta_harness.runtime.pool import Pool
from meta_harness.runtime.stats import Stats
from meta_harness.runtime.store import TaskStore

if TYPE_CHECKING:
    from meta_harness.agent.session import AgentSession

logger = logging.getLogger(__name__)

_UNFINISHED = frozenset({"pending", "in_progress"})  # ACP tool call statuses of a live call
RESTART_BACKOFF_BASE = 0.2  # seconds before the first restart; doubles per crash in the window
RESTART_BACKOFF_MAX = 30.0
CONTEXT_TAIL_CHARS = 20_000  # transcript text handed to a fresh session when a load failed
_HEADER_PREFIX = header_marker("").rstrip()  # "[meta-harness message id=": opens every prompt


@dataclass
class RunnerContext:
    workspace: Workspace
    store: TaskStore
    pool: Pool
    config: Callable[[], Config]
    on_task_ended: Callable[[str], None]
    mcp_servers: Callable[[str, AgentSession], list[dict[str, Any]]]
    stats: Stats
    on_spawn: Callable[[int], None] | None = None
    # runs a short coroutine in the supervisor's task group (never fire-and-forget)
    background: Callable[[Coroutine[Any, Any, None]], None] = lambda c: c.close()
    stop_habits: StopHabits = field(default_factory=StopHabits)
    on_exit: Callable[[int], None] | None = None


class TaskRunner:
    def __init__(self, ctx: RunnerContext, task_id: str, profile: Profile) -> None:
        self.ctx = ctx
        self.task_id = task_id
        self.profile = profile
        self.paths = ctx.workspace.task(task_id)
        self.inbox = ctx.store.inbox(task_id)
        self.phase = SessionPhase.ABSENT
        self.session: AgentSession | None = None
        self.last_used = time.monotonic()
        self.gate = PermissionGate(task_id, self.paths, profile, ctx.store.events)
        self.gate.note = self._note
        self._lock = asyncio.Lock()
        self._crashes: collections.deque[float] = collections.deque()
        self._turn_text: list[str] = []
        self._turn_tools: dict[str, str] = {}  # tool call id -> last status, this turn
        self._stopping = False
        self._preamble_due = False  # a new session's first prompt carries the instructions
        self._turn: asyncio.Task[str] | None = None  # the running session/prompt
        self._stop_requested = asyncio.Event()  # cuts a restart backoff short
        self._continue_next: str | None = None  # a "continue" follow-up to deliver first
        self._answered_in_doubt: dict[str, str] = {}  # in doubt, but answered: id -> stop

    # -- pool protocol -----------------------------------------------------------------------

    @property
    def profile_name(self) -> str:
        record = self.ctx.store.get(self.task_id)
        return record.profile if record is not None else self.profile.name

    def candidate(self) -> Candidate:
        record = self.ctx.store.get(self.task_id)
        return Candidate(
            task_id=self.task_id,
            last_used=self.last_used,
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
            await self._swap_out("evicted for another task")
            return True

    # -- phases and notes -------------------------------------------------------------------------

    def _set_phase(self, phase: SessionPhase, **fields: Any) -> None:
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

    def _note(self, note: str, **fields: Any) -> None:
        if self.session is not None:
            self.session.transcript.note(note, **fields)

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
            while not self._stopping:
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
                    await self._swap_out("supervisor stopping")

    def _next_message(self, pending: list[Message]) -> Message | None:
        """The oldest pending message, but a "continue" follow-up goes first: it resumes
        work that came before everything still queued."""
        follow_up, self._continue_next = self._continue_next, None
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
                    await self._crashed("agent exited while idle")
            elif not done and self.candidate().evictable:
                async with self._lock:
                    await self._swap_out(f"idle for {idle_after:g} s")
        return True

    def stop(self) -> None:
        """End the loop; a running turn (it may run for hours) is abandoned, in doubt."""
        self._stopping = True
        self._stop_requested.set()
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
                await self._swap_out("task ended")

    # -- delivery ------------------------------------------------------------------------------

    async def _deliver(self, message: Message) -> None:
        async with self._lock:
            if not await self._ensure_session():
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
        await self.inbox.mark_sent(message.id, record.epoch)
        crash_point("deliver.after_sent")
        self._set_phase(SessionPhase.BUSY)
        self._turn_text = []
        blocks = _with_header(message)
        if self._preamble_due:
            blocks.extend(self._preamble(session))
            self._preamble_due = False
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
            self._set_phase(SessionPhase.IDLE)
            self._turn_ended("error", str(e))
            return True
        except AgentClosed:
            return False
        except AgentBroken as e:
            await self._crashed(str(e))
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
        self.last_used = time.monotonic()
        self._set_phase(SessionPhase.IDLE)
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
            self._note("tool-calls-unfinished", stop=stop, tool_calls=unfinished)

    # -- sessions ------------------------------------------------------------------------------

    async def _ensure_session(self) -> bool:
        """A live session, restoring or starting one; False if the task cannot go on now."""
        if self.session is not None and self.phase.live:
            return True
        self.ctx.stats.touch()  # stats.json shows the queue while we wait in it
        wait = await self.ctx.pool.acquire(self)
        if self._stopping:  # the slot came free because the supervisor is stopping
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
        self._answered_in_doubt = {}
        for message in self.inbox.state.in_doubt() if restoring else []:
            stop = self._answer_before_crash(message.id)
            if stop is not None:
                self._answered_in_doubt[message.id] = stop
        self._set_phase(SessionPhase.RESTORING if restoring else SessionPhase.STARTING)
        started = time.monotonic()
        spec = launch_spec(agent, self.profile, self.ctx.workspace, record, epoch)
        spec.on_spawn = self.ctx.on_spawn
        spec.agent = self.profile.agent
        spec.stop_habits = self.ctx.stop_habits
        spec.on_exit = self.ctx.on_exit
        try:
            from meta_harness.agent.session import AgentSession  # the ACP SDK: 0.5 s, once

            session = await AgentSession.open(spec, self)
        except AgentStartError as e:
            self.ctx.pool.release(self.task_id)
            self._set_phase(SessionPhase.CRASHED, reason=str(e))
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
            await self._crashed(str(e))
            return False
        except AgentRequestFailed as e:
            await self._crashed(str(e))
            return False
        self._set_phase(SessionPhase.IDLE)
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
            seen = _user_texts(replay)
            for message in in_doubt:
                marker = header_marker(message.id)
                if any(text.lstrip().startswith(marker) for text in seen):
                    # the follow-up first: a crash before the ack repeats both, once
                    continued = self._continue_interrupted(session, message)
                    self.inbox.ack(message.id, "recovered")
                    session.transcript.note("in-doubt-recovered", message=message.id)
                    if not continued:
                        self._recovered_oneshot(session, replay, marker)
                else:
                    session.transcript.note("in-doubt-resend", message=message.id)

    def _answer_before_crash(self, message_id: str) -> str | None:
        """The stop reason the agent answered an in-doubt message with, if the transcript
        of the connection that carried it (its last `sent` stamp's epoch) shows one."""
        epoch = next(
            (
                r["epoch"]
                for r in read_reversed(self.paths.wal)
                if r.get("op") == "sent"
                and r.get("id") == message_id
                and isinstance(r.get("epoch"), int)
            ),
            None,
        )
        if epoch is None:
            return None
        return turn_stop(read_reversed(self.paths.transcript), message_id, epoch)

    def _continue_interrupted(self, session: AgentSession, message: Message) -> bool:
        """Queue the "continue" follow-up for a recovered turn whose end the transcript
        does not show (the agent died, or the supervisor, mid-turn), profile permitting.
        A turn that ended and only lost its ack needs none."""
        if self.profile.on_interrupted_turn != "continue" or message.control is not None:
            return False
        if message.id in self._answered_in_doubt:
            return False
        follow_up = continuation(message.id)
        self.inbox.accept([follow_up])
        self._continue_next = follow_up.id
        session.transcript.note("turn-continued", message=message.id, follow_up=follow_up.id)
        self.ctx.store.events.emit(
            EventType.WARNING,
            self.task_id,
            message=f"turn of {message.id} was cut by a restart; asked the agent to continue",
        )
        return True

    def _recovered_oneshot(
        self, session: AgentSession, replay: list[dict[str, Any]], marker: str
    ) -> None:
        """A oneshot task's first turn was recovered from a replay and is not continued
        (`on_interrupted_turn = "leave"`): that turn finishes it.

        Its result is the agent text the replay shows after the message (the end of the
        turn was lost with the previous supervisor, so `_turn_ended` never ran).
        """
        record = self.ctx.store.get(self.task_id)
        if record is None or record.phase.terminal or record.mode is not TaskMode.ONESHOT:
            return
        text = _replayed_answer(replay, marker)
        session.transcript.note("oneshot-recovered", chars=len(text))
        self.ctx.store.set_phase(self.task_id, TaskPhase.DONE, result=text, finished_by="oneshot")
        self.ctx.on_task_ended(self.task_id)

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
                await self._crashed(str(e))
                return False
            self._set_phase(SessionPhase.IDLE)
            return True
        policy = self.profile.on_load_failure
        session.transcript.note("load-failed", reason=reason, policy=policy)
        if policy == "fresh":
            try:
                await self._start(session)
            except AgentError as e:
                await self._crashed(str(e))
                return False
            self.ctx.store.update(self.task_id, last_load=LoadOutcome.FRESH_WITH_CONTEXT)
            self._set_phase(SessionPhase.IDLE)
            context = _transcript_context(self.paths.transcript)
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
        await self._swap_out("load failed")
        self.ctx.store.set_phase(
            self.task_id, TaskPhase.FAILED, error=reason, finished_by="supervisor"
        )
        self.ctx.on_task_ended(self.task_id)
        return False

    def _preamble(self, session: AgentSession) -> list[dict[str, Any]]:
        """The profile's instruction files and skill list (docs/design.md §Instructions)."""
        root = self.ctx.workspace.root
        files: list[tuple[Path, str]] = []
        for name in self.profile.instructions:
            path = (root / name).resolve()
            try:
                files.append((path, path.read_text("utf-8", errors="replace")))
            except OSError:
                continue  # an instruction file that is absent is simply not sent
        skills: list[Skill] = []
        for name in self.profile.skills:
            skill_md = (self.ctx.workspace.skills_dir / name / "SKILL.md").resolve()
            try:
                skills.append(parse_skill(skill_md, skill_md.read_text("utf-8", errors="replace")))
            except OSError:
                self.ctx.store.events.emit(
                    EventType.WARNING, self.task_id, message=f"skill {name!r} has no {skill_md}"
                )
        embedded = bool((session.caps.raw.get("promptCapabilities") or {}).get("embeddedContext"))
        blocks = instruction_blocks(files, skills, embedded=embedded)
        if blocks:
            session.transcript.note(
                "instructions", files=[str(p) for p, _ in files], skills=[s.name for s in skills]
            )
        return blocks

    def _cwd(self) -> Path:
        record = self.ctx.store.get(self.task_id)
        return Path(record.cwd) if record and record.cwd else self.ctx.workspace.root

    async def _crashed(self, reason: str) -> None:
        session = self.session
        self.session = None
        self.ctx.stats.crashes += 1
        if self.phase is not SessionPhase.CRASHED:
            self._set_phase(SessionPhase.CRASHED, reason=reason)
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

    async def _swap_out(self, reason: str) -> None:
        """Close the session and end the process group; the session id stays on disk."""
        session = self.session
        if session is None:
            return
        started = time.monotonic()
        self.session = None
        if self.phase.holds_slot and self.phase is not SessionPhase.STOPPING:
            self._set_phase(SessionPhase.STOPPING)
        record = self.ctx.store.get(self.task_id)
        if record is not None and record.session_id and session.process.returncode is None:
            await session.close_session(record.session_id)
        session.transcript.note("swap-out", reason=reason)
        await session.aclose(reason=reason)
        self.ctx.pool.release(self.task_id)
        if self.phase is SessionPhase.STOPPING:
            self._set_phase(SessionPhase.SWAPPED)
        self.ctx.stats.swaps_out += 1
        self.ctx.store.events.emit(
            EventType.SWAP,
            self.task_id,
            direction="out",
            seconds=time.monotonic() - started,
            reason=reason,
        )


def _with_header(message: Message) -> list[dict[str, Any]]:
    header = header_line(message.id, message.sender)
    blocks = [dict(b) for b in message.content]
    if blocks and blocks[0].get("type") == "text":
        blocks[0]["text"] = f"{header}\n{blocks[0].get('text', '')}"
    else:
        blocks.insert(0, {"type": "text", "text": header})
    return blocks


def _user_texts(replay: list[dict[str, Any]]) -> list[str]:
    """The text of every replayed user message chunk; a prompt's header opens its first one."""
    texts: list[str] = []
    for params in replay:
        update = params.get("update") or {}
        if update.get("sessionUpdate") == "user_message_chunk":
            texts.append(update_text(update))
    return texts


def _replayed_answer(replay: list[dict[str, Any]], marker: str) -> str:
    """The agent text a replay shows after the prompt whose header starts with `marker`.

    Collected until the next prompt (a user chunk opening with a message header); user
    chunks in between (instructions sent with the prompt) are part of that prompt.
    """
    parts: list[str] = []
    inside = False
    for params in replay:
        update = params.get("update") or {}
        kind = update.get("sessionUpdate")
        if kind == "user_message_chunk":
            text = update_text(update).lstrip()
            if text.startswith(marker):
                inside, parts = True, []
            elif text.startswith(_HEADER_PREFIX):
                inside = False
        elif kind == "agent_message_chunk" and inside:
            parts.append(update_text(update))
    return "".join(parts)


def _conversation(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) turns from transcript records: the prompts we sent and the agent's text.

    Live frames only (a load replay repeats history); consecutive chunks of one side
    are joined, so the agent reads a conversation rather than protocol frames.
    """
    turns: list[tuple[str, str]] = []
    for record in records:
        frame = record.get("frame")
        if record.get("load") or not isinstance(frame, dict):
            continue
        update = session_update(record)
        if record.get("dir") == "out" and frame.get("method") == "session/prompt":
            blocks = (frame.get("params") or {}).get("prompt") or []
            texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            role, text = "user", "\n".join(str(b.get("text", "")) for b in texts)
        elif update is not None and update.get("sessionUpdate") == "agent_message_chunk":
            role, text = "agent", update_text(update)
        else:
            continue
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + ("\n" if role == "user" else "") + text)
        else:
            turns.append((role, text))
    return turns


def _transcript_context(path: Path) -> str:
    """The conversation so far as text, for a fresh session after a failed load."""
    turns = _conversation(read_records(path))
    text = "\n\n".join(f"{role}: {body.strip()}" for role, body in turns)[-CONTEXT_TAIL_CHARS:]
    if not text:
        return ""
    return (
        "The previous session of this task could not be restored. "
        "Here is the conversation so far, from the supervisor's transcript:\n\n" + text
    )
